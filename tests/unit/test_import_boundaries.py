"""What importing the client and starting the ``turnstile`` command load: workers import the
client library without the server or the benchmark, and only ``turnstile bench`` loads the
benchmark (its drivers pull in the peers' clients)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

#: Prints the turnstile modules loaded once ``code`` ran, as JSON.
REPORT = (
    "import json, sys\n"
    "print(json.dumps(sorted(m for m in sys.modules if m.startswith('turnstile'))))"
)


def loaded_after(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{REPORT}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def server_or_bench(modules: set[str]) -> list[str]:
    return sorted(
        m for m in modules if m.split(".")[:2] in (["turnstile", "cluster"], ["turnstile", "bench"])
    )


@pytest.mark.parametrize("module", ["turnstile.client", "turnstile.client.aio"])
def test_the_client_loads_no_server_or_bench_module(module: str) -> None:
    loaded = loaded_after(f"import {module}")
    assert module in loaded
    assert server_or_bench(loaded) == []


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["token", "hash"], ["status", "--help"], ["bench", "--help"]],
    ids=" ".join,
)
def test_the_command_loads_the_bench_only_for_turnstile_bench(argv: list[str]) -> None:
    code = (
        "import contextlib, io, sys\n"
        "from turnstile.cluster import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    cli.main({argv!r})\n"
    )
    loaded = loaded_after(code)
    assert ("turnstile.bench.cli" in loaded) is (argv[0] == "bench")
