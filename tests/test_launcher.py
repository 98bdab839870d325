"""The launcher against a real tritonserver (the one bundled in the pytriton wheel).

Nothing is mocked here except one port check: these tests exist to prove that the server the
demo and the integration tests rely on starts, serves, stops and fails loudly on this machine.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

import launcher.triton
from launcher import TritonServer, TritonStartError, is_available
from launcher.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent

ADD_ONE_CONFIG = """
backend: "python"
max_batch_size: 0
input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
"""

ADD_ONE_MODEL = """
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            values = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
            output = pb_utils.Tensor("OUTPUT", values + 1)
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
        return responses
"""

BROKEN_MODEL = """
class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("deliberately broken model")
"""


def write_python_model(repository: Path, name: str, model_source: str) -> None:
    version_dir = repository / name / "1"
    version_dir.mkdir(parents=True)
    (repository / name / "config.pbtxt").write_text(ADD_ONE_CONFIG)
    (version_dir / "model.py").write_text(model_source)


@pytest.fixture(scope="module")
def add_one_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repository = tmp_path_factory.mktemp("model_repository")
    write_python_model(repository, "add_one", ADD_ONE_MODEL)
    return repository


@pytest.fixture
def listening_socket() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held


def infer_add_one(url: str, values: list[float]) -> np.ndarray:
    client = grpcclient.InferenceServerClient(url)
    try:
        tensor = grpcclient.InferInput("INPUT", [len(values)], "FP32")
        tensor.set_data_from_numpy(np.asarray(values, dtype=np.float32))
        return client.infer("add_one", [tensor]).as_numpy("OUTPUT")
    finally:
        client.close()


def child_pids(parent: int) -> set[int]:
    """Direct children of `parent`: tritonserver's Python backend stub processes."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == parent:
            children.add(int(stat.parent.name))
    return children


def is_alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (exited, awaiting a reaper such as a container's init) does
    not count."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_until_gone(pids: set[int], timeout: float) -> set[int]:
    """Poll until none of `pids` runs; return those still running at the timeout.

    Processes that are not our children die asynchronously after a signal, so give them time.
    """
    deadline = time.monotonic() + timeout
    while (alive := {pid for pid in pids if is_alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def test_tritonserver_is_installed() -> None:
    assert is_available(), "tritonserver missing: install the 'triton-cpu' extra"


def test_serves_a_python_model_and_stops_cleanly(add_one_repository: Path) -> None:
    with TritonServer(add_one_repository) as server:
        assert server.running
        result = infer_add_one(server.grpc_url, [1.0, 2.0, 3.5])
        np.testing.assert_allclose(result, [2.0, 3.0, 4.5])
        with urllib.request.urlopen(f"http://{server.http_url}/v2/health/ready") as response:
            assert response.status == 200
        with urllib.request.urlopen(server.metrics_url) as response:
            assert b"nv_inference_request_success" in response.read()
        pid = server.pid
        assert pid is not None
        stubs = child_pids(pid)
        assert stubs, "the Python backend should run its model in a stub process"

    assert not server.running
    assert server.stop() == 0
    assert not is_alive(pid)
    assert not wait_until_gone(stubs, timeout=5)


def niceness(pid: int) -> int:
    # /proc/<pid>/stat: the 19th field; the command name (2nd) may hold spaces, so count from ")".
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[16])


def test_niceness_runs_the_server_and_its_model_stubs_below_our_priority(
    add_one_repository: Path,
) -> None:
    own = niceness(os.getpid())
    with TritonServer(add_one_repository, niceness=10) as server:
        infer_add_one(server.grpc_url, [1.0])
        assert server.pid is not None
        pids = [server.pid, *child_pids(server.pid)]
        assert len(pids) > 1  # the model's stub inherits it too
        assert {niceness(pid) for pid in pids} == {min(own + 10, 19)}
        # Its session too: with autogroup scheduling, `nice` alone weighs nothing against the
        # processes of another session (the ranker's).
        if Path("/proc/self/autogroup").exists():
            groups = {Path(f"/proc/{pid}/autogroup").read_text().strip() for pid in pids}
            assert len(groups) == 1 and groups.pop().endswith(" nice 10")


def test_killed_server_restarts_on_the_same_ports(add_one_repository: Path) -> None:
    server = TritonServer(add_one_repository).start()
    try:
        url, pid = server.grpc_url, server.pid
        assert pid is not None
        stubs = child_pids(pid)
        assert server.kill() == -signal.SIGKILL
        assert not is_alive(pid)
        assert not wait_until_gone(stubs, timeout=5)

        server.start()
        assert server.grpc_url == url
        np.testing.assert_allclose(infer_add_one(url, [0.0]), [1.0])
    finally:
        server.kill()


def test_busy_port_is_refused_before_starting(
    add_one_repository: Path, listening_socket: socket.socket
) -> None:
    busy = listening_socket.getsockname()[1]
    server = TritonServer(add_one_repository, grpc_port=busy)
    with pytest.raises(TritonStartError, match=f"grpc port {busy} .* is in use"):
        server.start()
    assert server.pid is None


def test_port_taken_after_the_check_is_reported_from_the_server_exit(
    add_one_repository: Path, listening_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if another process bound the port between our check and tritonserver's bind.
    monkeypatch.setattr(launcher.triton, "is_port_free", lambda port, host: True)
    busy = listening_socket.getsockname()[1]
    server = TritonServer(add_one_repository, grpc_port=busy)
    with pytest.raises(TritonStartError, match="a port is taken") as raised:
        server.start(timeout=30)
    assert f"{busy}' already in use" in str(raised.value)
    assert not server.running


def test_model_that_fails_to_load_is_reported_with_the_log(tmp_path: Path) -> None:
    write_python_model(tmp_path, "add_one", BROKEN_MODEL)
    server = TritonServer(tmp_path)
    with pytest.raises(TritonStartError, match="exited with code") as raised:
        server.start(timeout=30)
    assert "deliberately broken model" in str(raised.value)
    assert not server.running


def test_cli_missing_repository_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--model-repository", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model repository not found")
    assert err.count("\n") == 1


def read_until(process: subprocess.Popen[bytes], marker: str, timeout: float) -> str:
    """Read `process`'s stdout until `marker` appears; raw reads, so select() sees all data."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    seen = ""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise AssertionError(f"no {marker!r} within {timeout}s; got:\n{seen}")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise AssertionError(f"launcher exited before {marker!r}; got:\n{seen}")
        seen += chunk.decode()
    return seen


def start_cli(repository: Path, *flags: str) -> tuple[subprocess.Popen[bytes], dict[str, str], int]:
    """Run `python -m launcher` on free ports; return it, its banner fields and the server pid."""
    command = [sys.executable, "-m", "launcher", "--model-repository", str(repository)]
    command += ["--grpc-port", "0", "--http-port", "0", "--metrics-port", "0", *flags]
    cli = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE)
    try:
        banner = read_until(cli, "tritonserver.log\n", timeout=60)
    except AssertionError:
        cli.kill()
        cli.wait()
        raise
    fields = dict(line.split() for line in banner.splitlines()[1:] if len(line.split()) == 2)
    server_pid = int(banner.split("pid ")[1].split(")")[0])
    return cli, fields, server_pid


def test_cli_serves_until_sigint_then_exits_zero(add_one_repository: Path) -> None:
    cli, banner, server_pid = start_cli(add_one_repository)
    try:
        np.testing.assert_allclose(infer_add_one(banner["grpc"], [41.0]), [42.0])
        cli.send_signal(signal.SIGINT)
        assert cli.wait(timeout=30) == 0
        assert not is_alive(server_pid)
    finally:
        cli.kill()
        cli.wait()


def test_cli_in_explicit_mode_loads_every_model_at_start(add_one_repository: Path) -> None:
    cli, banner, _ = start_cli(add_one_repository, "--model-control", "explicit")
    try:
        np.testing.assert_allclose(infer_add_one(banner["grpc"], [1.5]), [2.5])
        client = grpcclient.InferenceServerClient(banner["grpc"])
        client.unload_model("add_one")  # refused in mode none: the server really is explicit
        assert not client.is_model_ready("add_one")
        client.close()
    finally:
        cli.send_signal(signal.SIGINT)
        cli.wait(timeout=30)


def test_cli_load_model_without_explicit_mode_is_a_one_line_error(
    add_one_repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--model-repository", str(add_one_repository), "--load-model", "add_one"]) == 2
    assert capsys.readouterr().err == "error: --load-model needs --model-control explicit\n"


def test_server_does_not_outlive_a_killed_launcher(add_one_repository: Path) -> None:
    cli, banner, server_pid = start_cli(add_one_repository)
    cli.kill()
    cli.wait()
    assert not wait_until_gone({server_pid}, timeout=20)
    # Its scratch directory (backend links, log) had no one left to remove it.
    shutil.rmtree(Path(banner["log"]).parent)
