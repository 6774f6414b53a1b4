"""``python -m turnstile.bench.grpc_floor``: grpc-python's own cost per round trip, measured
against a real echo server process."""

from __future__ import annotations

import pytest

from turnstile.bench import grpc_floor

pytestmark = pytest.mark.integration

PATTERNS = {
    "sync stream",
    "sync stream, caller reads",
    "sync unary",
    "asyncio stream",
    "asyncio unary",
}


def test_every_pattern_makes_its_round_trips_and_costs_some_cpu(
    capsys: pytest.CaptureFixture[str],
) -> None:
    grpc_floor.main(["--round-trips", "50", "--answer-delay-ms", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "client CPU per round trip (50 round trips, answers after 1 ms):"
    costs = {line.rsplit(None, 2)[0].strip(): float(line.rsplit(None, 2)[1]) for line in lines[1:]}
    assert set(costs) == PATTERNS
    assert all(cost > 0 for cost in costs.values())


@pytest.mark.parametrize("argv", [["--round-trips", "0"], ["--answer-delay-ms", "-1"]])
def test_a_bad_count_or_delay_is_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        grpc_floor.main(argv)
    assert exit_info.value.code == 2
    assert "--round-trips must be at least 1" in capsys.readouterr().err
