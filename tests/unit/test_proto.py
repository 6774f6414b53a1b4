"""The proto is the documented contract: stubs are fresh and every RPC and field says its rule."""

import fnmatch
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from turnstile.v1 import turnstile_pb2

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto" / "turnstile" / "v1"
#: The modules of turnstile.v1 written by hand, next to the generated stubs.
HAND_WRITTEN = ("__init__.py", "error_info.py", "metadata.py", "reasons.py")
DECLARATION = re.compile(
    r"^\s*(rpc \w+\(|(repeated |optional )?[\w.]+(<[\w, ]+>)? \w+ = \d+;|\w+ = \d+;)"
)


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "proto" / "generate.py"), str(tmp_path)], check=True)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert generated, "protoc produced nothing"
    stale = [
        str(rel)
        for rel in generated
        if (ROOT / "proto" / rel).read_bytes() != (tmp_path / rel).read_bytes()
    ]
    assert not stale, f"stale stubs (run python proto/generate.py): {stale}"
    assert not {rel.name for rel in generated} & set(HAND_WRITTEN)


def test_the_hand_written_modules_are_linted() -> None:
    """ruff skips the generated stubs only."""
    excluded = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"][
        "extend-exclude"
    ]
    for name in HAND_WRITTEN:
        assert (PROTO_DIR / name).is_file()
        path = f"proto/turnstile/v1/{name}"
        assert not any(fnmatch.fnmatch(path, pattern) for pattern in excluded), path


def test_every_rpc_field_and_enum_value_has_a_comment() -> None:
    undocumented = []
    for proto in sorted(PROTO_DIR.glob("*.proto")):
        lines = proto.read_text().splitlines()
        for number, line in enumerate(lines):
            if not DECLARATION.match(line) or "//" in line:
                continue
            above = next((p.strip() for p in reversed(lines[:number]) if p.strip()), "")
            if not above.startswith("//"):
                undocumented.append(f"{proto.name}:{number + 1}: {line.strip()}")
    assert not undocumented, "\n".join(undocumented)


def test_every_response_carries_a_header() -> None:
    """Of every RPC but the session stream, whose answers carry the unary responses."""
    services = turnstile_pb2.DESCRIPTOR.services_by_name.values()
    missing = [
        f"{service.name}.{method.name}"
        for service in services
        for method in service.methods
        if not method.client_streaming
        and (
            "header" not in method.output_type.fields_by_name
            or method.output_type.fields_by_name["header"].message_type.name != "ResponseHeader"
        )
    ]
    assert not missing, missing
