"""Regenerates the committed gRPC stubs of proto/turnstile/v1 (the one codegen command).

Run from anywhere: ``python proto/generate.py``. Generating with ``-I proto`` makes the stubs
import ``from turnstile.v1 import ...``, which the package-dir mapping in pyproject.toml
resolves, so nobody edits or sed-patches generated files. It writes only ``*_pb2*`` files: the
hand-written modules next to them (``reasons``, ``error_info``, ``metadata``) are left alone.
"""

import sys
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent


def generate(out_dir: Path) -> None:
    """Writes *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every .proto into out_dir."""
    include = Path(protoc.__file__).resolve().parent / "_proto"
    sources = sorted(
        str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.glob("turnstile/v1/*.proto")
    )
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed: {' '.join(args)}")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_ROOT)
