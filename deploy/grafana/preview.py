"""Draws deploy/grafana/turnstile.json's panels from its own queries, as a PNG.

Why: the docs show what an operator sees on the dashboard without a Grafana to screenshot.
By default the script starts a local three-node cluster, a load generator (contended locks,
max-hold expiries, sessions that expire or close, list inserts, and one leader killed and
restarted), and a throwaway Prometheus scraping the nodes every second; then it runs every
panel's query through Prometheus' ``query_range`` and lays the panels out on the dashboard's
grid with matplotlib. ``--prometheus-url`` draws from a Prometheus that already scrapes a
cluster instead (nothing is started).

Needs the ``prometheus`` binary (Debian: ``apt-get install prometheus``) and matplotlib
(``pip install -e '.[plot]'``). Every process it starts is stopped by PID before it exits.

    python deploy/grafana/preview.py --output docs/operations/grafana-dashboard.png
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator
from PIL import Image

from turnstile.client import connect
from turnstile.client.errors import TurnstileError
from turnstile.cluster.launcher import (
    NodeProcess,
    free_port,
    node_status,
    read_config,
    wait_for_leader,
    write_cluster,
)
from turnstile.v1 import turnstile_pb2 as pb

HERE = Path(__file__).resolve().parent
DASHBOARD = HERE / "turnstile.json"
DEFAULT_OUTPUT = HERE.parents[1] / "docs" / "operations" / "grafana-dashboard.png"

# Grafana's dark theme and classic palette.
BACKGROUND = "#111217"
PANEL = "#181b1f"
BORDER = "#2c3235"
TEXT = "#ccccdc"
DIM = "#8e8e99"
PALETTE = (
    "#73BF69",
    "#F2CC0C",
    "#8AB8FF",
    "#FF780A",
    "#F2495C",
    "#5794F2",
    "#B877D9",
    "#FADE2A",
    "#37872D",
    "#C4162A",
    "#1F60C4",
    "#8F3BB8",
)
NAMED_COLORS = {
    "green": "#73BF69",
    "red": "#F2495C",
    "orange": "#FF9830",
    "yellow": "#FADE2A",
    "blue": "#5794F2",
}
#: Pixels per grid unit: Grafana's row height is 30 px; the width is 24 columns of the figure.
ROW_PX = 30
WIDTH_PX = 1600
GUTTER_PX = 4


#: Figure coordinates: left, bottom, width, height.
Rect = tuple[float, float, float, float]


@dataclass
class Series:
    """One line of a panel: its legend text and its samples."""

    label: str
    #: Unix times, seconds.
    times: list[float]
    values: list[float]


# --- the throwaway cluster, load and Prometheus ----------------------------------------------


def _load(addresses: list[str], stop: threading.Event, seed: int) -> None:
    """One client in a loop: contended lock pairs, an occasional max-hold overrun, inserts."""
    rng = random.Random(seed)
    with connect(addresses, name=f"preview-{seed}", session_ttl=5) as client:
        seen = client.distinct_list("preview-seen")
        with contextlib.suppress(TurnstileError, TimeoutError):
            # Something for the State row: a group of the workers, and one of them elected.
            workers = client.group("preview-workers")
            workers.create()
            workers.join(f"worker-{seed}")
            if seed == 0:
                client.election("preview-scheduler").campaign(timeout=5)
        while not stop.is_set():
            try:
                if rng.random() < 0.01:
                    lock = client.lock(f"preview-overrun-{seed}", max_hold=0.2)
                    if lock.acquire(timeout=2):
                        time.sleep(0.5)  # past its max-hold: freed by the cluster
                        with contextlib.suppress(TurnstileError):
                            lock.release()
                lock = client.lock(f"preview-job-{seed % 2}")
                if lock.acquire(timeout=rng.uniform(0.2, 2)):
                    time.sleep(rng.expovariate(1 / 0.08))
                    lock.release()
                seen.insert_many(rng.randbytes(4) for _ in range(rng.randint(1, 5)))
            except TurnstileError:
                time.sleep(0.2)  # a leader change: the library already retried


def _churn(addresses: list[str], stop: threading.Event) -> None:
    """Sessions that end both ways: one closed, one left to expire holding a lock."""
    number = 0
    while not stop.wait(4):
        number += 1
        try:
            with connect(addresses, name="preview-short") as closed:
                closed.keep_alive()
            forgotten = connect(
                addresses,
                name="preview-forgotten",
                session_ttl=2,
                session_stream=False,
                keep_alive=False,
            )
            forgotten.lock(f"preview-orphan-{number}").acquire(timeout=2)
            # No keep-alives and no close: the session expires, and frees its lock.
            stop.wait(3)
            with contextlib.suppress(TurnstileError):
                forgotten.close()
        except TurnstileError:
            continue


def _leader_index(addresses: list[str]) -> int | None:
    for index, address in enumerate(addresses):
        status = node_status(address, timeout=0.5)
        if status is not None and status.role == pb.ROLE_LEADER:
            return index
    return None


def _wait_ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"Prometheus at {url} not ready within {timeout}s")


def _prometheus_config(targets: dict[str, str]) -> str:
    """Scrape every second; each node's ``instance`` is its node id (n1..n3)."""
    lines = [
        "global:",
        "  scrape_interval: 1s",
        "  evaluation_interval: 1s",
        "scrape_configs:",
        "  - job_name: turnstile",
        "    static_configs:",
    ]
    for node_id, address in targets.items():
        lines += [f"      - targets: ['{address}']", f"        labels: {{instance: '{node_id}'}}"]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def local_cluster_with_prometheus(
    work: Path, prometheus: str, duration: float, kill_leader: bool
) -> Iterator[tuple[str, float, float]]:
    """Runs the cluster, load and Prometheus for ``duration`` seconds; yields (Prometheus
    URL, start, end). Every node and Prometheus are stopped by PID on the way out."""
    paths = write_cluster(work / "cluster", 3, durability="fsync")
    configs = [read_config(path) for path in paths]
    addresses = [config.client_address for config in configs]
    nodes = [NodeProcess(path) for path in paths]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config_file = work / "prometheus.yml"
    config_file.write_text(
        _prometheus_config({c.node_id: c.metrics_address for c in configs}), encoding="utf-8"
    )
    stop = threading.Event()
    threads: list[threading.Thread] = []
    server: subprocess.Popen[bytes] | None = None
    try:
        for node in nodes:
            node.start()
        if wait_for_leader(addresses, timeout=30) is None:
            raise RuntimeError("the local cluster elected no leader")
        with (work / "prometheus.log").open("wb") as log:
            server = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={work / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        _wait_ready(url, 30)
        started = time.time()
        threads = [
            threading.Thread(target=_load, args=(addresses, stop, seed), daemon=True)
            for seed in range(6)
        ]
        threads.append(threading.Thread(target=_churn, args=(addresses, stop), daemon=True))
        for thread in threads:
            thread.start()
        print(f"load running for {duration:.0f}s against {', '.join(addresses)}", flush=True)
        if kill_leader:
            stop.wait(duration * 0.45)
            leader = _leader_index(addresses)
            if leader is not None:
                print(f"killing the leader {configs[leader].node_id}", flush=True)
                nodes[leader].kill()
                stop.wait(8)
                nodes[leader].start()
        stop.wait(max(0.0, started + duration - time.time()))
        ended = time.time()  # drawn up to here: what follows is the load winding down
        stop.set()
        for thread in threads:
            thread.join(15)
        yield url, started, ended
    finally:
        stop.set()
        if server is not None:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        for node in nodes:
            node.stop()


# --- queries -----------------------------------------------------------------------------------


def substitute(expr: str, rate_interval: str) -> str:
    """The dashboard's variables as Grafana would expand them for "All"."""
    expr = expr.replace("$__rate_interval", rate_interval).replace("$__interval", rate_interval)
    return re.sub(r"\$\{?(job|instance)\}?", ".*", expr)


def query_range(url: str, expr: str, start: float, end: float, step: float) -> list[Any]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{url}/api/v1/query_range?{params}", timeout=30) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    result: list[Any] = body["data"]["result"]
    return result


def legend(template: str, labels: dict[str, str], expr: str) -> str:
    if not template or template == "__auto":
        inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
        return inner or expr
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip()


def panel_series(
    url: str, panel: dict[str, Any], *, start: float, end: float, step: float, rate_interval: str
) -> list[Series]:
    series = []
    for target in panel["targets"]:
        expr = substitute(target["expr"], rate_interval)
        for result in query_range(url, expr, start, end, step):
            times = [float(t) for t, _ in result["values"]]
            values = [float(v) for _, v in result["values"]]
            label = legend(target.get("legendFormat", ""), result["metric"], expr)
            series.append(Series(label, times, values))
    series.sort(key=lambda s: s.label)
    return series


# --- drawing ---------------------------------------------------------------------------------


def format_value(value: float, unit: str) -> str:
    """A tick or stat in the panel's unit, the way Grafana abbreviates it."""
    if math.isnan(value):
        return "-"
    if unit == "s":
        magnitude = abs(value)
        if magnitude == 0:
            return "0 s"
        if magnitude < 1e-3:
            return f"{value * 1e6:.0f} µs"
        if magnitude < 1:
            return f"{value * 1e3:.3g} ms"
        return f"{value:.3g} s"
    suffix = {"reqps": " req/s", "ops": " ops/s"}.get(unit, "")
    for scale, letter in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{letter}{suffix}"
    text = f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"
    return text + suffix


def _frame(figure: Figure, grid: dict[str, int], total_rows: int) -> Rect:
    """Figure coordinates (left, bottom, width, height) of a grid cell, less the gutter."""
    height_px = total_rows * ROW_PX
    left = grid["x"] / 24 * WIDTH_PX + GUTTER_PX
    width = grid["w"] / 24 * WIDTH_PX - 2 * GUTTER_PX
    top = grid["y"] * ROW_PX + GUTTER_PX
    height = grid["h"] * ROW_PX - 2 * GUTTER_PX
    return (
        left / WIDTH_PX,
        1 - (top + height) / height_px,
        width / WIDTH_PX,
        height / height_px,
    )


def _background(figure: Figure, rect: Rect) -> Axes:
    frame = figure.add_axes(rect)
    frame.set_axis_off()
    frame.add_patch(
        FancyBboxPatch(
            (0, 0),
            1,
            1,
            boxstyle="round,pad=0,rounding_size=0.01",
            transform=frame.transAxes,
            facecolor=PANEL,
            edgecolor=BORDER,
            linewidth=0.8,
        )
    )
    return frame


def _threshold_color(panel: dict[str, Any], value: float) -> str:
    steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
    color = "blue"
    for step in steps:
        if step["value"] is None or (not math.isnan(value) and value >= step["value"]):
            color = step["color"]
    return NAMED_COLORS.get(color, color)


def draw_stat(figure: Figure, panel: dict[str, Any], rect: Rect, data: list[Series]) -> None:
    frame = _background(figure, rect)
    frame.text(0.03, 0.86, panel["title"], color=TEXT, fontsize=9, weight="bold", va="top")
    values = [v for s in data for v in s.values if not math.isnan(v)]
    last = (
        next((v for v in reversed(data[0].values) if not math.isnan(v)), math.nan)
        if data
        else math.nan
    )
    color = _threshold_color(panel, last)
    unit = panel["fieldConfig"]["defaults"].get("unit", "short")
    frame.text(
        0.5,
        0.38,
        format_value(last, unit),
        color=color,
        fontsize=24,
        weight="bold",
        ha="center",
        va="center",
    )
    if data and values:
        left, bottom, width, height = rect
        spark = figure.add_axes((left, bottom, width, height * 0.45))
        spark.set_axis_off()
        spark.fill_between(data[0].times, data[0].values, color=color, alpha=0.18, linewidth=0)
        spark.plot(data[0].times, data[0].values, color=color, linewidth=0.8, alpha=0.6)
        spark.set_ylim(
            min(values) - 0.05 * (max(values) - min(values) + 1), max(values) * 1.1 + 0.01
        )


def draw_timeseries(
    figure: Figure, panel: dict[str, Any], rect: Rect, data: list[Series], step: float
) -> None:
    frame = _background(figure, rect)
    left, bottom, width, height = rect
    width_px, height_px = (
        width * figure.get_figwidth() * figure.dpi,
        height * figure.get_figheight() * figure.dpi,
    )
    frame.text(
        8 / width_px,
        1 - 8 / height_px,
        panel["title"],
        color=TEXT,
        fontsize=9,
        weight="bold",
        va="top",
        transform=frame.transAxes,
    )
    longest = max((len(series.label) for series in data), default=10)
    columns = max(1, int((width_px - 16) // (longest * 5.2 + 30)))
    rows = min(math.ceil(len(data) / columns), 3) if data else 0
    legend_px = rows * 14 + 4
    plot = figure.add_axes(
        (
            left + 56 / figure.dpi / figure.get_figwidth(),
            bottom + (legend_px + 22) / figure.dpi / figure.get_figheight(),
            width - 66 / figure.dpi / figure.get_figwidth(),
            height - (legend_px + 22 + 30) / figure.dpi / figure.get_figheight(),
        )
    )
    plot.set_facecolor(PANEL)
    for spine in plot.spines.values():
        spine.set_visible(False)
    plot.grid(color=BORDER, linewidth=0.6)
    plot.tick_params(colors=DIM, labelsize=7, length=0)
    unit = panel["fieldConfig"]["defaults"].get("unit", "short")
    plot.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: format_value(v, unit)))
    plot.yaxis.set_major_locator(MaxNLocator(4))
    times = [t for series in data for t in series.times]
    span = max(times) - min(times) if times else 3600.0
    tick = next((t for t in (15, 30, 60, 120, 300, 600, 1800) if t >= span / 6), 3600)
    clock = "%H:%M" if tick >= 60 else "%H:%M:%S"
    plot.xaxis.set_major_locator(MultipleLocator(tick))
    plot.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _pos: datetime.fromtimestamp(v).strftime(clock))
    )
    custom = panel["fieldConfig"]["defaults"].get("custom", {})
    bars = custom.get("drawStyle") == "bars"
    stacked = custom.get("stacking", {}).get("mode") == "normal"
    if not data:
        plot.text(
            0.5, 0.5, "No data", color=DIM, ha="center", va="center", transform=plot.transAxes
        )
        plot.set_yticks([])
    below: dict[float, float] = {}
    for index, series in enumerate(data):
        color = PALETTE[index % len(PALETTE)]
        values = [0.0 if math.isnan(v) and stacked else v for v in series.values]
        base = [below.get(t, 0.0) for t in series.times] if stacked else [0.0] * len(values)
        tops = [b + v for b, v in zip(base, values, strict=True)]
        if bars:
            plot.bar(
                series.times,
                values,
                bottom=base,
                width=step * 0.9,
                color=color,
                alpha=0.8,
                label=series.label,
            )
        else:
            plot.plot(series.times, tops, color=color, linewidth=1.1, label=series.label)
            plot.fill_between(
                series.times, base, tops, color=color, alpha=0.3 if stacked else 0.08, linewidth=0
            )
        if stacked:
            below.update(zip(series.times, tops, strict=True))
    if data:
        peak = max((v for s in data for v in s.values if not math.isnan(v)), default=0.0)
        plot.set_ylim(bottom=0, top=None if peak > 0 else 1)
        shown = columns * rows
        handles, labels = plot.get_legend_handles_labels()
        if len(labels) > shown:
            handles, labels = handles[: shown - 1], [*labels[: shown - 1]]
            labels.append(f"... and {len(data) - shown + 1} more")
            handles.append(Line2D([], [], color=DIM))
        frame.legend(
            handles,
            labels,
            loc="lower left",
            bbox_to_anchor=(8 / width_px, 4 / height_px),
            ncol=columns,
            frameon=False,
            fontsize=7,
            labelcolor=TEXT,
            handlelength=1.2,
            columnspacing=1.0,
            borderaxespad=0,
        )


def draw(
    dashboard: dict[str, Any],
    fetch: Callable[[dict[str, Any]], list[Series]],
    step: float,
    output: Path,
) -> None:
    panels = dashboard["panels"]
    total_rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    figure = plt.figure(figsize=(WIDTH_PX / 100, total_rows * ROW_PX / 100), dpi=100)
    figure.patch.set_facecolor(BACKGROUND)
    for panel in panels:
        rect = _frame(figure, panel["gridPos"], total_rows)
        if panel["type"] == "row":
            figure.text(
                rect[0],
                rect[1] + rect[3] / 2,
                panel["title"],
                color=TEXT,
                fontsize=11,
                weight="bold",
                va="center",
            )
            continue
        data = fetch(panel)
        if panel["type"] == "stat":
            draw_stat(figure, panel, rect, data)
        else:
            draw_timeseries(figure, panel, rect, data, step)
    output.parent.mkdir(parents=True, exist_ok=True)
    drawn = io.BytesIO()
    figure.savefig(drawn, format="png", facecolor=BACKGROUND, dpi=100)
    plt.close(figure)
    # Flat colours on a dark background: 256 of them look the same at a third of the size.
    with Image.open(drawn) as image:
        flat = image.convert("RGB").quantize(
            256, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
        flat.save(output, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="PNG to write")
    parser.add_argument("--dashboard", type=Path, default=DASHBOARD)
    parser.add_argument("--duration", type=float, default=150, help="seconds of load")
    parser.add_argument("--step", type=float, default=2, help="query_range step, seconds")
    parser.add_argument("--rate-interval", default="10s", help="what $__rate_interval becomes")
    parser.add_argument("--prometheus", default="prometheus", help="the Prometheus binary")
    parser.add_argument("--no-kill", action="store_true", help="leave the leader alone")
    parser.add_argument(
        "--prometheus-url",
        help="draw the last --duration seconds from this Prometheus instead (starts nothing)",
    )
    args = parser.parse_args(argv)
    # Sessions left to expire on purpose: the client library's warnings about them are noise.
    logging.getLogger("turnstile.client").setLevel(logging.ERROR)
    dashboard = json.loads(args.dashboard.read_text(encoding="utf-8"))

    def render(url: str, start: float, end: float) -> None:
        def fetch(panel: dict[str, Any]) -> list[Series]:
            return panel_series(
                url, panel, start=start, end=end, step=args.step, rate_interval=args.rate_interval
            )

        draw(dashboard, fetch, args.step, args.output)
        print(f"wrote {args.output} ({args.output.stat().st_size // 1024} KiB)")

    if args.prometheus_url:
        end = time.time()
        render(args.prometheus_url.rstrip("/"), end - args.duration, end)
        return 0
    with (
        tempfile.TemporaryDirectory(prefix="turnstile-preview-") as work,
        local_cluster_with_prometheus(
            Path(work), args.prometheus, args.duration, not args.no_kill
        ) as (url, start, end),
    ):
        render(url, start, end)
    return 0


if __name__ == "__main__":
    sys.exit(main())
