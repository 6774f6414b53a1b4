"""tooz's own functional suite (``tooz/tests/test_coordination.py`` and ``test_partitioner.py``,
shipped in its wheel) against the ``turnstile://`` backend on a real three-node cluster.

The suite picks its driver from ``TOOZ_TEST_URL`` and runs in a subprocess; its junit report
is read here: nothing may fail, at least ``MIN_PASSED`` must pass, and every skip must be one
of ``EXPECTED_SKIPS``, for the reason given there (docs/ecosystem.md has the table).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import tooz

from tests.integration.cluster import Cluster, running
from tests.integration.ready import wait_for_groups

pytestmark = pytest.mark.integration


#: ZooKeeper's driver passes 90 of these tests (8 skipped), etcd3's 80 (18 skipped).
MIN_PASSED = 91
SHARED = "Turnstile locks are exclusive: it has no shared (reader) locks"
#: Test name -> a fragment of its skip message.
EXPECTED_SKIPS = {
    "test_get_shared_lock": SHARED,
    "test_get_shared_lock_locking_same_lock_twice": SHARED,
    "test_get_shared_lock_locking_two_lock": SHARED,
    "test_get_lock_locking_shared_and_exclusive": SHARED,
    "test_get_lock_locking_exclusive_and_shared": SHARED,
    # the test calls a private _destroy_group of the etcd3, memcached and redis drivers only
    "test_watch_join_group_disappear": "ability to destroy groups",
}
SUITE = ("test_coordination.py", "test_partitioner.py")
#: Longest run of the whole suite (about 100 s here; generous for a loaded machine).
SUITE_TIMEOUT_S = 900


def test_tooz_functional_suite_passes_against_turnstile(tmp_path: Path) -> None:
    tests_dir = Path(tooz.__file__).parent / "tests"
    report = tmp_path / "tooz.xml"
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\n")  # not this project's settings
    with running(Cluster(tmp_path / "cluster")) as cluster:
        wait_for_groups(cluster)
        url = "turnstile://" + ",".join(cluster.addresses)
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                *(str(tests_dir / name) for name in SUITE),
                "-c",
                str(ini),
                "--rootdir",
                str(tmp_path),
                "-p",
                "no:cacheprovider",
                "-o",
                "timeout=120",
                f"--junitxml={report}",
                "-q",
            ],
            env={**os.environ, "TOOZ_TEST_URL": url},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=SUITE_TIMEOUT_S,
            check=False,
        )
    output = completed.stdout[-8000:] + completed.stderr[-4000:]
    assert report.exists(), output
    passed, skipped, failed = _outcomes(report)
    assert failed == {}, output
    assert len(passed) >= MIN_PASSED, output
    unexpected = {
        name: reason
        for name, reason in skipped.items()
        if name not in EXPECTED_SKIPS or EXPECTED_SKIPS[name] not in reason
    }
    assert unexpected == {}, output
    print(f"tooz suite: {len(passed)} passed, {len(skipped)} skipped, {len(failed)} failed")


def _outcomes(report: Path) -> tuple[set[str], dict[str, str], dict[str, str]]:
    """(passed, skipped -> reason, failed or errored -> message) by test name."""
    passed: set[str] = set()
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    for case in ET.parse(report).iter("testcase"):
        name = f"{case.get('classname')}.{case.get('name')}"
        short = str(case.get("name"))
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        skip = case.find("skipped")
        if problem is not None:
            failed[name] = problem.get("message", "")
        elif skip is not None:
            skipped[short] = skip.get("message", "")
        else:
            passed.add(name)
    return passed, skipped, failed


EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "tooz_workers.py"


def test_the_tooz_example_runs_against_turnstile_cluster_up(tmp_path: Path) -> None:
    """The README's first command, then the example through tooz's ``get_coordinator``."""
    up = subprocess.Popen(
        [sys.executable, "-m", "turnstile.cluster", "cluster", "up", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    nodes: list[int] = []
    try:
        endpoints = ""
        assert up.stdout is not None
        for line in up.stdout:
            nodes += [int(word) for word in re.findall(r" pid (\d+) ", line)]
            if line.startswith("export TURNSTILE_ENDPOINTS="):
                endpoints = line.split("=", 1)[1].strip()
            if line.startswith("press Ctrl-C"):
                break
        assert endpoints, "turnstile cluster up printed no endpoints"
        done = subprocess.run(
            [sys.executable, str(EXAMPLE), "--endpoints", endpoints, "--worker", "w1"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        for pid in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["leader"] == "w1" and report["elected"] is True
    assert report["token"] > 0
    assert len(report["mine"]) == 10  # the only member owns every unit
    assert report["members"] == {"w1": {"weight": 2}}
