"""Chaos scenarios: real faults in real processes under concurrent load, checked from the
recorded histories (see README.md in this directory for what each one injects and checks)."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable

import grpc
import pytest

from tests.chaos.checker import Op
from tests.chaos.conftest import Start
from tests.chaos.harness import ELECTION, GROUP, SOAK_SECONDS, ChaosRun, rounds
from tests.chaos.history import Recorded
from tests.chaos.net import Network
from tests.integration.cluster import wait_until
from turnstile.client import RetryPolicy, connect
from turnstile.v1 import turnstile_pb2 as pb
from turnstile.v1 import turnstile_pb2_grpc as pb_grpc

pytestmark = pytest.mark.chaos

#: Longer than the election timeout (0.5-1 s by default): a paused or cut leader is replaced.
OUTAGE = 2.5

#: Rounds of the leader kill loop: 3 in CI, ``TURNSTILE_CHAOS_KILL_ROUNDS=5`` in full.
KILL_ROUNDS = int(os.environ.get("TURNSTILE_CHAOS_KILL_ROUNDS", "3"))
#: Cuts of the flapping scenario: 6 in CI, ``TURNSTILE_CHAOS_FLAP_ROUNDS=10`` in full (the
#: same seeded sequence of cuts, so CI runs its first six).
FLAP_ROUNDS = int(os.environ.get("TURNSTILE_CHAOS_FLAP_ROUNDS", "6"))

#: Session TTL of every worker in the past-the-TTL scenarios, and how long their leader is out:
#: three TTLs, so the old leader wakes to find every session's deadline long passed.
TTL = 3.0
PAST_TTL = 3 * TTL
#: Rounds of each past-the-TTL scenario: 2 in CI, ``TURNSTILE_CHAOS_PAUSE_ROUNDS=20`` in full.
PAST_TTL_ROUNDS = int(os.environ.get("TURNSTILE_CHAOS_PAUSE_ROUNDS", "2"))
#: Most rounds of a control run that has not yet shown what the term fence prevents.
CONTROL_ROUNDS = max(PAST_TTL_ROUNDS, 6)
#: Their time limit: about 15 s a round (on a loaded machine up to 40), plus any soak.
PAST_TTL_TIMEOUT = 180 + 40 * CONTROL_ROUNDS + SOAK_SECONDS
#: The lock names the past-the-TTL load contends for.
CONTENDED = ("held0", "held1")
HOLDER_VIEW = "mutual exclusion (holder's view)"
#: Makes the server skip its term fence (honoured by the fixed server; ignored before it).
NO_TERM_FENCE = {"TURNSTILE_TEST_NO_TERM_FENCE": "1"}


def test_leader_kill_loop(start_run: Start) -> None:
    run = start_run(load=True)
    cluster = run.cluster
    for _ in rounds(KILL_ROUNDS):
        leader = cluster.leader()
        with cluster.fault("kill leader", cluster.name(leader)):
            cluster.kill(leader)
            cluster.leader(exclude=leader)
            cluster.restart(leader)
        run.wait_for_progress(10)
    run.finish("leader kill loop").assert_safe()


def test_follower_kill(start_run: Start) -> None:
    run = start_run(load=True)
    cluster = run.cluster
    for _ in rounds(2):
        follower = cluster.follower(cluster.leader())
        with cluster.fault("kill follower", cluster.name(follower)):
            cluster.kill(follower)
            run.wait_for_progress(10)
            cluster.restart(follower)
        cluster.wait_caught_up(follower)
    run.finish("follower kill").assert_safe()


def _read_from(address: str, list_name: str, member: bytes) -> int | None:
    """The member's id as node ``address`` itself answers a linearizable read (no redirect);
    None if it refused (not the leader, unavailable)."""
    with grpc.insecure_channel(address) as channel:
        try:
            response = pb_grpc.DistinctListsStub(channel).Contains(
                pb.ContainsRequest(name=list_name, members=[member]), timeout=5
            )
        except grpc.RpcError:
            return None
    return response.ids[0]


def test_leader_pause_then_resume(start_run: Start) -> None:
    """The paused leader wakes up believing it leads: it must not answer from its stale view."""
    run = start_run(load=True)
    cluster = run.cluster
    stale_answers = []
    for round_ in rounds(3):
        leader = cluster.leader()
        member = f"written-while-paused-{round_}".encode()
        with cluster.fault("pause leader", cluster.name(leader)):
            cluster.pause(leader)
            cluster.leader(exclude=leader)
            with connect(cluster.addresses, retry=RetryPolicy(deadline=30)) as client:
                _, member_id = client.distinct_list("results").insert(member)
            time.sleep(OUTAGE)
            cluster.resume(leader)
            answer = _read_from(cluster.addresses[leader], "results", member)
            if answer is not None and answer != member_id:
                stale_answers.append((round_, answer, member_id))
        run.wait_for_progress(10)
    report = run.finish("leader pause")
    assert not stale_answers, (
        f"the resumed old leader answered from its stale view: {stale_answers}"
    )
    report.assert_safe()


def _start_contended_load(run_: ChaosRun) -> None:
    """Three workers per name in ``CONTENDED``, each holding a grant up to 6 s (no max-hold)
    and waiting up to 30 s for the next, so a held lock nearly always has a queued waiter; one
    insert worker for steady progress; two election workers, members of a group, leading
    up to 6 s at a time; and three semaphore workers holding one of two permits up to 6 s.
    Every session has TTL ``TTL``."""
    for name in CONTENDED:
        for i in range(3):
            run_.start_worker(f"{name}-{i}", "lock", names=[name], hold=6.0, wait=30.0, ttl=TTL)
    run_.start_worker("insert0", "insert", list="results", ttl=TTL)
    for i in range(2):
        run_.start_worker(
            f"elect{i}", "election", group=GROUP, election=ELECTION, hold=6.0, ttl=TTL
        )
    for i in range(3):
        run_.start_worker(
            f"slots-{i}", "semaphore", semaphore="slots", limit=2, hold=6.0, wait=30.0, ttl=TTL
        )


def _contended(run_: ChaosRun) -> bool:
    """Every name in ``CONTENDED`` has a holder (granted, release not yet sent) and a waiter (an
    acquire not yet completed)."""
    ops = run_.recorded().ops
    releasing = {(op.process, op.key, op.value) for op in ops if op.kind == "release"}
    for name in CONTENDED:
        acquires = [op for op in ops if op.kind == "acquire" and op.key == name]
        held = any(
            op.outcome == "ok" and (op.process, name, op.value) not in releasing for op in acquires
        )
        if not held or not any(op.complete == math.inf for op in acquires):
            return False
    return True


def _cut_short(recorded: Recorded, before: float) -> list[str]:
    """Before ``before``: sessions announced LOST while their own keep-alives still vouched for
    them (the cluster ended a live session), and releases refused as lost inside that view
    (the cluster took a live holder's lock)."""
    problems = []
    for process, sid, state, at in recorded.session_states:
        session = recorded.sessions.get(sid)
        if state == "lost" and at < before and session and at < session.deadline():
            problems.append(f"{process}: session {sid} LOST {session.deadline() - at:.2f} s early")
    for op in recorded.ops:
        session = recorded.sessions.get(op.session)
        given_back = op.kind in ("release", "unpermit")
        refused = given_back and op.outcome == "fail" and op.invoke < before
        if refused and session and op.invoke < session.deadline():
            problems.append(f"{op.process}: live hold of {op.key} token {op.value} lost")
    return problems


def _judge_past_ttl(run_: ChaosRun, scenario: str, fenced: bool) -> None:
    """Every live holder kept its session and lock, and no holder's view was violated; or, for
    the control run without the term fence, the cluster ended a live session or moved a live
    holder's lock (whether a waiter was granted inside the holder's view is a race)."""
    stopping = time.monotonic()
    report = run_.finish(scenario)
    violated = [
        f"{v.invariant}: {v.detail}" for v in report.violations if v.invariant == HOLDER_VIEW
    ]
    cut_short = _cut_short(report.recorded, stopping)
    print(
        f"holder's view violations {len(violated)}, live sessions or holds cut short "
        f"{len(cut_short)}"
    )
    print("\n".join([*violated[:3], *cut_short[:3]]))
    if not fenced:
        assert violated or cut_short, "without the term fence a live session should have ended"
        return
    report.assert_safe("acquire", "release", "insert", "campaign", "join", "permit", "unpermit")
    assert not cut_short, "\n".join(cut_short[:30])


def _leader_out_past_ttl(
    run_: ChaosRun,
    kind: str,
    take_out: Callable[[int], None],
    bring_back: Callable[[int], None],
    control: bool = False,
) -> None:
    """Under the contended load, rounds in which whichever node leads is taken out (once
    every lock has a holder and a waiter) for ``PAST_TTL`` seconds, the others elect, and it
    is brought back and caught up.

    A ``control`` run (no term fence) must show the harm, and whether a round shows it is a
    race: it goes on for up to ``CONTROL_ROUNDS`` rounds, and stops at the first that did.
    """
    cluster = run_.cluster
    _start_contended_load(run_)
    for count in rounds(CONTROL_ROUNDS if control else PAST_TTL_ROUNDS):
        if control and count and _cut_short(run_.recorded(), time.monotonic()):
            break
        wait_until(lambda: _contended(run_), timeout=60, interval=0.2)
        leader = cluster.leader()
        with cluster.fault(kind, cluster.name(leader)):
            out_at = time.monotonic()
            take_out(leader)
            cluster.leader(exclude=leader)
            time.sleep(max(0.0, out_at + PAST_TTL - time.monotonic()))
            bring_back(leader)
        run_.wait_for_progress(10)
        cluster.wait_caught_up(leader)


@pytest.mark.timeout(PAST_TTL_TIMEOUT)
@pytest.mark.parametrize("fenced", [True, False], ids=["fenced", "control-no-term-fence"])
def test_leader_paused_past_the_session_ttl(start_run: Start, fenced: bool) -> None:
    """A leader paused for three TTLs wakes to find every session's deadline passed; whatever it
    proposes then must not end the sessions the new leader kept alive, nor move their locks."""
    run = start_run(env={} if fenced else NO_TERM_FENCE)
    cluster = run.cluster
    _leader_out_past_ttl(
        run, "pause leader past TTL", cluster.pause, cluster.resume, control=not fenced
    )
    _judge_past_ttl(run, "leader paused past TTL" + ("" if fenced else " (control)"), fenced)


@pytest.mark.timeout(PAST_TTL_TIMEOUT)
def test_leader_cut_off_past_the_session_ttl(network: Network, start_run: Start) -> None:
    """The same with the leader cut off from every node and client for three TTLs: its duties
    loop runs all along, seeing no keep-alives."""
    run = start_run(network)
    cluster = run.cluster
    _leader_out_past_ttl(
        run,
        "isolate leader past TTL",
        lambda leader: network.isolate(cluster.name(leader)),
        lambda _leader: network.heal(),
    )
    _judge_past_ttl(run, "leader cut off past TTL", fenced=True)


def test_minority_leader_partition(network: Network, start_run: Start) -> None:
    """The leader is cut off from the other nodes and every client; the majority elects."""
    run = start_run(network, load=True)
    cluster = run.cluster
    for _ in rounds(2):
        leader = cluster.leader()
        with cluster.fault("isolate leader", cluster.name(leader)):
            network.isolate(cluster.name(leader))
            cluster.leader(exclude=leader)
            run.wait_for_progress(10)
            network.heal()
        cluster.wait_caught_up(leader)
    run.finish("minority leader partition").assert_safe()


def test_pair_cut_while_both_see_the_third(network: Network, start_run: Start) -> None:
    """Leader and one follower cannot talk; each still reaches the third node."""
    run = start_run(network, load=True)
    cluster = run.cluster
    for _ in rounds(2):
        leader = cluster.leader()
        other = cluster.follower(leader)
        with cluster.fault("cut pair", f"{cluster.name(leader)}-{cluster.name(other)}"):
            network.cut(cluster.name(leader), cluster.name(other))
            time.sleep(OUTAGE)
            network.heal()
        cluster.wait_caught_up(other)
    run.finish("pair cut").assert_safe()


def test_flapping_partitions(network: Network, start_run: Start) -> None:
    """Cuts come and go faster than elections settle."""
    run = start_run(network, load=True)
    cluster = run.cluster
    rng = random.Random(7)
    names = [cluster.name(i) for i in range(len(cluster.nodes))]
    for _ in rounds(FLAP_ROUNDS):
        isolate = rng.random() < 0.5
        a, b = rng.sample(names, 2)
        kind, target = ("flap isolate", a) if isolate else ("flap cut pair", f"{a}-{b}")
        with cluster.fault(kind, target):
            if isolate:
                network.isolate(a)
            else:
                network.cut(a, b)
            time.sleep(rng.uniform(0.3, 1.5))
            network.heal()
    run.wait_for_progress(10)
    run.finish("flapping partitions").assert_safe()


def _events(run_: ChaosRun, process: str, kinds: tuple[str, ...]) -> list[tuple[str, bool, float]]:
    return [
        (kind, ok, at)
        for who, kind, ok, at in run_.recorded().resource_calls
        if who == process and kind in kinds
    ]


@pytest.mark.parametrize("fencing", [True, False], ids=["fenced", "control-unfenced"])
def test_lock_holder_paused_past_its_ttl(start_run: Start, fencing: bool) -> None:
    """A holder paused mid-write outlives its session; on resume its late write must be
    refused by the fenced resource. The control run without fencing must lose an update,
    which shows the pause really bites."""
    run = start_run(fencing=fencing)
    run.start_worker("paused", "fenced", names=["fenced"], hold=2.0, ttl=2.0)
    run.start_worker("other", "fenced", names=["fenced"], hold=0.05, ttl=2.0)

    def mid_hold() -> bool:
        calls = _events(run, "paused", ("resource-read", "resource-write"))
        return bool(calls) and calls[-1][:2] == ("resource-read", True)

    wait_until(mid_hold, timeout=60, interval=0.02)
    with run.cluster.fault("pause client", "paused"):
        run.pause_worker("paused")
        paused_at = time.monotonic()
        wait_until(
            lambda: any(
                at > paused_at and ok for _, ok, at in _events(run, "other", ("resource-write",))
            ),
            timeout=60,
        )
        run.resume_worker("paused")
        resumed_at = time.monotonic()
    wait_until(
        lambda: any(at > resumed_at for *_, at in _events(run, "paused", ("resource-write",)))
    )
    report = run.finish("paused client" + ("" if fencing else " (control, no fencing)"))
    late = next(ok for _, ok, at in _events(run, "paused", ("resource-write",)) if at > resumed_at)
    states = [state for who, _, state, _ in report.recorded.session_states if who == "paused"]
    assert "lost" in states, f"the paused client never learned its session was lost: {states}"
    releases = [op.outcome for op in _of(run, "paused", "release") if op.invoke > resumed_at]
    assert releases[:1] == ["fail"], f"the paused ex-holder's release: {releases}"
    if fencing:
        assert not late, "the fenced resource accepted the paused ex-holder's late write"
        report.assert_safe("acquire", "release")
    else:
        assert late and report.lost_updates, "without fencing the late write should lose an update"


def test_client_partitioned_from_the_cluster(network: Network, start_run: Start) -> None:
    """A holder cut off from every node: its session expires, its lock moves only after that,
    and it learns it is LOST no later than the lock moves."""
    ttl = 3.0
    run = start_run(network)
    cluster = run.cluster
    network.add_host("c1")
    run.start_worker("cut", "lock", network.prefix("c1"), names=["contested"], hold=3600, ttl=ttl)
    wait_until(lambda: _ok(run, "cut", "acquire"), timeout=60)
    run.start_worker("waiter", "lock", names=["contested"], wait=60, ttl=ttl)
    run.start_worker("insert0", "insert", list="results")
    run.wait_for_progress(10)
    with cluster.fault("isolate client", "c1"):
        network.isolate("c1", from_gateway=False)
        cut_at = time.monotonic()
        granted = wait_until(lambda: _ok(run, "waiter", "acquire"), timeout=60)[0]
        lost = wait_until(lambda: _lost(run, "cut"), timeout=60)
        network.heal()
    report = run.finish("client partition")
    print(
        f"client cut at 0; lock granted to the waiter at {granted.complete - cut_at:.2f} s; "
        f"the cut client announced LOST at {lost - cut_at:.2f} s (TTL {ttl} s)"
    )
    # The server counts the TTL from the last keep-alive it received, sent at most TTL/3
    # before the cut: the lock cannot move earlier than that.
    assert granted.invoke < cut_at < granted.complete
    assert granted.complete - cut_at >= ttl * 2 / 3
    assert lost <= granted.complete, "the lock moved before its cut-off holder knew it was lost"
    report.assert_safe("acquire", "insert")


def _of(run_: ChaosRun, process: str, kind: str) -> list[Op]:
    ops = run_.recorded().ops
    return sorted((op for op in ops if op.process == process and op.kind == kind), key=_invoked)


def _invoked(op: Op) -> float:
    return op.invoke


def _ok(run_: ChaosRun, process: str, kind: str) -> list[Op]:
    return [op for op in _of(run_, process, kind) if op.outcome == "ok"]


def _lost(run_: ChaosRun, process: str) -> float | None:
    times = [
        at
        for who, _, state, at in run_.recorded().session_states
        if who == process and state == "lost"
    ]
    return min(times, default=None)


def test_a_node_clock_running_three_times_fast(start_run: Start) -> None:
    """Node n1's clocks run 3x fast: first as a follower (its election timer fires early),
    then as the leader (it expires sessions and max-holds early: safety must hold, since
    expiry is the leader's decision and the fenced resource refuses stale holders).

    The holder's view is excused here: a leader whose clock runs 3x fast ends sessions and
    max-holds by its own clock, before the holders' own views end. Like every lease, the
    holder's view assumes clock rates within bounds; past them, the fencing token is what
    keeps the resource safe (no lost update)."""
    run = start_run(clock_rates={0: 3.0})
    cluster = run.cluster
    cluster.move_leadership(away_from=0)
    run.start_standard_load()
    with cluster.fault("fast clock follower", "n1"):
        run.wait_for_progress(50)
    with cluster.fault("fast clock leader", "n1"):
        cluster.move_leadership(to=0)
        run.wait_for_progress(10)
        cluster.kill(0)
        cluster.leader(exclude=0)
    run.finish("fast clock").assert_safe(excused=(HOLDER_VIEW,))


def test_whole_cluster_kill_and_restart(start_run: Start) -> None:
    run = start_run(load=True)
    cluster = run.cluster
    for _ in rounds(2):
        with cluster.fault("kill -9 all", "all"):
            cluster.kill_all()
            cluster.start_all()
            cluster.leader()
        run.wait_for_progress(10)
    run.finish("whole-cluster restart").assert_safe()


def test_rolling_restart(start_run: Start) -> None:
    run = start_run(load=True)
    cluster = run.cluster
    for _ in rounds(1):
        cluster.rolling_restart()
        run.wait_for_progress(10)
    run.finish("rolling restart").assert_safe()


def test_membership_change_under_load(start_run: Start) -> None:
    """Add a fourth node, then remove an original one (moving leadership off it first)."""
    run = start_run(load=True)
    cluster = run.cluster
    with cluster.fault("add member", "n4"):
        added = cluster.add_member()
    run.wait_for_progress(10)
    with cluster.fault("remove member", "n1"):
        cluster.remove_member(0)
    run.wait_for_progress(10)
    members = cluster.admin("members", "--json")
    assert sorted(m["node"] for m in __import__("json").loads(members)) == ["n2", "n3", "n4"]
    assert cluster.nodes[added].running()
    run.finish("membership change").assert_safe()
