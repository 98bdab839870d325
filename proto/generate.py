"""Regenerates the Python gRPC code from proto/ so that it never drifts from the contract.

Run `make proto`; tests/test_proto.py fails when the committed code is stale.
"""

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
PROTO_FILES = ("ranker/v1/ranker.proto",)


def generate(out_dir: Path) -> None:
    include = resources.files("grpc_tools") / "_proto"
    for proto in PROTO_FILES:
        status = protoc.main(
            [
                "protoc",
                f"-I{PROTO_ROOT}",
                f"-I{include}",
                f"--python_out={out_dir}",
                f"--pyi_out={out_dir}",
                f"--grpc_python_out={out_dir}",
                str(PROTO_ROOT / proto),
            ]
        )
        if status != 0:
            raise RuntimeError(f"protoc failed on {proto} with status {status}")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_ROOT.parent)
