"""No module of the server or the client library grows past 600 lines: past that, a module
holds more than one concern (docs/design.md, Layout)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
MOST_LINES = 600


def test_no_library_module_is_over_600_lines() -> None:
    modules = sorted((*REPO.glob("cluster/**/*.py"), *REPO.glob("client/**/*.py")))
    assert modules, "no library module found"
    sizes = {m.relative_to(REPO): len(m.read_text(encoding="utf-8").splitlines()) for m in modules}
    assert {path: n for path, n in sizes.items() if n > MOST_LINES} == {}
