"""The bench's table: one row per workload, one column per system, the ratio of Turnstile to
the best peer and, when both durability modes ran, of fsync to none. Every cell carries its
correctness verdict so no number stands alone."""

from __future__ import annotations

import math
from typing import Any

#: Row key prefix -> (label, metric, higher is better).
ROWS: dict[str, tuple[str, str, bool]] = {
    "lock_uncontended": ("lock pairs, one name per client", "ops_per_s", True),
    "lock_followers": ("lock pairs, clients on followers only", "ops_per_s", True),
    "lock_contended": ("lock pairs, one name for all", "ops_per_s", True),
    "insert_one": ("list inserts, one per request, 50% dup", "members_per_s", True),
    "insert_batch": ("list inserts, batches, 50% dup", "members_per_s", True),
    "read_linearizable": ("reads, linearizable", "ops_per_s", True),
    "read_stale": ("reads, stale (any member)", "ops_per_s", True),
    "failover": ("failover: longest gap, kill -9 leader", "gap_s", False),
    "dead_client": ("dead client's lock to waiter", "kill_to_grant_s", False),
}

#: Durability mode -> what the note under the table says of it.
DURABILITY_NOTES = {
    "fsync": "fsync (the Raft log is fdatasynced before an entry counts)",
    "none": "none (the Raft log is never synced)",
    "unknown": "unknown (a running cluster, --endpoints)",
}


def _number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def cell(row: dict[str, Any] | None, prefix: str) -> str:
    """One system's cell of one row."""
    if row is None:
        return "-"
    if "error" in row:
        return "failed"
    verdict = "ok" if row.get("violations", 0) == 0 else f"VIOLATIONS {row['violations']}"
    if prefix == "failover":
        return f"{row['gap_s']:.2f} s, {row.get('errors', 0)} err; {verdict}"
    if prefix == "dead_client":
        return f"{row['kill_to_grant_s']:.2f} s (TTL {row['ttl_s']:g} s)"
    if prefix == "lock_contended":
        text = f"{_number(row['ops_per_s'])}/s"
        if "handoff_p50_ms" in row:
            text += f", r2g p50 {row['handoff_p50_ms']:.2f} ms"
        return f"{text}, {_latency(row)}{_cpu(row)}; {verdict}"
    if prefix.startswith("insert"):
        return (
            f"{_number(row['members_per_s'])}/s {_latency(row)}, "
            f"dup {row['duplicate_pct']:.0f}%{_cpu(row)}; {verdict}"
        )
    return f"{_number(row['ops_per_s'])}/s {_latency(row)}{_cpu(row)}; {verdict}"


def _latency(row: dict[str, Any]) -> str:
    return f"p50 {_number(row['p50_ms'])} p99 {_number(row['p99_ms'])} ms"


def _cpu(row: dict[str, Any]) -> str:
    """The busiest server's CPU per request, when the bench could measure it, and the
    leader's when that is another one (a follower serving forwarded clients)."""
    busiest = row.get("busiest_server_cpu_ms_per_op")
    if busiest is None:
        return ""
    leader = row.get("leader_cpu_ms_per_op")
    if leader is None or round(leader, 2) == round(busiest, 2):
        return f", cpu {busiest:.2f} ms"
    return f", cpu {busiest:.2f} ms (leader {leader:.2f})"


def ratio(ours: dict[str, Any] | None, others: list[dict[str, Any] | None], prefix: str) -> str:
    """``ours`` against the best of ``others`` on the row's metric (>1: ours better)."""
    _label, metric, higher = ROWS[row_family(prefix)]
    value = (ours or {}).get(metric)
    best_of = [r[metric] for r in others if r is not None and metric in r and r[metric] > 0]
    if value is None or not best_of or value <= 0:
        return "-"
    best = max(best_of) if higher else min(best_of)
    return f"{value / best:.1f}x" if higher else f"{best / value:.1f}x"


def throughput_ratio(one: dict[str, Any] | None, other: dict[str, Any] | None, prefix: str) -> str:
    """Throughput of one Turnstile run over another's (the log synced over not, forwarding
    over not); "-" on the rows that are not a throughput (failover gap, dead client)."""
    return ratio(one, [other], prefix) if ROWS[row_family(prefix)][2] else "-"


def durabilities(results: dict[str, Any]) -> dict[str, str]:
    """System name -> durability of every Turnstile system in the run (peers record none)."""
    return {
        name: info["durability"]
        for name, info in results["systems"].items()
        if "durability" in info
    }


def without_forwarding(results: dict[str, Any]) -> dict[str, str]:
    """System name -> durability of the Turnstile systems whose followers did not forward."""
    return {
        name: info["durability"]
        for name, info in results["systems"].items()
        if info.get("forwarding") == "off"
    }


def row_family(prefix: str) -> str:
    """The ``ROWS`` entry of a row key's prefix (every batch size is one family)."""
    return "insert_batch" if prefix.startswith("insert_batch") else prefix


def row_keys(results: dict[str, Any]) -> list[str]:
    """Every row key any system reported, in table order."""
    seen: list[str] = []
    for system in results["systems"].values():
        for key in system.get("rows", {}):
            if key not in seen and row_family(key.split("@")[0]) in ROWS:
                seen.append(key)
    order = list(ROWS)
    return sorted(
        seen,
        key=lambda k: (
            order.index(row_family(k.split("@")[0])),
            int(k.split("@")[1]) if "@" in k else 0,
        ),
    )


def table(results: dict[str, Any]) -> str:
    """The human-readable table of a bench run."""
    systems = list(results["systems"])
    turnstiles = durabilities(results)
    peers = [s for s in systems if s not in turnstiles]
    unforwarded = without_forwarding(results)
    modes = {name: mode for name, mode in turnstiles.items() if name not in unforwarded}
    by_mode = {mode: name for name, mode in modes.items()}
    # The fsync run without forwarding, beside the one with it.
    on = by_mode.get("fsync")
    off = next((n for n, m in unforwarded.items() if m == "fsync"), None) if on else None
    # The peers fsync every commit, so they are compared with the fsync run (or the given
    # endpoints', mode unknown), never with durability = none.
    compared = (by_mode.get("fsync") or by_mode.get("unknown")) if peers else None
    compare_modes = "fsync" in by_mode and "none" in by_mode
    headers = ["workload", "clients", *systems]
    if compared is not None:
        headers.append(f"{compared} vs best")
    if compare_modes:
        headers.append("fsync/none")
    if off is not None:
        headers.append("forwarding on/off")
    lines = []
    for key in row_keys(results):
        prefix, _, clients = key.partition("@")
        label = ROWS[row_family(prefix)][0]
        if prefix.startswith("insert_batch"):
            label = label.replace("batches", f"batches of {prefix.removeprefix('insert_batch')}")
        per_system = {s: results["systems"][s].get("rows", {}).get(key) for s in systems}
        line = [label, clients or "-", *(cell(per_system[s], prefix) for s in systems)]
        if compared is not None:
            line.append(ratio(per_system[compared], [per_system[p] for p in peers], prefix))
        if compare_modes:
            line.append(
                throughput_ratio(per_system[by_mode["fsync"]], per_system[by_mode["none"]], prefix)
            )
        if on is not None and off is not None:
            line.append(throughput_ratio(per_system[on], per_system[off], prefix))
        lines.append(line)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    out = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    out += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
        for line in lines
    ]
    notes = _notes(results, modes, peers, (on, off))
    return "\n".join([*out, "", *notes])


def _on_followers(idle: dict[str, Any]) -> str:
    """The idle row's second half: the same sessions held through the followers."""
    spread = idle.get("on_followers")
    if not spread:
        return ""
    if "error" in spread:
        return f"; the same sessions on the followers: {spread['error']}"
    followers = " and ".join(f"{c:.1f}%" for c in spread["followers_cpu_pct"])
    return (
        f"; the same sessions on the followers ({spread['keepalives_per_s']:,.0f} "
        f"keep-alives/s): leader {spread['leader_cpu_pct']:.1f}%, followers {followers}"
    )


def _notes(
    results: dict[str, Any],
    modes: dict[str, str],
    peers: list[str],
    forwarding: tuple[str | None, str | None],
) -> list[str]:
    """The lines under the table: systems not run, durability, the ratio columns, idle cost,
    failed rows, CRITICAL log lines and the correctness total."""
    by_mode = {mode: name for name, mode in modes.items()}
    compare_modes = "fsync" in by_mode and "none" in by_mode
    on, off = forwarding
    notes = [
        f"{system}: not run ({info['reason']})"
        for system, info in results["systems"].items()
        if not info.get("available")
    ]
    if modes:
        notes.append(
            "durability: "
            + "; ".join(f"{name} {DURABILITY_NOTES[mode]}" for name, mode in modes.items())
            + (f"; {', '.join(peers)}: fsync every commit (their default)" if peers else "")
        )
    if compare_modes:
        notes.append(
            f"fsync/none: throughput of {by_mode['fsync']} over {by_mode['none']} "
            "(below 1x: what syncing the log costs)"
        )
    if off is not None:
        notes.append(
            f"forwarding on/off: throughput of {on}, whose followers forward their stream "
            f"clients' calls to the leader, over {off} (forward_streams = false: they send those "
            "clients to the leader); below 1x: what the extra hop costs on this machine"
        )
    for system, info in results["systems"].items():
        idle = info.get("rows", {}).get("idle")
        if idle and "error" not in idle:
            notes.append(
                f"{system} idle CPU per node (no clients): "
                + ", ".join(f"{c:.2f}%" for c in idle["idle_cpu_pct_per_node"])
                + f"; leader with {idle['sessions']:,} sessions kept alive (TTL "
                f"{idle['session_ttl_s']:g} s, {idle['keepalives_per_s']:,.0f} keep-alives/s): "
                f"{idle['leader_cpu_pct_with_sessions']:.1f}% CPU, "
                f"RSS {idle['leader_rss_mb_before']:.0f} -> "
                f"{idle['leader_rss_mb_with_sessions']:.0f} MB" + _on_followers(idle)
            )
    for system, info in results["systems"].items():
        for key, row in info.get("rows", {}).items():
            if row.get("error"):
                notes.append(f"{system} {key}: {row['error'].splitlines()[0]}")
        logs = info.get("rows", {}).get("node_logs")
        if logs and logs["critical_lines"]:
            notes.append(
                f"{system} node logs: {logs['critical_lines']} CRITICAL lines: {logs['first']}"
            )
    notes.append(
        f"correctness: {results['violations']} violations (overlapping holds, token "
        "regressions, id conflicts, CRITICAL node log lines) over every row above"
    )
    return notes
