"""`python -m export rollout|rollback`: bad input, and rollouts on a real Triton and ranker while
clients keep ranking."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from demo.catalogue import load_items
from demo.requests import events, rank_request
from export.rollout import main
from export.rollout_triton import ModelControl
from launcher.ports import LOOPBACK, pick_free_port
from launcher.ranker_process import RankerProcess
from launcher.triton import TritonServer
from ranker.v1 import ranker_pb2 as pb
from ranker.v1 import ranker_pb2_grpc

MODEL = "bert_encoder"
COMMITTED_REPOSITORY = Path(__file__).resolve().parent.parent / "model_repository"
ENSEMBLE_MODELS = ("tokenizer", "text_encoder")
IGNORED = shutil.ignore_patterns("__pycache__")
ITEMS = load_items()
ITEM_IDS = sorted(ITEMS)
CLIENTS = 4
# Generous: the rollout loads a second model on a small shared CPU; a budget overrun would be
# reported as "encoder_timeout", which is not what this test is about.
BUDGET_MS = 20_000


def add_version(model_dir: Path, source: int, version: int, ignore: Callable | None = None) -> Path:
    """A new version with the same weights, copied as an export writes one: hard links would
    touch the served version's files (their ctime), which Triton counts as a change of it."""
    target = model_dir / str(version)
    shutil.copytree(model_dir / str(source), target, ignore=ignore)
    return target


def copy_repository(source: Path, target: Path) -> Path:
    """The exported encoder beside the committed tokenizer and text_encoder ensemble."""
    for model in ENSEMBLE_MODELS:
        shutil.copytree(COMMITTED_REPOSITORY / model, target / model, ignore=IGNORED)
    (target / MODEL).mkdir(parents=True)
    shutil.copy(source / MODEL / "config.pbtxt", target / MODEL / "config.pbtxt")
    # Whole, the bytecode of model.py included: Triton must find the version as exported.
    # Hard links are fine before this Triton has loaded the version (see add_version).
    shutil.copytree(source / MODEL / "1", target / MODEL / "1", copy_function=os.link)
    return target


def backend_processes(version_dir: Path) -> set[int]:
    """The Python backend stubs serving `version_dir`: one per model instance, started afresh
    whenever Triton loads a copy of that version."""
    script = f"{version_dir}/model.py".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and script in (entry / "cmdline").read_bytes().split(b"\0"):
                found.add(int(entry.name))
    return found


# -- bad input -----------------------------------------------------------------------------


@pytest.fixture
def two_versions(tmp_path: Path) -> Path:
    for version in (1, 2):
        (tmp_path / MODEL / str(version) / "tokenizer").mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["deploy"], "unknown command 'deploy'"),
        (["rollout", "--version", "0"], "0 is out of range (>= 1)"),
        (["rollout", "--version", "two"], "'two' is not an integer"),
        (["rollout", "--version", "7"], "no version 7 in"),
        (["rollback", "--switch-timeout-s", "-1"], "must be zero or more seconds"),
        (["rollout", "--settle-s", "soon"], "'soon' is not a number of seconds"),
        (["rollout", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(two_versions, capsys, argv, message):
    code = main([*argv, "--repository", str(two_versions)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_a_missing_model_directory_is_bad_input(tmp_path, capsys):
    assert main(["rollout", "--repository", str(tmp_path / "nowhere")]) == 2
    assert f"{tmp_path / 'nowhere' / MODEL} is not a directory" in capsys.readouterr().err


def test_help_states_the_settle_time(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["rollout", "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--settle-s" in out and "--model-poll-ms" in out and "explicit" in out


def test_an_unreachable_triton_fails_with_its_address(two_versions, capsys):
    url = f"{LOOPBACK}:{pick_free_port()}"
    code = main(["rollout", "--repository", str(two_versions), "--triton-url", url])
    err = capsys.readouterr().err
    assert code == 1
    assert f"error: Triton at {url} is unreachable" in err


# -- on a real Triton and ranker -----------------------------------------------------------


@pytest.fixture(scope="module")
def repository(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 1 as exported, with the text ensemble; version 2 comes once Triton serves 1."""
    return copy_repository(model_repository, tmp_path_factory.mktemp("rollout_repository"))


@pytest.fixture(scope="module")
def explicit_triton(repository: Path) -> Iterator[TritonServer]:
    server = TritonServer(repository, model_control="explicit", extra_args=["--load-model=*"])
    with server:
        add_version(repository / MODEL, 1, 2)
        yield server


@pytest.fixture(scope="module")
def rollout_ranker(explicit_triton: TritonServer, repository: Path) -> Iterator[RankerProcess]:
    with RankerProcess(
        explicit_triton.grpc_url, repository, extra_args=["--model-poll-ms", "200"]
    ) as process:
        yield process


@contextlib.contextmanager
def model_control(
    triton: TritonServer, repository: Path, timeout_s: float = 10
) -> Iterator[ModelControl]:
    control = ModelControl(triton.grpc_url, repository, MODEL, timeout_s=timeout_s)
    try:
        yield control
    finally:
        control.close()


def served_versions(triton: TritonServer, repository: Path) -> list[int]:
    with model_control(triton, repository) as control:
        return control.ready_versions()


Sender = Callable[[int], object]


@dataclass
class RequestStream:
    """Clients that send requests without pause, whatever happens meanwhile; records every
    answer and every failure. `open_sender` gives each client its own connection."""

    open_sender: Callable[[], AbstractContextManager[Sender]]
    answers: list = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _counter: itertools.count = field(default_factory=itertools.count)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> RequestStream:
        self._threads = [threading.Thread(target=self._run) for _ in range(CLIENTS)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        with self.open_sender() as send:
            while not self._stop.is_set():
                try:
                    self.answers.append(send(next(self._counter)))
                except (grpc.RpcError, InferenceServerException) as error:
                    self.failures.append(str(error))

    def wait_for(self, count: int) -> None:
        """Blocks until `count` more answers or failures arrived."""
        target = len(self.answers) + len(self.failures) + count
        while len(self.answers) + len(self.failures) < target:
            self._stop.wait(0.05)


def rank_request_n(n: int) -> pb.RankRequest:
    """Catalogue titles the cache soon knows, plus one text it has never seen, so every request
    reaches Triton."""
    items = {item_id: ITEMS[item_id] for item_id in ITEM_IDS[n % 50 : n % 50 + 6]}
    items[f"fresh-{n}"] = f"{ITEMS[ITEM_IDS[n % len(ITEM_IDS)]]} no. {n}"
    history = events(items, list(items)[:2], pb.EVENT_TYPE_CLICK, datetime.now(UTC))
    request = rank_request(f"user-{n % 7}", history, items, list(items)[2:], top_k=3)
    request.budget_ms = BUDGET_MS
    return request


@contextlib.contextmanager
def ranker_sender(address: str) -> Iterator[Sender]:
    with grpc.insecure_channel(address) as channel:
        stub = ranker_pb2_grpc.RankerStub(channel)
        yield lambda n: stub.Rank(rank_request_n(n), timeout=60)


@contextlib.contextmanager
def text_encoder_sender(url: str) -> Iterator[Sender]:
    """Raw text through the ensemble, which follows bert_encoder's newest ready version."""
    client = triton_grpc.InferenceServerClient(url)

    def send(n: int) -> np.ndarray:
        texts = np.array([[ITEMS[ITEM_IDS[n % len(ITEM_IDS)]].encode()], [b"no. %d" % n]])
        tensor = triton_grpc.InferInput("TEXT", list(texts.shape), "BYTES")
        tensor.set_data_from_numpy(texts.astype(object))
        return client.infer("text_encoder", [tensor], client_timeout=60).as_numpy("embedding")

    try:
        yield send
    finally:
        client.close()


def rollout_argv(command: str, triton: TritonServer, repository: Path, *extra: str) -> list[str]:
    return [
        command,
        *("--triton-url", triton.grpc_url, "--repository", str(repository)),
        *("--drain-s", "0.5"),
        *extra,
    ]


@pytest.fixture
def restores_version_2(repository: Path) -> Iterator[None]:
    """Puts a rolled-back version 2 back in place for the tests after."""
    yield
    aside = repository / MODEL / "rolled-back-2"
    if aside.is_dir():
        aside.rename(repository / MODEL / "2")


@pytest.mark.integration
@pytest.mark.usefixtures("restores_version_2")
def test_rollout_and_rollback_drop_no_request(explicit_triton, rollout_ranker, repository, capsys):
    ranker_url = ("--ranker-url", rollout_ranker.address)
    assert served_versions(explicit_triton, repository) == [1]
    ranks = RequestStream(lambda: ranker_sender(rollout_ranker.address))
    texts = RequestStream(lambda: text_encoder_sender(explicit_triton.grpc_url))
    with ranks, texts:
        ranks.wait_for(10)
        assert main(rollout_argv("rollout", explicit_triton, repository, *ranker_url)) == 0
        after_rollout = len(ranks.answers)
        assert served_versions(explicit_triton, repository) == [2]
        ranks.wait_for(10)
        assert main(rollout_argv("rollback", explicit_triton, repository, *ranker_url)) == 0
        ranks.wait_for(10)
    out = capsys.readouterr().out.splitlines()

    assert ranks.failures == []
    assert texts.failures == []
    assert len(texts.answers) > 0
    assert out == [
        f"rollout done: {MODEL} serves version 2 (retired [1])",
        f"rollback done: {MODEL} serves version 1 (retired [2])",
    ]
    assert served_versions(explicit_triton, repository) == [1]
    # The rollback sticks: a restart would serve the newest numbered version, so 2 is set aside.
    assert (repository / MODEL / "rolled-back-2").is_dir()
    assert not (repository / MODEL / "2").exists()
    versions = [answer.model_version for answer in ranks.answers]
    assert {f"{MODEL}:1", f"{MODEL}:2"} <= set(versions)
    assert versions[-1] == f"{MODEL}:1"
    # Forward, rankers switch while both versions serve: nothing degrades. Back to an older
    # version, the newer one must retire before rankers leave it (they serve the newest ready
    # version), so a few answers between retiring and their next poll degrade, none fail.
    rollout_degraded = [a.degraded for a in ranks.answers[:after_rollout] if a.degraded]
    assert rollout_degraded == []
    assert all(answer.items for answer in ranks.answers)


@pytest.mark.integration
def test_a_version_loaded_beside_the_served_one_leaves_that_one_running(
    explicit_triton, repository
):
    """Triton loads a second copy of a served version whose files changed since it loaded it,
    when the model is next loaded: each rollout would load the old version again, and a failed
    one made the CPU tritonserver crash discarding that copy (README, rollouts)."""
    served = repository / MODEL / "1"
    assert served_versions(explicit_triton, repository) == [1]
    running = backend_processes(served)
    assert running
    with model_control(explicit_triton, repository, timeout_s=60) as control:
        control.serve([1, 2])
        try:
            assert backend_processes(served) == running
        finally:
            control.serve([1])
    assert backend_processes(served) == running


@pytest.mark.integration
def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
    explicit_triton, repository, capsys
):
    before = served_versions(explicit_triton, repository)
    graphs = shutil.ignore_patterns("*.onnx")
    broken = add_version(repository / MODEL, 1, 9, ignore=graphs)
    for graph in (repository / MODEL / "1").glob("*.onnx"):
        (broken / graph.name).write_bytes(b"not an onnx model")
    aside = repository / MODEL / "rolled-back-9"
    try:
        code = main(rollout_argv("rollout", explicit_triton, repository, "--version", "9"))
        # A restart serves the newest version: the broken one has left Triton's view.
        assert aside.is_dir() and not broken.exists()
    finally:
        shutil.rmtree(broken, ignore_errors=True)
        shutil.rmtree(aside, ignore_errors=True)
    err = capsys.readouterr().err
    assert code == 1
    assert "error: version 9 did not load or warm" in err
    assert f"moved version 9 aside to {aside}" in err
    if not explicit_triton.running:
        # Triton itself died of the failed load (README, rollouts). A restart must not serve
        # the broken version; the tests after this one need the versions served before.
        explicit_triton.start()
        assert 9 not in served_versions(explicit_triton, repository)
        with model_control(explicit_triton, repository, timeout_s=60) as control:
            control.serve(before)
    assert served_versions(explicit_triton, repository) == before


@pytest.mark.integration
@pytest.mark.usefixtures("restores_version_2")
def test_a_ranker_that_never_switches_rolls_the_version_back(explicit_triton, repository, capsys):
    before = served_versions(explicit_triton, repository)
    silent_ranker = f"{LOOPBACK}:{pick_free_port()}"
    argv = rollout_argv(
        "rollout",
        explicit_triton,
        repository,
        *("--version", "2", "--ranker-url", silent_ranker, "--switch-timeout-s", "1"),
    )
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1
    assert f"error: the ranker at {silent_ranker} still answers with nothing" in err
    assert f"versions {before} served, as before" in err
    assert served_versions(explicit_triton, repository) == before
    assert (repository / MODEL / "rolled-back-2").is_dir()


@pytest.mark.integration
def test_a_triton_without_explicit_model_control_is_refused(
    triton, explicit_triton, repository, capsys
):
    """The session's Triton runs in mode none on the exported repository, serving version 1."""
    code = main(rollout_argv("rollout", triton, repository, "--version", "2"))
    err = capsys.readouterr().err
    assert code == 1
    assert "--model-control-mode=explicit" in err


@pytest.mark.integration
def test_a_rollback_with_no_older_version_fails_and_changes_nothing(
    explicit_triton, repository, capsys
):
    pin_first = rollout_argv("rollout", explicit_triton, repository, "--version", "1")
    assert main([*pin_first, "--settle-s", "0"]) == 0
    code = main(rollout_argv("rollback", explicit_triton, repository))
    assert code == 1
    assert "error: no version below 1 to roll back to" in capsys.readouterr().err
    assert served_versions(explicit_triton, repository) == [1]
