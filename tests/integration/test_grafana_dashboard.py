"""The Grafana dashboard (deploy/grafana/turnstile.json) queries only what a node exports.

A dashboard that names a metric the node does not serve draws an empty panel and nobody
notices until the day it is needed: the integration test scrapes a real node after a little
traffic and checks every series name (and every label a selector matches on) of every query.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.cluster import Cluster, wait_until
from turnstile.client import connect

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "turnstile.json"

#: Labels Prometheus attaches at scrape time: not on /metrics, but fine to select on.
TARGET_LABELS = frozenset({"job", "instance"})

#: PromQL words that look like identifiers but name no series.
KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
    }
)

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' collapsed children included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression: panel targets and the template variables' queries."""
    found = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found.append(query["query"] if isinstance(query, dict) else query)
    return found


def series_names(expr: str) -> set[str]:
    """Names of the series ``expr`` selects: identifiers that are neither functions (followed
    by ``(``), keywords, label names (inside ``{}`` or a ``by (...)`` list), nor durations
    (inside ``[]``). ``label_values(metric, label)``'s second argument is a label."""
    expr = re.sub(r"label_values\(\s*([^,]+),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)", r"\1", expr)
    expr = _STRING.sub('""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = _GROUPING.sub(" ", expr)
    expr = re.sub(r"\b\d[\w.]*", " ", expr)  # numbers and durations (0.99, 5m)
    names = set()
    for match in _IDENT.finditer(expr):
        word = match.group()
        if expr[match.end() :].lstrip().startswith("(") or word.lower() in KEYWORDS:
            continue
        if expr[: match.start()].endswith("$"):  # a variable such as $job
            continue
        names.add(word)
    return names


def selector_labels(expr: str) -> list[tuple[str, str]]:
    """(series, label) for every label matcher of a ``series{...}`` selector."""
    expr = _STRING.sub('""', expr)
    return [
        (series, label)
        for series, matchers in _SELECTOR.findall(expr)
        for label in _MATCHER.findall(matchers)
    ]


def scraped(text: str) -> dict[str, set[str]]:
    """Series name -> label names, from a /metrics page (a histogram ``x`` shows as
    ``x_bucket``, ``x_sum``, ``x_count``; a counter ``x`` as ``x_total``)."""
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def missing(dashboard: dict[str, Any], exported: dict[str, set[str]]) -> list[str]:
    """What the dashboard queries that ``exported`` lacks, one line each."""
    problems = []
    for expr in queries(dashboard):
        for name in sorted(series_names(expr)):
            if name not in exported:
                problems.append(f"{name}: not exported ({expr})")
        for name, label in selector_labels(expr):
            if label not in TARGET_LABELS and label not in exported.get(name, {label}):
                problems.append(f"{name}: has no label {label!r} ({expr})")
    return problems


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


@pytest.mark.unit
def test_dashboard_is_well_formed(dashboard: dict[str, Any]) -> None:
    """Every panel has a title, the templated datasource and a query; ids are unique; the
    grid is 24 wide with no two panels overlapping."""
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert {"job", "instance"} <= variables.keys()
    all_panels = list(panels(dashboard))
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: dict[tuple[int, int], str] = {}
    for panel in all_panels:
        assert panel.get("title"), f"panel {panel['id']} has no title"
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"{panel['title']}: empty query"
            assert target["datasource"] == panel["datasource"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


@pytest.mark.unit
def test_the_query_parser_finds_series_not_functions_or_labels() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, method) "
        '(rate(x_bucket{code!="OK", job=~"$job"}[$__rate_interval]))) '
        "/ ignoring(code) y_total - z offset 5m"
    )
    assert series_names(expr) == {"x_bucket", "y_total", "z"}
    assert selector_labels(expr) == [("x_bucket", "code"), ("x_bucket", "job")]
    assert series_names('label_values(t{job=~"$job"}, instance)') == {"t"}


@pytest.mark.integration
@pytest.mark.shared_cluster
def test_every_metric_the_dashboard_queries_is_exported(
    cluster: Cluster, dashboard: dict[str, Any]
) -> None:
    """After a session, a lock taken and released and a list insert, the leader's /metrics
    has every series (and selector label) the dashboard names."""
    leader = cluster.leader()

    def scrape() -> dict[str, set[str]]:
        return scraped(cluster.metrics(leader))

    with connect(cluster.addresses, name="grafana-test") as client:
        lock = client.lock("grafana-dashboard-lock")
        assert lock.acquire(timeout=10)
        lock.release()
        client.distinct_list("grafana-dashboard-list").insert(b"member")

    def settled() -> dict[str, set[str]]:
        # Closing the client ended its session: the last labelled series to appear.
        found = scrape()
        return found if "turnstile_sessions_ended_total" in found else {}

    exported = wait_until(settled)
    problems = missing(dashboard, exported)
    assert not problems, "the dashboard queries what the node does not export:\n" + "\n".join(
        problems
    )


@pytest.mark.unit
def test_provisioning_files_point_at_prometheus_and_a_dashboard_folder() -> None:
    provisioning = DASHBOARD.parent / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "turnstile.yaml").read_text())
    assert [s["type"] for s in sources["datasources"]] == ["prometheus"]
    assert sources["datasources"][0]["isDefault"] is True
    providers = yaml.safe_load((provisioning / "dashboards" / "turnstile.yaml").read_text())
    assert [p["type"] for p in providers["providers"]] == ["file"]
    assert providers["providers"][0]["options"]["path"]
