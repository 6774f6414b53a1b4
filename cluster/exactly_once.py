"""Exactly-once requests: whether a session's request (session, seq) is applied now.

A command registered ``exactly_once`` is applied at most once per (session, seq): a retry is
answered with the first result while it is kept, and refused once the client has reported it
answered (``acked`` and ``answered``), so a late copy never acts twice. Pure, like the state
machine that calls it.
"""

from __future__ import annotations

from turnstile.cluster.commands import Err, Result, SessionCommand
from turnstile.cluster.limits import Limits, check_request_id
from turnstile.cluster.records import SeqRanges, Session
from turnstile.v1.reasons import Reason


def admit(session: Session, command: SessionCommand, limits: Limits) -> Result | None:
    """None if ``command`` is to be applied now; otherwise its answer: the first result of a
    retry, or an ``Err``. What the client reported answered is pruned from ``session`` first,
    unless the request is refused before that.

    :raises RefusedError: a malformed request id (the check admission also makes).
    """
    check_request_id(limits, command.seq, command.acked, len(command.answered))
    first = session.results.get(command.seq)
    if first is not None:
        return first
    if command.seq <= session.acked:
        return Err(Reason.INVALID_ARGUMENT, f"request {command.seq} was already acknowledged")
    if command.seq in session.forgotten:
        return Err(Reason.INVALID_ARGUMENT, f"request {command.seq} was already answered")
    late = [seq for seq in command.answered if seq >= command.seq]
    if late:
        return Err(
            Reason.INVALID_ARGUMENT,
            f"answered seq {late[0]} is not below the request's seq {command.seq}",
        )
    forgotten = session.forgotten
    if command.answered:
        # On a copy: a request whose record of answered seqs would outgrow its bound is
        # refused before anything changes.
        forgotten = SeqRanges(list(forgotten.ranges))
        forgotten.drop_through(max(session.acked, command.acked))
        for seq in command.answered:
            if seq > max(session.acked, command.acked):
                forgotten.add(seq)
        if len(forgotten) > limits.max_results_per_session:
            return Err(
                Reason.LIMIT_EXCEEDED,
                f"session {session.id} would keep {len(forgotten)} ranges of answered "
                f"seqs, max_results_per_session={limits.max_results_per_session}",
            )
    if command.acked > session.acked:
        session.acked = command.acked
        for seq in [s for s in session.results if s <= command.acked]:
            del session.results[seq]
        forgotten.drop_through(command.acked)
    session.forgotten = forgotten
    for seq in command.answered:
        if seq > session.acked:
            session.results.pop(seq, None)
    if len(session.results) >= limits.max_results_per_session:
        return Err(
            Reason.LIMIT_EXCEEDED,
            f"session {session.id} has {len(session.results)} unacknowledged results, "
            f"max_results_per_session={limits.max_results_per_session}",
        )
    return None
