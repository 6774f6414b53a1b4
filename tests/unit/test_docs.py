"""The samples in the docs are read by the real loader, so they cannot drift from the code."""

import re
import subprocess
from pathlib import Path

import grpc
import pytest

from turnstile.cluster.config import load_config, option_names
from turnstile.cluster.errors import STATUS_CODES
from turnstile.v1.reasons import Reason

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_operations_sample_config_loads_and_names_every_option(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    sample = text.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "node.toml"
    path.write_text(sample)
    config = load_config(path, env={}, flags={})
    assert config.node_id == "n1"
    assert config.timing.heartbeat_ms == 50
    documented = {name for name in option_names() if name.split(".")[-1] in sample}
    assert documented == set(option_names())


# The contract lives in the repository: its documents link only to files inside it.
DOCUMENTS = sorted(
    [
        ROOT / "README.md",
        *(ROOT / "docs").glob("*.md"),
        *(ROOT / "deploy").glob("*.md"),
        *(ROOT / "tests" / "chaos").glob("*.md"),
    ]
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(document: Path) -> None:
    for target in LINK.findall(document.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path_part, _, anchor = target.partition("#")
        path = (document.parent / path_part).resolve() if path_part else document
        assert path.is_relative_to(ROOT), f"{target} leaves the repository"
        assert path.exists(), f"{target}: no such file"
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path.read_text()), f"{target}: no such heading"


#: A repository path in backticks, as the docs cite modules and tests: `cluster/node.py`,
#: `tests/unit/test_node.py::test_x`.
CITED_PATH = re.compile(
    r"`((?:cluster|client|bench|proto|tests|docs|deploy)/[\w./-]+\.(?:py|md|proto))"
)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cited_repository_path_exists(document: Path) -> None:
    missing = [p for p in CITED_PATH.findall(document.read_text()) if not (ROOT / p).exists()]
    assert missing == []


def test_nothing_cites_the_design_file_outside_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    this = Path(__file__).relative_to(ROOT).as_posix()
    citing = [
        name
        for name in tracked
        if name != this
        and name.endswith((".md", ".py", ".proto", ".toml", ".yaml"))
        and re.search(r"\.\./shared|DESIGN\.md", (ROOT / name).read_text(errors="replace"))
    ]
    assert citing == []


@pytest.mark.parametrize("document", ["docs/api.md", "docs/design.md"])
def test_the_error_tables_in_the_docs_are_the_one_in_errors_py(document: str) -> None:
    rows = re.findall(
        r"^\| `([A-Z_]+)` \| `([A-Z_]+)` \|", (ROOT / document).read_text(), re.MULTILINE
    )
    table = {Reason(reason): getattr(grpc.StatusCode, code) for reason, code in rows}
    assert len(rows) == len(table)
    assert table == STATUS_CODES
