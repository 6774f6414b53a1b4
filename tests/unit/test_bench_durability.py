"""``turnstile bench --durability`` and ``--forwarding``: the options, the systems they make,
and the table that puts the two modes side by side."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from turnstile.bench import cli, report
from turnstile.bench.runner import Plan, System, SystemRun
from turnstile.bench.systems import EtcdCluster, TurnstileCluster

pytestmark = pytest.mark.unit


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


def names(*argv: str, endpoints: list[str] | None = None) -> list[tuple[str, str | None]]:
    return [(s.name, s.durability) for s in cli.systems(parse(*argv), endpoints)]


def test_the_default_is_one_fsync_run_under_the_plain_name() -> None:
    assert names() == [("turnstile", "fsync")]
    assert names("--compare", "etcd") == [("turnstile", "fsync"), ("etcd", None)]


def test_both_modes_are_two_turnstile_systems_before_the_peers() -> None:
    assert names("--durability", "fsync,none", "--compare", "zookeeper") == [
        ("turnstile", "fsync"),
        ("turnstile (durability=none)", "none"),
        ("zookeeper", None),
    ]
    assert names("--durability", " none , fsync,none") == [
        ("turnstile (durability=none)", "none"),
        ("turnstile", "fsync"),
    ]


@pytest.mark.parametrize("value", ["sync", "fsync,async", "", ","])
def test_a_bad_mode_is_a_usage_error_naming_the_option(value: str) -> None:
    with pytest.raises(cli.UsageError, match=r"^--durability: a comma list of fsync,none"):
        cli.systems(parse("--durability", value), None)


def test_a_running_cluster_is_of_unknown_durability_and_cannot_be_given_one() -> None:
    assert names(endpoints=["127.0.0.1:1"]) == [("turnstile", "unknown")]
    with pytest.raises(cli.UsageError, match=r"^--durability: cannot be chosen with --endpoints"):
        cli.systems(parse("--durability", "fsync"), ["127.0.0.1:1"])


def test_forwarding_on_and_off_are_two_turnstile_systems_per_durability() -> None:
    systems = cli.systems(parse("--forwarding", "on,off", "--durability", "fsync,none"), None)
    assert [(s.name, s.durability, s.forwarding) for s in systems] == [
        ("turnstile", "fsync", True),
        ("turnstile (forwarding off)", "fsync", False),
        ("turnstile (durability=none)", "none", True),
        ("turnstile (durability=none, forwarding off)", "none", False),
    ]


@pytest.mark.parametrize("value", ["yes", "on,of", "", ","])
def test_a_bad_forwarding_mode_is_a_usage_error_naming_the_option(value: str) -> None:
    with pytest.raises(cli.UsageError, match=r"^--forwarding: a comma list of on,off"):
        cli.systems(parse("--forwarding", value), None)
    with pytest.raises(cli.UsageError, match=r"^--forwarding: cannot be chosen with --endpoints"):
        cli.systems(parse("--forwarding", "off"), ["127.0.0.1:1"])


def test_bad_modes_exit_2_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse("--durability", "none,paranoid")) == cli.EXIT_USAGE
    assert "--durability: a comma list of fsync,none, got 'paranoid'" in capsys.readouterr().err


def test_each_turnstile_run_starts_its_cluster_in_its_mode_and_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    none = SystemRun(System("turnstile", "none"), Plan.quick(), print)
    cluster = none._cluster(tmp_path)
    assert isinstance(cluster, TurnstileCluster)
    assert cluster.durability == "none"
    assert isinstance(
        SystemRun(System("etcd"), Plan.quick(), print)._cluster(tmp_path), EtcdCluster
    )
    monkeypatch.setattr(SystemRun, "_run", lambda self: {"available": True, "rows": {}})
    assert none.run() == {
        "durability": "none",
        "forwarding": "on",
        "available": True,
        "rows": {},
    }
    off = SystemRun(System("turnstile", "fsync", forwarding=False), Plan.quick(), print)
    cluster = off._cluster(tmp_path)
    assert isinstance(cluster, TurnstileCluster) and not cluster.forward_streams
    assert off.run()["forwarding"] == "off"
    remote = SystemRun(System("turnstile", "unknown"), Plan.quick(), print, ["127.0.0.1:1"])
    assert "forwarding" not in remote.run()
    assert SystemRun(System("etcd"), Plan.quick(), print).run() == {"available": True, "rows": {}}


def turnstile(
    durability: str, ops_per_s: float, gap_s: float, forwarding: str = "on"
) -> dict[str, Any]:
    return {
        "durability": durability,
        "forwarding": forwarding,
        "available": True,
        "rows": {
            "lock_uncontended@16": {
                "ops_per_s": ops_per_s,
                "p50_ms": 4.0,
                "p99_ms": 9.5,
                "violations": 0,
            },
            "failover@4": {"gap_s": gap_s, "errors": 0, "violations": 0},
        },
    }


def results(**systems: dict[str, Any]) -> dict[str, Any]:
    return {"violations": 0, "systems": systems}


def columns(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in text.split("\n\n", maxsplit=1)[0].splitlines()
    ]


def test_both_modes_get_a_fsync_over_none_throughput_column() -> None:
    text = report.table(
        results(
            **{
                "turnstile": turnstile("fsync", 600.0, 1.2),
                "turnstile (durability=none)": turnstile("none", 1200.0, 1.0),
            }
        )
    )
    header, _rule, locks, failover = columns(text)
    assert header == [
        "workload",
        "clients",
        "turnstile",
        "turnstile (durability=none)",
        "fsync/none",
    ]
    assert locks[-1] == "0.5x"
    # The failover gap is not a throughput: no ratio there.
    assert failover[-1] == "-"
    assert (
        "durability: turnstile fsync (the Raft log is fdatasynced before an entry counts); "
        "turnstile (durability=none) none (the Raft log is never synced)"
    ) in text
    assert "fsync/none: throughput of turnstile over turnstile (durability=none)" in text


def test_forwarding_off_gets_an_on_over_off_column_and_the_peers_meet_the_run_with_it() -> None:
    etcd = {
        "available": True,
        "rows": {"lock_uncontended@16": {"ops_per_s": 300.0, "p50_ms": 4.0, "p99_ms": 9.5}},
    }
    text = report.table(
        results(
            **{
                "turnstile": turnstile("fsync", 600.0, 1.2),
                "turnstile (forwarding off)": turnstile("fsync", 800.0, 1.0, forwarding="off"),
                "etcd": etcd,
            }
        )
    )
    header, _rule, locks, failover = columns(text)
    assert header[-2:] == ["turnstile vs best", "forwarding on/off"]
    assert locks[-2:] == ["2.0x", "0.8x"]
    assert failover[-1] == "-"
    assert "forwarding on/off: throughput of turnstile, whose followers forward" in text


def test_the_peers_are_compared_with_the_fsync_run_only() -> None:
    etcd = {
        "available": True,
        "rows": {"lock_uncontended@16": {"ops_per_s": 300.0, "p50_ms": 4.0, "p99_ms": 9.5}},
    }
    text = report.table(
        results(
            **{
                "turnstile (durability=none)": turnstile("none", 1200.0, 1.0),
                "turnstile": turnstile("fsync", 600.0, 1.2),
                "etcd": etcd,
            }
        )
    )
    header, _rule, locks, _failover = columns(text)
    assert header[-2:] == ["turnstile vs best", "fsync/none"]
    assert locks[-2:] == ["2.0x", "0.5x"]
    assert "; etcd: fsync every commit (their default)" in text

    # Without a fsync run there is nothing fair to compare the peers with.
    alone = columns(
        report.table(
            results(**{"turnstile (durability=none)": turnstile("none", 1200.0, 1.0), "etcd": etcd})
        )
    )
    assert alone[0] == ["workload", "clients", "turnstile (durability=none)", "etcd"]


def test_one_mode_alone_has_no_ratio_column_but_still_names_its_mode() -> None:
    text = report.table(results(turnstile=turnstile("unknown", 600.0, 1.2)))
    assert columns(text)[0] == ["workload", "clients", "turnstile"]
    assert "durability: turnstile unknown (a running cluster, --endpoints)" in text


def test_the_idle_note_names_the_leaders_cpu_with_the_sessions_on_its_followers() -> None:
    idle = {
        "idle_cpu_pct_per_node": [1.0, 1.5, 1.2],
        "sessions": 10_000,
        "session_ttl_s": 10.0,
        "leader_cpu_pct_with_sessions": 9.1,
        "keepalives_per_s": 2998.0,
        "leader_rss_mb_before": 132.0,
        "leader_rss_mb_with_sessions": 155.0,
        "on_followers": {
            "leader_cpu_pct": 1.9,
            "followers_cpu_pct": [6.5, 6.1],
            "keepalives_per_s": 2990.0,
        },
        "violations": 0,
    }
    system = turnstile("fsync", 600.0, 1.2)
    system["rows"]["idle"] = idle
    text = report.table(results(turnstile=system))
    assert (
        "the same sessions on the followers (2,990 keep-alives/s): leader 1.9%, followers "
        "6.5% and 6.1%"
    ) in text
