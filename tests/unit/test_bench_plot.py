"""``turnstile bench --plot DIR`` and ``--from FILE``: the charts of a run's JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from turnstile.bench import plot
from turnstile.bench.cli import main
from turnstile.bench.stats import CDF_FRACTIONS, cdf_ms

pytestmark = pytest.mark.unit

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _row(clients: int, rate: float, scale: float) -> dict[str, Any]:
    latencies = [scale * (1 + i / 50) / 1000 for i in range(200)]
    return {
        "clients": clients,
        "ops": int(rate * 10),
        "ops_per_s": rate,
        "p50_ms": 1.0,
        "p99_ms": 2.0,
        "cdf_ms": cdf_ms(latencies),
        "violations": 0,
    }


def _results() -> dict[str, Any]:
    def system(rate: float, scale: float) -> dict[str, Any]:
        return {
            "available": True,
            "rows": {
                "lock_uncontended@16": _row(16, rate, scale),
                "lock_uncontended@64": _row(64, rate * 1.2, scale * 3),
                "failover@4": {**_row(4, 50.0, 1.0), "gap_s": 0.2},
            },
        }

    return {
        "command": "turnstile bench",
        "systems": {"turnstile": system(800.0, 2.0), "etcd": system(900.0, 1.5)},
        "violations": 0,
        "failed_rows": 0,
    }


def test_a_cdf_samples_every_percent_and_the_99_9th() -> None:
    latencies = [i / 1000 for i in range(1, 1001)]  # 1..1000 ms
    cdf = cdf_ms(latencies)
    assert len(cdf) == len(CDF_FRACTIONS) == 101
    assert (cdf[0], cdf[49], cdf[98], cdf[99], cdf[100]) == (10.0, 500.0, 990.0, 999.0, 1000.0)
    assert cdf == sorted(cdf)
    assert cdf_ms([]) == []


def test_draws_a_throughput_chart_per_workload_and_a_cdf_per_row(tmp_path: Path) -> None:
    charts = plot.draw(_results(), tmp_path / "charts")
    assert sorted(c.name for c in charts) == [
        "latency-lock_uncontended-16.png",
        "latency-lock_uncontended-64.png",
        "throughput-lock_uncontended.png",
    ]
    for chart in charts:
        assert chart.read_bytes().startswith(PNG_SIGNATURE)
        assert chart.stat().st_size > 10_000  # axes, two lines and a legend, not a blank


def test_results_without_systems_are_refused(tmp_path: Path) -> None:
    with pytest.raises(plot.PlotError, match="no systems"):
        plot.draw({"systems": {}}, tmp_path)


def test_from_a_saved_run_prints_its_table_and_draws(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps(_results()))
    assert main(["--from", str(saved), "--plot", str(tmp_path / "charts")]) == 0
    out, err = capsys.readouterr()
    assert "lock pairs, one name per client" in out and "turnstile" in out
    assert "3 charts in" in err
    assert len(list((tmp_path / "charts").glob("*.png"))) == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("not json", "is not JSON"),
        ('{"rows": []}', "holds no bench results"),
    ],
)
def test_a_bad_saved_run_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    saved = tmp_path / "run.json"
    if content is not None:
        saved.write_text(content)
    assert main(["--from", str(saved)]) == 2
    assert message in capsys.readouterr().err
