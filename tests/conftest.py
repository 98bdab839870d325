"""Session-wide real servers: the default encoder exported once, one tritonserver, one ranker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from launcher.ranker_process import RankerProcess
from launcher.triton import TritonServer
from ranker.v1 import ranker_pb2_grpc


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """all-MiniLM-L6-v2 from its PyPI package, exported as a user would, into a fresh repository."""
    from export.cli import main

    repository = tmp_path_factory.mktemp("model_repository")
    assert main(["--repository", str(repository)]) == 0
    return repository


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT checkpoint, shared by the export tests."""
    from test_export import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def triton(model_repository: Path) -> Iterator[TritonServer]:
    with TritonServer(model_repository) as server:
        yield server


@pytest.fixture(scope="session")
def ranker(triton: TritonServer, model_repository: Path) -> Iterator[RankerProcess]:
    with RankerProcess(triton.grpc_url, model_repository) as process:
        yield process


@pytest.fixture(scope="session")
def ranker_channel(ranker: RankerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(ranker.address) as channel:
        yield channel


@pytest.fixture
def stub(ranker_channel: grpc.Channel) -> ranker_pb2_grpc.RankerStub:
    return ranker_pb2_grpc.RankerStub(ranker_channel)
