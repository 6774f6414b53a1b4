"""How a refusal's reason travels: a ``google.rpc.ErrorInfo`` of domain ``turnstile.v1`` in the
status details. The server packs it (``turnstile.cluster.errors.to_status``); both sides read it
back with ``reason_of``.
"""

from __future__ import annotations

from google.rpc import error_details_pb2, status_pb2

from turnstile.v1.reasons import Reason

#: The ErrorInfo domain of Turnstile's reasons; details of other domains are not ours.
DOMAIN = "turnstile.v1"


def reason_of(status: status_pb2.Status | None) -> Reason | None:
    """The reason carried in a status's ErrorInfo detail, or None if it carries none."""
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == DOMAIN:
                try:
                    return Reason(info.reason)
                except ValueError:
                    return None
    return None
