"""Start, wait for, and stop a real ranker process (`python -m ranker`) on a loopback port.

The demo and the integration tests talk to the ranker exactly as a production client does: over
gRPC, to a separate process.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from launcher.ports import LOOPBACK, pick_free_port
from launcher.triton import die_with_parent

READY_POLL_SECONDS = 0.1


class RankerStartError(RuntimeError):
    """The ranker exited or never reported SERVING; the message ends with its log."""


class RankerProcess:
    def __init__(
        self,
        triton_url: str,
        model_repository: Path,
        port: int | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.triton_url = triton_url
        self.model_repository = Path(model_repository)
        self.port = port or pick_free_port()
        self.extra_args = tuple(extra_args)
        self.log_path = Path(tempfile.mkstemp(prefix="ranker-", suffix=".log")[1])
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        """The ranker's process (with workers, their supervisor); raises before `start`."""
        if self._process is None:
            raise RuntimeError("the ranker has not been started")
        return self._process.pid

    def start(self, timeout: float = 30.0) -> Self:
        command = [
            sys.executable,
            "-m",
            "ranker",
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--triton-url",
            self.triton_url,
            "--model-repository",
            str(self.model_repository),
            *self.extra_args,
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while not self._is_serving():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RankerStartError(
                    f"ranker did not start on {self.address}:\n{self.log_path.read_text()}"
                )
            time.sleep(READY_POLL_SECONDS)
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        return self._process.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _is_serving(self) -> bool:
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            with contextlib.suppress(grpc.RpcError):
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                return reply.status == health_pb2.HealthCheckResponse.SERVING
        return False
