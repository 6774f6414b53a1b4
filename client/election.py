"""``Election``: leader election over sessions, and the ``Leadership`` a campaign wins."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from turnstile.client.errors import SessionExpiredError
from turnstile.client.group import Watch
from turnstile.client.group_core import (
    CampaignTiming,
    Candidate,
    ElectionTracker,
    default_member_id,
    leader_of,
)
from turnstile.v1 import turnstile_pb2 as pb

if TYPE_CHECKING:
    from turnstile.client.client import Client
    from turnstile.client.session import Session

log = logging.getLogger(__name__)


class Leadership:
    """A won election: its fencing token (strictly greater than every earlier leadership's of
    any election or lock) lasts until ``resign()`` or the end of the session that won it.

    .. code-block:: python

        with client.election("scheduler").campaign() as leadership:
            run_scheduler(fence=leadership.token)  # resigned on exit
    """

    def __init__(self, election: Election, session: Session, token: int) -> None:
        self.election = election
        self.session = session
        self.token = token
        self._resigned = False

    @property
    def name(self) -> str:
        return self.election.name

    def alive(self) -> bool:
        """Still the leader, as far as this client can tell: not resigned, session alive."""
        return not self._resigned and self.session.alive()

    def resign(self) -> bool:
        """Steps down (the next candidate is elected at once); False if it was over already."""
        if self._resigned:
            return False
        self._resigned = True
        try:
            response = self.election.client.write(
                pb.ResignRequest(name=self.name), session=self.session
            )
        except SessionExpiredError:
            return False
        return bool(response.was_leader)

    def __enter__(self) -> Leadership:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self.resign()

    def __repr__(self) -> str:
        return f"<turnstile Leadership {self.name!r} token {self.token}>"


class Election:
    """The election ``name``: candidates queue in FIFO order, the head leads.

    A candidacy belongs to the client's session (one per client: two ``Election`` objects of
    one name in one client share it) and lasts until ``resign()`` or the session's end, which
    elects the next candidate in the same replicated step.
    """

    def __init__(self, client: Client, name: str, member_id: str | None = None) -> None:
        self.client = client
        self.name = name
        #: What others see as the leader's id (default: this client's name, host and pid).
        self.member_id = member_id or default_member_id(client.identity[0])

    def campaign(self, timeout: float | None = None) -> Leadership:
        """Stands as a candidate and waits (on the server, in slices) until elected.

        :param timeout: longest wait in seconds; None waits as long as it takes.
        :raises TimeoutError: not elected within ``timeout``. The session stays a candidate
            (it may be elected later): ``resign()`` withdraws it.
        :raises SessionExpiredError: the session ended meanwhile, and its candidacy with it.
        """
        clock = self.client.retry.clock
        timing = CampaignTiming(timeout, clock())
        first = True
        while True:
            wait = timing.wait(clock(), first)
            if wait is None:
                raise TimeoutError(f"election {self.name!r}: not elected within {timeout}s")
            first = False
            request, attempt = timing.request(self.name, self.member_id, wait)
            session = self.client.session()
            response = self.client.write(
                request,
                session=session,
                deadline=self.client.retry.deadline + wait,
                attempt_timeout=attempt,
            )
            if response.elected:
                return Leadership(self, session, response.token)

    def resign(self) -> bool:
        """Withdraws this session's candidacy (a leader steps down and the next candidate is
        elected); False if it was not standing."""
        return bool(self.client.write(pb.ResignRequest(name=self.name)).was_candidate)

    def leader(self) -> Candidate | None:
        """The leader now (linearizable), or None when nobody stands."""
        return leader_of(self.client.invoke(pb.DescribeElectionRequest(name=self.name)))

    def candidates(self) -> list[Candidate]:
        """Every candidate, the leader first."""
        response = self.client.invoke(pb.DescribeElectionRequest(name=self.name))
        leader = leader_of(response)
        queued = [Candidate.from_pb(c) for c in response.election.candidates]
        return [leader, *queued] if leader else queued

    def observe(
        self, timeout: float | None = None, after_revision: int | None = None
    ) -> Watch[ElectionTracker]:
        """The election's leaderships as they change (ELECTED, RESIGNED, with tokens); see
        ``Watch``. ``watch.tracker.leader`` is the leader as of ``watch.revision``."""
        return Watch(self.client, ElectionTracker(self.name), timeout, after_revision)

    def __repr__(self) -> str:
        return f"<turnstile Election {self.name!r} as {self.member_id!r}>"
