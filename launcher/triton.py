"""Start, wait for, and stop a real tritonserver process.

Tests, the demo and the CLI all need the same lifecycle: a Triton on free loopback ports that is
known to be ready before the first request, stops cleanly, can be crashed on purpose, and never
outlives the process that started it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from launcher.install import bundled_root, find_tritonserver, is_bundled
from launcher.ports import LOOPBACK, is_port_free, pick_free_ports
from launcher.python_backend import layout_backend_dir, stub_environment

MODEL_CONTROL_MODES = ("none", "poll", "explicit")
# Without a GPU these only produce warnings about CUDA at startup.
CPU_ONLY_FLAGS = ("--allow-gpu-metrics=false", "--pinned-memory-pool-byte-size=0")
SHM_DIR = Path("/dev/shm")
PORT_IN_USE_MARKER = "already in use"
# tritonserver names the socket it failed to bind: "Socket '127.0.0.1:8001' already in use".
PORT_IN_USE_PATTERN = re.compile(r":(\d+)' already in use")
PORT_PICK_ATTEMPTS = 3
LOG_TAIL_LINES = 25
READY_POLL_SECONDS = 0.1
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


class TritonStartError(RuntimeError):
    """tritonserver exited or never became ready; the message ends with the tail of its log."""


def has_nvidia_gpu() -> bool:
    """Whether an NVIDIA driver device node exists, i.e. whether GPU flags make sense."""
    return Path("/dev/nvidiactl").exists()


def _is_server_ready(url: str) -> bool:
    # A fresh channel per probe: a reused channel backs off for seconds after the first refusal.
    client = grpcclient.InferenceServerClient(url)
    try:
        return bool(client.is_server_ready(client_timeout=1.0))
    except InferenceServerException:
        return False
    finally:
        client.close()


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def die_with_parent() -> None:
    """Makes a child process get SIGTERM when the thread that started it ends."""
    # Runs in the child between fork and exec, where little is safe: one libc call, nothing more.
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def lower_session_priority(pid: int, niceness: int) -> None:
    """Gives `pid`'s session (its autogroup) the CPU weight of nice `niceness` against other
    sessions, as `nice -n` does for a process within its session.

    Where the kernel groups processes by session (autogroup scheduling, the default on many
    Linux hosts), it shares the CPU between sessions first and weighs `nice` only within each:
    a server started in a session of its own then gets an equal share against the ranker's
    session however nice it is. No-op on kernels without autogroups, and, as for `nice`, where
    a raise (a negative niceness) is not permitted."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        Path(f"/proc/{pid}/autogroup").write_text(f"{niceness}\n")


def _reap(process: subprocess.Popen[bytes], shm_prefix: str, scratch: Path | None) -> None:
    # Kill the group only while its leader is unreaped, so the group id cannot have been reused.
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    # The Python backend leaves its shared-memory regions behind when killed.
    for region in SHM_DIR.glob(f"{shm_prefix}*"):
        region.unlink(missing_ok=True)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


class TritonServer:
    """One tritonserver process serving `model_repository`.

    Ports left as None are picked free on first start and kept for restarts, so clients can
    reconnect to the same URL after `kill()` and `start()`. The process runs in its own session:
    a Ctrl-C in the parent's terminal reaches only the parent, which decides how to stop it.
    Because of that it would outlive a parent that is killed outright, so the kernel sends it
    SIGTERM when the thread that called `start()` exits: start it from a long-lived thread.
    """

    def __init__(
        self,
        model_repository: Path,
        grpc_port: int | None = None,
        http_port: int | None = None,
        metrics_port: int | None = None,
        backend_dir: Path | None = None,
        model_control: str = "none",
        log_file: Path | None = None,
        extra_args: Sequence[str] = (),
        address: str = LOOPBACK,
        binary: Path | None = None,
        niceness: int = 0,
    ) -> None:
        """`niceness`: how far below the caller's CPU priority the server runs (`nice -n`, and
        its session's autogroup: `lower_session_priority`). On a host it shares with a
        latency-bound process (the ranker), Triton's CPU bursts (startup, a cold cache) then
        delay embeddings rather than the other process's answers."""
        if model_control not in MODEL_CONTROL_MODES:
            raise ValueError(f"model_control must be one of {MODEL_CONTROL_MODES}")
        self.model_repository = Path(model_repository)
        self.backend_dir = backend_dir
        self.model_control = model_control
        self.log_file = log_file
        self.extra_args = tuple(extra_args)
        self.address = address
        self.binary = binary
        self.niceness = niceness
        # Port 0 means "any free port", as it does for bind().
        self._requested_ports = {
            "grpc": grpc_port or None,
            "http": http_port or None,
            "metrics": metrics_port or None,
        }
        self._ports: dict[str, int] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._finalizer: weakref.finalize | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> Self:
        """Start the server and block until it reports ready over gRPC."""
        if self.running:
            raise RuntimeError(f"tritonserver is already running (pid {self.pid})")
        self._release()  # a previous run that crashed on its own
        repository = self.model_repository.resolve()
        if not repository.is_dir():
            raise FileNotFoundError(f"model repository not found: {self.model_repository}")
        binary = self.binary or find_tritonserver()
        if binary is None:
            raise FileNotFoundError(
                "no tritonserver found: install the 'triton-cpu' extra or set $TRITONSERVER"
            )
        if not os.access(binary, os.X_OK):
            raise FileNotFoundError(f"tritonserver is not an executable file: {binary}")
        fixed = self._ports or {k: v for k, v in self._requested_ports.items() if v is not None}
        for name, port in fixed.items():
            if not is_port_free(port, self.address):
                raise TritonStartError(
                    f"cannot start tritonserver: {name} port {port} on {self.address} is in use"
                )
        attempts = 1 if len(fixed) == len(self._requested_ports) else PORT_PICK_ATTEMPTS
        attempt = 1
        while True:
            ports = self._fill_ports(fixed)
            try:
                self._launch(binary, repository, ports, timeout)
                break
            except TritonStartError as error:
                # An auto-picked port can be taken between picking and binding; pick again.
                taken = {int(port) for port in PORT_IN_USE_PATTERN.findall(str(error))}
                if attempt >= attempts or not taken or taken & set(fixed.values()):
                    raise
                attempt += 1
        self._ports = ports
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, allow `timeout` seconds for a clean shutdown, then SIGKILL; return the code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout)
        return self._release()

    def kill(self) -> int | None:
        """SIGKILL the server and its backend stubs at once, as a crash would."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        return self._release()

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- state -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def ports(self) -> dict[str, int]:
        """`{"grpc": ..., "http": ..., "metrics": ...}` as bound by the last successful start."""
        if self._ports is None:
            raise RuntimeError("tritonserver has not been started yet")
        return dict(self._ports)

    @property
    def grpc_url(self) -> str:
        """`host:port`, the form `tritonclient.grpc` takes."""
        return f"{self._client_host}:{self.ports['grpc']}"

    @property
    def http_url(self) -> str:
        """`host:port`, the form `tritonclient.http` takes."""
        return f"{self._client_host}:{self.ports['http']}"

    @property
    def metrics_url(self) -> str:
        """The full Prometheus endpoint, the form a scraper or `urllib` takes."""
        return f"http://{self._client_host}:{self.ports['metrics']}/metrics"

    @property
    def log_path(self) -> Path | None:
        """Where the server's stdout and stderr go; a temporary file is removed on stop."""
        return self._log_path

    @property
    def _client_host(self) -> str:
        return LOOPBACK if self.address in ("0.0.0.0", "") else self.address

    # -- internals -------------------------------------------------------------------------

    def _fill_ports(self, fixed: dict[str, int]) -> dict[str, int]:
        missing = [name for name in self._requested_ports if name not in fixed]
        picked = dict(zip(missing, pick_free_ports(len(missing), self.address), strict=True))
        return fixed | picked

    def _launch(
        self, binary: Path, repository: Path, ports: dict[str, int], timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        scratch = Path(tempfile.mkdtemp(prefix="triton-launch-"))
        shm_prefix = f"triton_launch_{os.getpid()}_{secrets.token_hex(4)}_"
        args = [
            str(binary),
            f"--model-repository={repository}",
            f"--model-control-mode={self.model_control}",
            f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
        ]
        for name in ("grpc", "http", "metrics"):
            args += [f"--{name}-address={self.address}", f"--{name}-port={ports[name]}"]
        if not has_nvidia_gpu():
            args += CPU_ONLY_FLAGS
        env = dict(os.environ)
        root = bundled_root()
        if is_bundled(binary) and root is not None:
            backends = layout_backend_dir(root, self.backend_dir or scratch / "backends")
            args.append(f"--backend-directory={backends}")
            env = stub_environment(env)
        elif self.backend_dir is not None:
            args.append(f"--backend-directory={self.backend_dir}")
        args += self.extra_args
        if self.niceness:
            args = ["nice", "-n", str(self.niceness), *args]

        self._log_path = self.log_file or scratch / "tritonserver.log"
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("ab") as log:
            log_start = log.tell()
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        if self.niceness:
            lower_session_priority(self._process.pid, self.niceness)
        self._finalizer = weakref.finalize(self, _reap, self._process, shm_prefix, scratch)
        while not self._is_serving(ports):
            failure = None
            if self._process.poll() is not None:
                tail = self._log_tail(log_start)
                cause = "a port is taken" if PORT_IN_USE_MARKER in tail else "see its log"
                failure = (
                    f"tritonserver exited with code {self._process.returncode} "
                    f"before becoming ready ({cause}):\n{tail}"
                )
            elif time.monotonic() > deadline:
                tail = self._log_tail(log_start)
                failure = f"tritonserver was not ready within {timeout:g} s:\n{tail}"
            if failure is not None:
                self._release()
                raise TritonStartError(failure)
            time.sleep(READY_POLL_SECONDS)

    def _is_serving(self, ports: dict[str, int]) -> bool:
        # gRPC readiness covers the models; HTTP and metrics start listening a moment later.
        host = self._client_host
        return _is_server_ready(f"{host}:{ports['grpc']}") and all(
            _accepts_connections(host, ports[name]) for name in ("http", "metrics")
        )

    def _log_tail(self, start: int) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        with self._log_path.open("rb") as log:
            log.seek(start)
            text = log.read().decode(errors="replace")
        # Startup tables (lines of '+---' and '| ...') crowd out the lines that explain a failure.
        lines = [line for line in text.splitlines() if line and line[0] not in "+|"]
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def _release(self) -> int | None:
        if self._finalizer is not None:
            self._finalizer()
        return self._process.returncode if self._process is not None else None
