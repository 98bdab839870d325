"""The export CLI, end to end on a tiny random BERT (seconds) and once on the real MiniLM."""

import hashlib
import importlib.util
import json
import os
import string
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import transformers
from google.protobuf import json_format, text_format
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertModel, BertTokenizerFast
from tritonclient.grpc import model_config_pb2

import export.parity
import export.pipeline
from export.cli import main
from export.model_config import INPUT_NAMES, OUTPUT_NAME
from export.repository import latest_version, publish_version, set_aside
from export.serving_tokenizer import encode_padded
from export.targets.python_ort import MODEL_SOURCE

TINY_HIDDEN = 32
TINY_MAX_POSITIONS = 64
WORDS = ["white", "hanging", "heart", "light", "holder", "cake", "stand", "tier", "bag", "red"]
VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    *string.ascii_lowercase,
    *(f"##{letter}" for letter in string.ascii_lowercase),
    *string.digits,
    *string.punctuation,
    *WORDS,
]
TEXTS = [
    "cake",
    "white hanging heart light holder",
    "red bag, 3 tier cake stand!",
    "heart " * 100,  # longer than TINY_MAX_POSITIONS: truncated
]


def build_tiny_bert(model_dir: Path, seed: int = 0) -> Path:
    """A random 2-layer BERT with a WordPiece tokenizer.json, built offline in about a second."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=TINY_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=TINY_MAX_POSITIONS,
    )
    BertModel(config).save_pretrained(model_dir)
    wordpiece = Tokenizer(
        models.WordPiece({token: i for i, token in enumerate(VOCAB)}, unk_token="[UNK]")
    )
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.post_processor = processors.BertProcessing(
        ("[SEP]", VOCAB.index("[SEP]")), ("[CLS]", VOCAB.index("[CLS]"))
    )
    tokenizer = BertTokenizerFast(
        tokenizer_object=wordpiece,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    tokenizer.save_pretrained(model_dir)
    return model_dir


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def tree(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """One export with non-default serving flags; returns the model dir."""
    repository = tmp_path_factory.mktemp("repository")
    code = main(
        [
            *("--model-dir", str(tiny_model_dir), "--repository", str(repository)),
            *("--max-batch-size", "8", "--max-queue-delay-us", "250"),
            *("--instances", "2", "--threads", "1"),
        ]
    )
    assert code == 0
    return repository / "bert_encoder"


def test_publishes_version_1_with_the_python_ort_layout(published: Path) -> None:
    assert sorted(entry.name for entry in published.iterdir()) == ["1", "config.pbtxt"]
    version_dir = published / "1"
    assert sorted(entry.name for entry in version_dir.iterdir()) == [
        "__pycache__",
        "manifest.json",
        "model.onnx",
        "model.optimized.onnx",
        "model.py",
        "tokenizer",
    ]
    assert (version_dir / "tokenizer" / "tokenizer.json").is_file()
    assert (version_dir / "model.py").read_text() == MODEL_SOURCE.read_text()


def test_publishes_model_py_with_bytecode_that_python_keeps(published: Path) -> None:
    """Python writes nothing into the version dir when it imports model.py, as the Python
    backend does: Triton would count the served version as changed (python_ort.py)."""
    version_dir = published / "1"
    bytecode = Path(importlib.util.cache_from_source(str(version_dir / "model.py")))
    # Hash-based and checked against the source: the two low bits of its flags (PEP 552).
    assert int.from_bytes(bytecode.read_bytes()[4:8], "little") & 0b11 == 0b11
    before = {path: path.stat().st_mtime_ns for path in version_dir.rglob("*")}
    script = (
        "import importlib.util, sys; "
        "spec = importlib.util.spec_from_file_location('m', sys.argv[1]); "
        "spec.loader.get_code('m')"
    )
    # A Python that writes bytecode, whatever this one was told.
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(
        [sys.executable, "-c", script, str(version_dir / "model.py")], check=True, env=env
    )
    assert {path: path.stat().st_mtime_ns for path in version_dir.rglob("*")} == before


def test_second_export_is_version_2_and_leaves_version_1_alone(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--model-dir", tiny_model_dir, "--repository", tmp_path)
    assert run_cli(capsys, *args)[0] == 0
    model_dir = tmp_path / "bert_encoder"
    first = {name: sha256(model_dir / "1" / name) for name in ("model.onnx", "manifest.json")}

    code, out, err = run_cli(capsys, *args)

    assert code == 0
    assert out == f"published bert_encoder version 2 -> {model_dir / '2'}\n"
    assert "exporting ONNX" in err and "checking parity" in err
    assert sorted(entry.name for entry in model_dir.iterdir()) == ["1", "2", "config.pbtxt"]
    assert {name: sha256(model_dir / "1" / name) for name in first} == first


def test_onnx_graph_has_two_dynamic_int64_inputs_and_one_embedding(published: Path) -> None:
    graph = onnx.load(published / "1" / "model.onnx")
    onnx.checker.check_model(graph)

    def signature(values: list) -> list[tuple[str, int, list[str | int]]]:
        return [
            (
                value.name,
                value.type.tensor_type.elem_type,
                [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim],
            )
            for value in values
        ]

    int64, fp32 = onnx.TensorProto.INT64, onnx.TensorProto.FLOAT
    assert signature(graph.graph.input) == [
        ("input_ids", int64, ["batch", "sequence"]),
        ("attention_mask", int64, ["batch", "sequence"]),
    ]
    assert signature(graph.graph.output) == [("embedding", fp32, ["batch", TINY_HIDDEN])]
    assert {opset.domain: opset.version for opset in graph.opset_import}[""] == 17


def test_embeddings_are_unit_mean_pooled_vectors_matching_torch(
    published: Path, tiny_model_dir: Path
) -> None:
    """The reference is computed here from BertModel, not from the exporter's own wrapper."""
    tokenizer = Tokenizer.from_file(str(published / "1" / "tokenizer" / "tokenizer.json"))
    input_ids, attention_mask = encode_padded(tokenizer, TEXTS)
    session = ort.InferenceSession(str(published / "1" / "model.onnx"))
    served = session.run(
        [OUTPUT_NAME], dict(zip(INPUT_NAMES, (input_ids, attention_mask), strict=True))
    )[0]

    encoder = BertModel.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        hidden = encoder(
            input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(attention_mask)
        ).last_hidden_state.numpy()
    mask = attention_mask[..., None].astype(np.float32)
    mean = (hidden * mask).sum(axis=1) / mask.sum(axis=1)
    expected = mean / np.linalg.norm(mean, axis=1, keepdims=True)

    assert served.shape == (len(TEXTS), TINY_HIDDEN)
    assert served.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    assert ((served * expected).sum(axis=1) >= 0.9999).all()
    assert input_ids.shape[1] == TINY_MAX_POSITIONS  # the long text was truncated


def test_published_tokenizer_truncates_at_max_seq_len_and_does_not_pad(published: Path) -> None:
    tokenizer = Tokenizer.from_file(str(published / "1" / "tokenizer" / "tokenizer.json"))
    assert tokenizer.truncation["max_length"] == TINY_MAX_POSITIONS
    assert tokenizer.padding is None
    assert len(tokenizer.encode("cake").ids) == 3


def test_manifest_records_source_tools_and_parity(published: Path, tiny_model_dir: Path) -> None:
    manifest = json.loads((published / "1" / "manifest.json").read_text())
    assert manifest["source"] == {
        "model_dir": str(tiny_model_dir.resolve()),
        "model_type": "bert",
        "weights_sha256": {"model.safetensors": sha256(tiny_model_dir / "model.safetensors")},
    }
    assert manifest["target"] == "python-ort"
    assert manifest["precision"] == "fp32"
    assert manifest["hidden_size"] == TINY_HIDDEN
    assert manifest["max_seq_len"] == TINY_MAX_POSITIONS
    assert manifest["opset"] == 17
    assert manifest["tools"] == {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
    }
    parity = manifest["parity"]
    assert parity["min_cosine"] == 0.9999
    assert parity["max_batch_size"] == 8
    assert (
        min(parity["worst_cosine_batch_1"], parity["worst_cosine_max_batch"])
        == (parity["worst_cosine"])
    )
    assert parity["worst_cosine"] >= 0.9999
    assert parity["worst_text"] in {
        export.parity.shorten(text) for text in export.parity.PROBE_TEXTS
    }
    assert parity["texts"] == len(export.parity.PROBE_TEXTS)
    # Both graphs the served model may load passed the gate.
    assert set(parity["files"]) == {"model.onnx", "model.optimized.onnx"}
    assert manifest["ort_optimized"] == {
        "file": "model.optimized.onnx",
        "level": "extended",
        "execution_provider": "CPUExecutionProvider",
        "onnxruntime": ort.__version__,
    }
    assert manifest["exported_at"].endswith("Z")


def test_config_pbtxt_is_a_valid_triton_model_config(published: Path) -> None:
    text = (published / "config.pbtxt").read_text()
    config = text_format.Parse(text, model_config_pb2.ModelConfig())

    assert config.name == "bert_encoder"
    assert config.backend == "python"
    assert config.max_batch_size == 8
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        ("input_ids", model_config_pb2.TYPE_INT64, [-1]),
        ("attention_mask", model_config_pb2.TYPE_INT64, [-1]),
    ]
    assert all(i.allow_ragged_batch for i in config.input)
    assert [(o.name, o.data_type, list(o.dims)) for o in config.output] == [
        ("embedding", model_config_pb2.TYPE_FP32, [TINY_HIDDEN])
    ]
    assert config.dynamic_batching.max_queue_delay_microseconds == 250
    assert [(g.kind, g.count) for g in config.instance_group] == [
        (model_config_pb2.ModelInstanceGroup.KIND_CPU, 2)
    ]
    assert config.version_policy.latest.num_versions == 1
    assert config.parameters["intra_op_threads"].string_value == "1"
    assert config.parameters["allow_spinning"].string_value == "0"
    # Warmup at a typical title length, at batch 1 and the max batch; [PAD] ids are in any vocab.
    assert [(w.name, w.batch_size) for w in config.model_warmup] == [
        ("batch 1, 16 tokens", 1),
        ("batch 8, 16 tokens", 8),
    ]
    for warmup in config.model_warmup:
        assert sorted(warmup.inputs) == sorted(INPUT_NAMES)
        for tensor in warmup.inputs.values():
            assert (tensor.data_type, list(tensor.dims)) == (model_config_pb2.TYPE_INT64, [16])
            assert tensor.zero_data


# The Python-backend model, run outside Triton against a fake triton_python_backend_utils.


class FakeTensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name, self._array = name, array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class FakeTritonError(Exception):
    pass


class FakeResponse:
    def __init__(self, output_tensors: list[FakeTensor], error: FakeTritonError | None = None):
        self.output_tensors, self.error = output_tensors, error


class FakeRequest:
    def __init__(self, **inputs: np.ndarray) -> None:
        self.inputs = {name: FakeTensor(name, array) for name, array in inputs.items()}


class RecordingSession:
    """Wraps the real ORT session to see how many runs happen and at which shapes."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session, self.input_shapes = session, []

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.input_shapes.append(feeds["input_ids"].shape)
        return self.session.run(names, feeds)


@pytest.fixture
def model_module(published: Path, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The published model.py, imported against a fake triton_python_backend_utils."""
    fake = types.ModuleType("triton_python_backend_utils")
    fake.Tensor = FakeTensor
    fake.TritonError = FakeTritonError
    fake.InferenceResponse = FakeResponse
    fake.get_input_tensor_by_name = lambda request, name: request.inputs.get(name)
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    spec = importlib.util.spec_from_file_location(
        "bert_encoder_model", published / "1" / "model.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def triton_model(published: Path, model_module: types.ModuleType):
    module = model_module
    # Triton hands the model its config.pbtxt as JSON with proto field names.
    config = text_format.Parse(
        (published / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    assert (module.INPUT_NAMES, module.OUTPUT_NAME) == (INPUT_NAMES, OUTPUT_NAME)
    model = module.TritonPythonModel()
    model.initialize(
        {
            "model_repository": str(published),
            "model_version": "1",
            "model_config": json_format.MessageToJson(config, preserving_proto_field_name=True),
        }
    )
    session_options = model.session.get_session_options()
    assert session_options.intra_op_num_threads == 1
    assert session_options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    model.session = RecordingSession(model.session)
    return model


def tokenized_request(published: Path, *texts: str) -> FakeRequest:
    tokenizer = Tokenizer.from_file(str(published / "1" / "tokenizer" / "tokenizer.json"))
    input_ids, attention_mask = encode_padded(tokenizer, texts)
    return FakeRequest(input_ids=input_ids, attention_mask=attention_mask)


def embeddings(response: FakeResponse) -> np.ndarray:
    assert response.error is None
    [tensor] = response.output_tensors
    assert tensor.name() == OUTPUT_NAME
    return tensor.as_numpy()


def test_model_merges_requests_of_different_lengths_into_one_padded_run(
    triton_model, published: Path
) -> None:
    requests = [
        tokenized_request(published, "cake"),
        tokenized_request(published, "white hanging heart light holder", "red bag"),
        tokenized_request(published, "3 tier cake stand"),
    ]
    lengths = [request.inputs["input_ids"].as_numpy().shape[1] for request in requests]
    alone = [embeddings(triton_model.execute([request])[0]) for request in requests]
    triton_model.session.input_shapes.clear()

    merged = [embeddings(response) for response in triton_model.execute(requests)]

    assert len(set(lengths)) == 3
    assert triton_model.session.input_shapes == [(4, max(lengths))]  # one run, longest, not fixed
    assert [array.shape for array in merged] == [
        (1, TINY_HIDDEN),
        (2, TINY_HIDDEN),
        (1, TINY_HIDDEN),
    ]
    for got, expected in zip(merged, alone, strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_model_answers_a_malformed_request_with_its_own_error(
    triton_model, published: Path
) -> None:
    good = tokenized_request(published, "red bag")
    ids = good.inputs["input_ids"].as_numpy()
    mask = good.inputs["attention_mask"].as_numpy()
    requests = [
        FakeRequest(input_ids=ids),
        FakeRequest(input_ids=ids, attention_mask=mask[:, :-1]),
        FakeRequest(input_ids=np.full_like(ids, 10_000), attention_mask=mask),  # outside vocab
        good,
    ]

    responses = triton_model.execute(requests)

    assert len(responses) == len(requests)
    assert "missing input 'attention_mask'" in str(responses[0].error)
    assert "must share one" in str(responses[1].error)
    assert "inference failed" in str(responses[2].error)
    alone = embeddings(triton_model.execute([good])[0])
    np.testing.assert_allclose(embeddings(responses[3]), alone, atol=1e-6)


def test_model_loads_the_offline_graph_only_on_the_onnxruntime_that_wrote_it(
    model_module: types.ModuleType, published: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version_dir = published / "1"
    assert model_module.served_graph(str(version_dir)) == (
        str(version_dir / "model.optimized.onnx"),
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    )

    monkeypatch.setattr(model_module.ort, "__version__", "0.0.1")
    assert model_module.served_graph(str(version_dir)) == (
        str(version_dir / "model.onnx"),
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    )


def test_skip_if_current_exports_only_when_the_weights_change(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--model-dir", tiny_model_dir, "--repository", tmp_path, "--skip-if-current")
    assert run_cli(capsys, *args)[0] == 0  # nothing there yet: exports version 1
    model_dir = tmp_path / "bert_encoder"

    assert run_cli(capsys, *args) == (0, "up to date: bert_encoder version 1\n", "")

    manifest_path = model_dir / "1" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["source"]["weights_sha256"]["model.safetensors"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    code, out, _ = run_cli(capsys, *args)
    assert (code, out) == (0, f"published bert_encoder version 2 -> {model_dir / '2'}\n")

    # A version written by other exporter code (another model.py, another graph) is stale too.
    manifest_path = model_dir / "2" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["exporter_sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    code, out, _ = run_cli(capsys, *args)
    assert (code, out) == (0, f"published bert_encoder version 3 -> {model_dir / '3'}\n")


def bad_input_cases() -> list:
    def write(path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return [
        pytest.param(lambda tmp, tiny: ["--model-dir", tmp / "nope"], id="missing-model-dir"),
        pytest.param(
            lambda tmp, tiny: ["--model-dir", write(tmp / "m" / "README", "").parent],
            id="not-a-model-dir",
        ),
        pytest.param(
            lambda tmp, tiny: ["--model-dir", write(tmp / "m" / "config.json", "{oops").parent],
            id="broken-config-json",
        ),
        pytest.param(
            lambda tmp, tiny: [
                "--model-dir",
                write(tmp / "m" / "config.json", '{"model_type": "gpt2"}').parent,
            ],
            id="not-an-encoder",
        ),
        pytest.param(
            lambda tmp, tiny: [
                "--model-dir",
                write(tmp / "m" / "config.json", '{"model_type": "bert"}').parent,
            ],
            id="no-weights",
        ),
        pytest.param(
            lambda tmp, tiny: ["--model-dir", tiny, "--repository", write(tmp / "repo", "")],
            id="repository-is-a-file",
        ),
        pytest.param(
            lambda tmp, tiny: [
                "--model-dir",
                tiny,
                "--repository",
                write(tmp / "repo" / "bert_encoder", "").parent,
            ],
            id="model-dir-is-a-file",
        ),
        pytest.param(
            lambda tmp, tiny: ["--model-dir", tiny, "--model-name", "../escape"],
            id="bad-model-name",
        ),
        pytest.param(lambda tmp, tiny: ["--opset", "99"], id="opset-out-of-range"),
        pytest.param(lambda tmp, tiny: ["--target", "tflite"], id="unknown-target"),
        pytest.param(lambda tmp, tiny: ["--instances", "0"], id="zero-instances"),
        pytest.param(lambda tmp, tiny: ["--no-such-flag"], id="unknown-flag"),
    ]


@pytest.mark.parametrize("make_args", bad_input_cases())
def test_bad_input_is_one_error_line_exit_2_and_writes_nothing(
    make_args, tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--repository", tmp_path / "repo", *make_args(tmp_path, tiny_model_dir)]
    before = tree(tmp_path)

    code, out, err = run_cli(capsys, *args)

    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert tree(tmp_path) == before


def test_unwritable_repository_is_refused_before_exporting(
    tmp_path: Path,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Tests may run as root, which chmod cannot stop, so the permission check is faked.
    monkeypatch.setattr("export.repository.os.access", lambda path, mode: False)

    code, out, err = run_cli(
        capsys, "--model-dir", tiny_model_dir, "--repository", tmp_path / "repo"
    )

    assert (code, out) == (2, "")
    model_dir = tmp_path / "repo" / "bert_encoder"
    assert err == f"error: cannot create {model_dir}: {tmp_path} is not writable\n"
    assert tree(tmp_path) == []


def test_parity_failure_publishes_nothing_and_exits_1(
    tmp_path: Path,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(export.parity.MIN_COSINE, "fp32", 1.5)

    code, out, err = run_cli(capsys, "--model-dir", tiny_model_dir, "--repository", tmp_path)

    assert (code, out) == (1, "")
    assert err.splitlines()[-1].startswith("error: parity failed for 18 of 18 texts in ")
    assert err.endswith("; nothing published\n")
    assert "cosine " in err and "'REGENCY CAKESTAND 3 TIER'" in err
    assert tree(tmp_path) == []


def test_interrupted_export_leaves_no_temp_or_version_dir(
    tmp_path: Path,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupt(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(export.pipeline, "write_manifest", interrupt)

    code, out, err = run_cli(capsys, "--model-dir", tiny_model_dir, "--repository", tmp_path)

    assert (code, out) == (130, "")
    assert err.endswith("error: interrupted\n")
    assert tree(tmp_path) == []


def test_publish_version_takes_the_next_free_number_and_cleans_up_on_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "model.onnx").write_text("v1")
    (tmp_path / "4").mkdir()  # empty, yet never renamed over
    (tmp_path / "not-a-version").mkdir()

    def fail(staging: Path) -> None:
        (staging / "model.onnx").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        publish_version(tmp_path, fail)
    assert tree(tmp_path) == ["1", "1/model.onnx", "4", "not-a-version"]

    version, path = publish_version(tmp_path, lambda staging: (staging / "x").write_text("v5"))
    assert (version, path) == (5, tmp_path / "5")
    assert latest_version(tmp_path) == 5
    assert (tmp_path / "1" / "model.onnx").read_text() == "v1"
    assert tree(tmp_path) == ["1", "1/model.onnx", "4", "5", "5/x", "not-a-version"]

    # A rolled-back version leaves Triton's view, and its number is never published again.
    assert set_aside(tmp_path, 5) == tmp_path / "rolled-back-5"
    assert latest_version(tmp_path) == 5
    version, _ = publish_version(tmp_path, lambda staging: (staging / "x").write_text("v6"))
    assert version == 6


def test_exports_the_default_minilm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--repository", tmp_path)

    assert code == 0
    version_dir = tmp_path / "bert_encoder" / "1"
    assert out == f"published bert_encoder version 1 -> {version_dir}\n"
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert (manifest["hidden_size"], manifest["max_seq_len"]) == (384, 256)
    assert manifest["parity"]["worst_cosine"] >= 0.9999

    tokenizer = Tokenizer.from_file(str(version_dir / "tokenizer" / "tokenizer.json"))
    session = ort.InferenceSession(str(version_dir / "model.onnx"))
    texts = ["REGENCY CAKESTAND 3 TIER", "three tier cake stand", "usb charging cable"]
    inputs = dict(zip(INPUT_NAMES, encode_padded(tokenizer, texts), strict=True))
    anchor, paraphrase, unrelated = session.run([OUTPUT_NAME], inputs)[0]
    assert anchor @ paraphrase > anchor @ unrelated + 0.2
