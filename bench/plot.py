"""``turnstile bench --plot DIR``: a bench run's numbers as charts (PNG), for docs and reviews.

One chart per throughput workload (operations or members per second by client count, a line
per system) and one latency CDF per workload and client count (a line per system, log-scale
milliseconds). Drawn with matplotlib, the optional ``plot`` extra
(``pip install 'turnstile[plot]'``), imported only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from turnstile.bench.report import ROWS, row_family, row_keys
from turnstile.bench.stats import CDF_FRACTIONS

#: The y-axis of each throughput metric.
METRIC_LABELS = {"ops_per_s": "operations per second", "members_per_s": "members per second"}


class PlotError(Exception):
    """The charts cannot be drawn; the message says why."""


def draw(results: dict[str, Any], directory: Path) -> list[Path]:
    """Writes the charts of ``results`` (a bench run's JSON) into ``directory``; returns them."""
    try:
        import matplotlib  # noqa: PLC0415 - the optional extra, only for --plot

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
        from matplotlib import ticker  # noqa: PLC0415
    except ImportError:
        raise PlotError("--plot needs matplotlib: pip install 'turnstile[plot]'") from None
    systems = results.get("systems")
    if not isinstance(systems, dict) or not systems:
        raise PlotError("no systems in these results (expected `turnstile bench --json` output)")
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    keys = row_keys(results)
    for family, (label, metric, higher_is_better) in ROWS.items():
        if not higher_is_better:
            continue
        fig, axes = plt.subplots(figsize=(6.4, 4.0))
        drawn = False
        for system, info in systems.items():
            points = sorted(
                (int(row["clients"]), float(row[metric]))
                for key, row in info.get("rows", {}).items()
                if key in keys and row_family(key.split("@")[0]) == family and metric in row
            )
            if points:
                axes.plot(*zip(*points, strict=True), marker="o", label=system)
                drawn = True
        if drawn:
            axes.set(title=label, xlabel="clients", ylabel=METRIC_LABELS[metric], ylim=(0, None))
            axes.grid(alpha=0.3)
            axes.legend()
            written.append(_save(fig, directory / f"throughput-{family}.png"))
        plt.close(fig)
    for key in keys:
        prefix, _, clients = key.partition("@")
        if not ROWS[row_family(prefix)][2]:
            continue  # the failover gap and the dead client's lock are one number each
        fig, axes = plt.subplots(figsize=(6.4, 4.0))
        drawn = False
        for system, info in systems.items():
            cdf = info.get("rows", {}).get(key, {}).get("cdf_ms")
            if cdf:
                axes.plot(cdf, _percentiles(len(cdf)), label=system)
                drawn = True
        if drawn:
            title = f"{ROWS[row_family(prefix)][0]}, {clients} clients: latency"
            axes.set(title=title, xlabel="milliseconds (log)", ylabel="percentile", xscale="log")
            axes.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            axes.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            axes.xaxis.set_minor_formatter(ticker.NullFormatter())
            axes.grid(alpha=0.3, which="both")
            axes.legend()
            written.append(_save(fig, directory / f"latency-{prefix}-{clients}.png"))
        plt.close(fig)
    return written


def _percentiles(count: int) -> list[float]:
    """The percentile of each point of a row's ``cdf_ms`` (``count`` of them)."""
    if count != len(CDF_FRACTIONS):
        raise PlotError(f"a latency CDF of {count} points; this build writes {len(CDF_FRACTIONS)}")
    return [100 * f for f in CDF_FRACTIONS]


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
