"""Export targets beyond the default: onnxruntime, int8, the TensorRT path up to the engine build,
the parity gate's two batch sizes, and `--verify-only`, on a tiny random BERT."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from google.protobuf import text_format
from test_export import build_tiny_bert, run_cli, tree
from tokenizers import Tokenizer
from tritonclient.grpc import model_config_pb2

import export.cli
import export.parity
import export.rollout
from export.cli import main
from export.model_config import INPUT_NAMES, Embedder, ServingOptions, render_config
from export.onnx_graph import EmbeddingGraph, export_onnx
from export.parity import MIN_COSINE, PROBE_TEXTS, check_parity, reference_embeddings
from export.serving_tokenizer import TOKENIZER_DIR
from export.targets import BuildContext, TargetSettings, make_target
from export.targets.mixed_precision import (
    FP32_OP_TYPES,
    mask_arithmetic_nodes,
    write_mixed_precision,
)
from export.targets.ort_graph import ort_embedder
from export.targets.shape_profile import ShapeProfile, parse_profile
from export.targets.tensorrt import TensorRTTarget

FP16, FP32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT


def tensorrt_usable() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """python-ort, fp32, max batch 4 (fewer rows than probes: the gate runs several batches)."""
    repository = tmp_path_factory.mktemp("repository")
    args = ["--model-dir", str(tiny_model_dir), "--repository", str(repository)]
    assert main([*args, "--max-batch-size", "4", "--keep-versions", "2"]) == 0
    return repository / "bert_encoder"


def parse_config(model_dir: Path) -> model_config_pb2.ModelConfig:
    text = (model_dir / "config.pbtxt").read_text()
    return text_format.Parse(text, model_config_pb2.ModelConfig())


# The parity gate


class PerturbingEmbedder:
    """Exact reference numbers, except for one text when it is embedded inside a full batch."""

    def __init__(self, tokenizer: Tokenizer, graph: EmbeddingGraph, spoiled: str) -> None:
        self.tokenizer, self.graph = tokenizer, graph
        self.spoiled = tokenizer.encode(spoiled).ids
        self.batch_sizes: list[int] = []

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(len(input_ids))
        with torch.no_grad():
            out = self.graph(torch.from_numpy(input_ids), torch.from_numpy(attention_mask)).numpy()
        if len(input_ids) > 1:
            for row, ids in enumerate(input_ids):
                if list(ids[: len(self.spoiled)]) == self.spoiled and ids[len(self.spoiled)] == 0:
                    out[row] = -out[row]
        return out


def test_parity_runs_every_probe_at_batch_1_and_in_full_max_size_batches(
    tiny_model_dir: Path,
) -> None:
    from export.encoder import load_encoder
    from export.serving_tokenizer import serving_tokenizer
    from export.source import inspect_source

    loaded = load_encoder(inspect_source(tiny_model_dir))
    tokenizer = serving_tokenizer(loaded.tokenizer, loaded.max_seq_len)
    graph = EmbeddingGraph(loaded.encoder)
    embed = PerturbingEmbedder(tokenizer, graph, "cake")
    reference = reference_embeddings(graph, tokenizer)

    report = check_parity(
        reference, tokenizer, embed, threshold=MIN_COSINE["fp16"], max_batch_size=5
    )

    # 18 probes at batch 1, then 4 full batches of 5 (20 rows: every probe at least once).
    assert embed.batch_sizes == [1] * len(PROBE_TEXTS) + [5] * 4
    assert report.threshold == export.parity.MIN_COSINE["fp16"] == 0.999
    assert report.single["x"] == pytest.approx(1.0, abs=1e-6)
    assert report.failures == {}  # "cake" is not a probe: nothing spoiled yet

    embed = PerturbingEmbedder(tokenizer, graph, PROBE_TEXTS[1])
    report = check_parity(
        reference, tokenizer, embed, threshold=MIN_COSINE["fp32"], max_batch_size=5
    )
    assert report.single[PROBE_TEXTS[1]] == pytest.approx(1.0, abs=1e-6)
    assert report.batched[PROBE_TEXTS[1]] == pytest.approx(-1.0, abs=1e-6)
    assert list(report.failures) == [PROBE_TEXTS[1]]
    assert report.summary()["worst_cosine_max_batch"] == pytest.approx(-1.0, abs=1e-6)


# Command-line validation: all before any slow work, one line, exit 2, nothing written


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1:8", "must be min:opt:max"),
        ("1:x:8", "must be integers"),
        ("4:2:8", "1 <= min <= opt <= max"),
        ("0:1:8", "1 <= min <= opt <= max"),
    ],
)
def test_bad_profiles_are_refused_with_the_rule(text: str, message: str) -> None:
    with pytest.raises(export.cli.ExportInputError, match=message):
        parse_profile(text, "--batch")


def test_profiles_parse_to_min_opt_max() -> None:
    assert parse_profile("1:16:64", "--batch") == ShapeProfile(1, 16, 64)
    assert str(parse_profile("2:2:2", "--seq")) == "2:2:2"


def bad_target_cases() -> list:
    return [
        pytest.param(["--target", "tensorrt", "--int8"], "--int8", id="int8-tensorrt"),
        pytest.param(["--batch", "1:8:16"], "--target tensorrt", id="batch-python-ort"),
        pytest.param(["--device", "gpu"], "runs on the CPU", id="python-ort-gpu"),
        pytest.param(
            ["--target", "onnxruntime", "--int8", "--device", "gpu"], "--device cpu", id="int8-gpu"
        ),
        pytest.param(
            ["--target", "tensorrt", "--batch", "2:8:16"], "min must be 1", id="batch-min-2"
        ),
        pytest.param(
            ["--target", "tensorrt", "--batch", "1:8:16", "--max-batch-size", "8"],
            "differs from the --batch profile's max 16",
            id="batch-vs-max-batch-size",
        ),
        pytest.param(["--target", "tensorrt", "--seq", "1:9"], "min:opt:max", id="bad-seq"),
        pytest.param(["--target", "tensorrt", "--opset", "17"], "--opset 18", id="opset-17"),
        pytest.param(["--version", "1"], "--verify-only", id="version-without-verify"),
        pytest.param(["--keep-versions", "0"], "out of range", id="keep-0"),
    ]


@pytest.mark.parametrize(("args", "message"), bad_target_cases())
def test_bad_target_flags_are_one_error_line_exit_2_and_write_nothing(
    args: list[str], message: str, tmp_path: Path, tiny_model_dir: Path, capsys
) -> None:
    code, out, err = run_cli(
        capsys, "--model-dir", tiny_model_dir, "--repository", tmp_path / "repo", *args
    )

    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert tree(tmp_path) == []


@pytest.mark.skipif(tensorrt_usable(), reason="TensorRT and a GPU are here: the build runs")
def test_tensorrt_without_tensorrt_says_so_and_publishes_nothing(
    tmp_path: Path, tiny_model_dir: Path, capsys
) -> None:
    code, out, err = run_cli(
        capsys, "--model-dir", tiny_model_dir, "--repository", tmp_path, "--target", "tensorrt"
    )

    assert (code, out) == (2, "")
    assert err.startswith("error: --target tensorrt needs TensorRT 10 or newer and a CUDA GPU")
    assert len(err.splitlines()) == 1
    assert tree(tmp_path) == []


# onnxruntime and int8


def test_onnxruntime_target_serves_the_plain_graph_on_the_onnxruntime_backend(
    tmp_path: Path, tiny_model_dir: Path, capsys
) -> None:
    args = ("--model-dir", tiny_model_dir, "--repository", tmp_path, "--max-batch-size", "8")
    code, out, _ = run_cli(capsys, *args, "--target", "onnxruntime", "--threads", "2")

    model_dir = tmp_path / "bert_encoder"
    assert (code, out) == (0, f"published bert_encoder version 1 -> {model_dir / '1'}\n")
    assert tree(model_dir / "1") == [
        "manifest.json",
        "model.onnx",
        TOKENIZER_DIR,
        *(f"{TOKENIZER_DIR}/{name}" for name in ("tokenizer.json", "tokenizer_config.json")),
    ]
    config = parse_config(model_dir)
    assert (config.platform, config.backend) == ("onnxruntime_onnx", "")
    assert [(g.kind, g.count) for g in config.instance_group] == [
        (model_config_pb2.ModelInstanceGroup.KIND_GPU, 1)
    ]
    # The backend runs one tensor per batch: merging ragged requests is python-ort's job.
    assert not any(i.allow_ragged_batch for i in config.input)
    assert [i.name for i in config.input] == list(INPUT_NAMES)
    assert config.parameters["intra_op_thread_count"].string_value == "2"
    manifest = json.loads((model_dir / "1" / "manifest.json").read_text())
    assert (manifest["target"], manifest["precision"]) == ("onnxruntime", "fp32")
    assert set(manifest["parity"]["files"]) == {"model.onnx"}
    assert manifest["instance_kind"] == "KIND_GPU"


def test_onnxruntime_on_cpu_and_int8_default_to_kind_cpu() -> None:
    assert make_target("onnxruntime", TargetSettings(device="cpu")).instance_kind == "KIND_CPU"
    int8 = make_target("onnxruntime", TargetSettings(int8=True))
    assert (int8.instance_kind, int8.precision) == ("KIND_CPU", "int8")


def test_int8_quantises_every_projection_and_attention_block_per_channel(
    tmp_path: Path, tiny_model_dir: Path, capsys
) -> None:
    args = ("--model-dir", tiny_model_dir, "--repository", tmp_path, "--max-batch-size", "8")
    assert run_cli(capsys, *args, "--int8")[0] == 0

    version_dir = tmp_path / "bert_encoder" / "1"
    graph = onnx.load(version_dir / "model.onnx")
    ops = [node.op_type for node in graph.graph.node]
    # Fused first: 2 layers x (attention, its output, ffn in, ffn out), none left in fp32.
    assert (ops.count("QAttention"), ops.count("MatMulInteger")) == (2, 6)
    assert "MatMul" not in ops and "Attention" not in ops
    weights = {tensor.name: tensor for tensor in graph.graph.initializer}
    # (weight, its scale) per quantised node: one scale per output column, never one per tensor.
    quantised = [
        (weights[n.input[1]], weights[n.input[4] if n.op_type == "QAttention" else n.input[3]])
        for n in graph.graph.node
        if n.op_type in ("QAttention", "MatMulInteger")
    ]
    assert all(list(scale.dims) == [weight.dims[1]] for weight, scale in quantised)
    assert "DequantizeLinear" not in ops  # the embedding tables stay fp32
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert (manifest["target"], manifest["precision"]) == ("python-ort", "int8")
    assert (manifest["int8_layers"], manifest["fp32_layers"]) == (8, [])
    assert manifest["ort_fused_ops"]["Attention"] == 2
    assert manifest["parity"]["min_cosine"] == 0.99
    assert manifest["parity"]["worst_cosine"] >= 0.99


@pytest.fixture(scope="module")
def fused_tiny(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    from export.encoder import load_encoder
    from export.source import inspect_source
    from export.targets.ort_graph import fuse_transformer

    loaded = load_encoder(inspect_source(tiny_model_dir))
    scratch = tmp_path_factory.mktemp("fused")
    export_onnx(EmbeddingGraph(loaded.encoder), scratch / "plain.onnx", 17)
    config = loaded.encoder.config
    fused = fuse_transformer(
        scratch / "plain.onnx",
        scratch / "fused.onnx",
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
    )
    assert fused["Attention"] == config.num_hidden_layers
    return scratch / "fused.onnx"


def build_context(
    repository: Path,
    *,
    max_batch_size: int = 8,
    max_seq_len: int = 32,
    worst_cosine: Callable[[Embedder], float] = lambda _embed: 1.0,
) -> BuildContext:
    return BuildContext(
        max_batch_size=max_batch_size,
        max_seq_len=max_seq_len,
        repository=repository,
        log=print,
        num_heads=2,
        hidden_size=32,
        min_cosine=0.99,
        worst_cosine=worst_cosine,
    )


def scored_by_errors(
    int8_path: Path, error: dict[str, float], *, crowding: float = 0.0
) -> Callable[[Embedder], float]:
    """A gate that scores the quantised graph by the errors given for the nodes it quantised (the
    nodes still there under their fp32 names were kept), plus `crowding` for each one beyond the
    first: errors that do not simply add up."""

    def worst_cosine(_embed: Embedder) -> float:
        kept = {node.name for node in onnx.load(int8_path).graph.node}
        quantised = [err for node, err in error.items() if node not in kept]
        return 1.0 - sum(quantised) - crowding * max(len(quantised) - 1, 0)

    return worst_cosine


@pytest.mark.parametrize(
    ("crowding", "kept"),
    [
        pytest.param(0.0, [3, 6], id="errors-add-up"),  # 0.013 in all, 0.008 allowed: 2 out
        pytest.param(0.0005, [3, 6, 0], id="errors-compound"),  # the estimate falls short by one
    ],
)
def test_int8_keeps_the_layers_with_the_largest_errors_in_fp32_until_the_gate_passes(
    tmp_path: Path, fused_tiny: Path, crowding: float, kept: list[int]
) -> None:
    from export.targets.int8_selection import quantize_within_gate
    from export.targets.ort_graph import int8_candidates

    nodes = int8_candidates(fused_tiny)
    error = dict.fromkeys(nodes, 0.001)
    error[nodes[3]], error[nodes[6]] = 0.004, 0.003
    gate = scored_by_errors(tmp_path / "int8.onnx", error, crowding=crowding)
    context = build_context(tmp_path, worst_cosine=gate)

    record = quantize_within_gate(fused_tiny, tmp_path / "int8.onnx", context)

    fp32 = [nodes[i] for i in kept]
    assert record == {"int8_layers": len(nodes) - len(kept), "fp32_layers": fp32}
    served = {node.name for node in onnx.load(tmp_path / "int8.onnx").graph.node}
    assert sorted(name for name in nodes if name in served) == sorted(fp32)


def test_int8_that_no_layer_can_take_is_refused(tmp_path: Path, fused_tiny: Path) -> None:
    from export.targets.int8_selection import quantize_within_gate
    from export.targets.ort_graph import int8_candidates

    error = dict.fromkeys(int8_candidates(fused_tiny), 0.02)
    context = build_context(tmp_path, worst_cosine=scored_by_errors(tmp_path / "int8.onnx", error))

    with pytest.raises(export.parity.ParityError, match="with any layer quantised"):
        quantize_within_gate(fused_tiny, tmp_path / "int8.onnx", context)


def test_min_cosine_replaces_the_gate_and_verify_only_keeps_to_it(
    tmp_path: Path, tiny_model_dir: Path, capsys
) -> None:
    args = (
        "--model-dir",
        tiny_model_dir,
        "--repository",
        tmp_path,
        "--max-batch-size",
        "4",
        "--int8",
    )
    code, _, err = run_cli(capsys, *args, "--min-cosine", "1.0")
    assert code == 1 and "nothing published" in err
    assert not (tmp_path / "bert_encoder" / "1").exists()

    code, _, err = run_cli(capsys, *args, "--min-cosine", "0.5")
    assert code == 0
    assert "lowers the int8 parity gate from 0.99" in err
    manifest = json.loads((tmp_path / "bert_encoder" / "1" / "manifest.json").read_text())
    assert manifest["parity"]["min_cosine"] == 0.5
    assert (
        run_cli(capsys, "--repository", tmp_path, "--model-dir", tiny_model_dir, "--verify-only")[0]
        == 0
    )


@pytest.mark.parametrize("value", ["0", "1.5", "high"])
def test_min_cosine_must_be_in_the_unit_interval(capsys, value: str) -> None:
    code, _, err = run_cli(capsys, "--min-cosine", value)
    assert code == 2 and "--min-cosine" in err


# Config and version policy


def test_keep_versions_sets_the_version_policy(published: Path) -> None:
    assert parse_config(published).version_policy.latest.num_versions == 2


def test_tensorrt_config_is_a_plan_on_the_gpu_with_the_profile_max_as_batch_size() -> None:
    target = make_target(
        "tensorrt",
        TargetSettings(batch=ShapeProfile(1, 16, 32), seq=ShapeProfile(1, 12, 12)),
    )
    max_seq_len = target.fit_sequence_length(longest=256, shortest=2)
    max_batch_size = export.cli._max_batch_size(None, ShapeProfile(1, 16, 32))
    text = render_config(
        "bert_encoder", target, 384, max_seq_len, ServingOptions(max_batch_size=max_batch_size)
    )
    config = text_format.Parse(text, model_config_pb2.ModelConfig())

    assert (config.platform, config.max_batch_size, max_seq_len) == ("tensorrt_plan", 32, 12)
    assert [g.kind for g in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        (name, model_config_pb2.TYPE_INT64, [-1]) for name in INPUT_NAMES
    ]
    assert not any(i.allow_ragged_batch for i in config.input)
    assert [(o.name, o.data_type) for o in config.output] == [
        ("embedding", model_config_pb2.TYPE_FP32)
    ]
    # Warmup shapes stay inside the engine's profiles.
    assert [(w.batch_size, list(w.inputs["input_ids"].dims)) for w in config.model_warmup] == [
        (1, [12]),
        (32, [12]),
    ]
    assert not config.parameters


def test_tensorrt_profiles_default_to_the_serving_limits_and_check_the_sequence() -> None:
    context = build_context(Path("."), max_batch_size=64, max_seq_len=256)
    assert TensorRTTarget().profiles(context) == (ShapeProfile(1, 64, 64), ShapeProfile(1, 32, 256))
    assert TensorRTTarget().fit_sequence_length(longest=256, shortest=2) == 256
    with pytest.raises(export.cli.ExportInputError, match="above the model's maximum"):
        TensorRTTarget(seq=ShapeProfile(1, 32, 512)).fit_sequence_length(256, 2)
    with pytest.raises(export.cli.ExportInputError, match="length of an empty text"):
        TensorRTTarget(seq=ShapeProfile(3, 32, 128)).fit_sequence_length(256, 2)


# The mixed-precision graph that a strongly typed TensorRT network is built from


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    from export.encoder import load_encoder
    from export.serving_tokenizer import serving_tokenizer
    from export.source import inspect_source

    loaded = load_encoder(inspect_source(tiny_model_dir))
    tokenizer = serving_tokenizer(loaded.tokenizer, loaded.max_seq_len)
    graph = EmbeddingGraph(loaded.encoder)
    scratch = tmp_path_factory.mktemp("mixed")
    plain, fp16 = scratch / "model.onnx", scratch / "model.fp16.onnx"
    export_onnx(graph, plain, 18)
    write_mixed_precision(plain, fp16)
    return plain, fp16, graph, tokenizer


def element_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    return {value.name: value.type.tensor_type.elem_type for value in values}


def test_mixed_precision_graph_keeps_the_interface_and_fp32_islands(mixed) -> None:
    plain_path, fp16_path, _, _ = mixed
    plain, fp16 = onnx.load(plain_path), onnx.load(fp16_path)
    types = element_types(fp16)
    nodes = {node.name: node for node in fp16.graph.node}

    # The served interface is unchanged: INT64 ids and mask in, FP32 embedding out.
    assert [(v.name, v.type.tensor_type.elem_type) for v in fp16.graph.input] == [
        (name, onnx.TensorProto.INT64) for name in INPUT_NAMES
    ]
    assert [(v.name, v.type.tensor_type.elem_type) for v in fp16.graph.output] == [
        ("embedding", FP32)
    ]
    assert {opset.domain: opset.version for opset in fp16.opset_import}[""] == 18
    # The heavy work is FP16 ...
    matmuls = [node for node in fp16.graph.node if node.op_type == "MatMul"]
    assert matmuls and all(types[node.output[0]] == FP16 for node in matmuls)
    # ... LayerNorm, softmax and the reductions are not ...
    blocked = [node for node in fp16.graph.node if node.op_type in FP32_OP_TYPES]
    assert {node.op_type for node in blocked} >= {"LayerNormalization", "Softmax", "ReduceSum"}
    for node in blocked:
        float_outputs = [types[o] for o in node.output if types.get(o) in (FP16, FP32)]
        assert float_outputs and set(float_outputs) == {FP32}, node.name
    # ... nor is the attention-mask arithmetic, up to where it meets the attention scores.
    mask_nodes = mask_arithmetic_nodes(plain)
    score_adds = [name for name in mask_nodes if name.endswith("attention/self/Add")]
    assert len(score_adds) == 2  # one per layer
    for name in mask_nodes:
        outputs = [types.get(o) for o in nodes[name].output]
        assert FP16 not in outputs, name


def test_mixed_precision_graph_meets_fp16_parity_on_onnxruntime_cpu(mixed) -> None:
    """ONNX Runtime's CPU provider upcasts most FP16 nodes, so this checks the graph and its
    FP16 weights; FP16 arithmetic is bench/gpu/check.sh's job."""
    _, fp16_path, graph, tokenizer = mixed
    reference = reference_embeddings(graph, tokenizer)

    report = check_parity(
        reference,
        tokenizer,
        ort_embedder(fp16_path),
        threshold=MIN_COSINE["fp16"],
        max_batch_size=8,
    )

    assert report.failures == {}, report.describe_worst()
    assert report.worst_cosine >= 0.999
    assert report.worst_cosine < 0.9999999  # the weights really were rounded to FP16


@pytest.mark.gpu
@pytest.mark.skipif(not tensorrt_usable(), reason="needs the tensorrt package and a CUDA GPU")
def test_tensorrt_builds_a_plan_that_passes_fp16_parity(
    tmp_path: Path, tiny_model_dir: Path, capsys
) -> None:
    args = ("--model-dir", tiny_model_dir, "--repository", tmp_path, "--target", "tensorrt")
    code, _, err = run_cli(capsys, *args, "--batch", "1:4:8", "--seq", "1:16:32")

    assert code == 0, err
    model_dir = tmp_path / "bert_encoder"
    assert (model_dir / "1" / "model.plan").stat().st_size > 0
    assert (tmp_path / ".trt_timing_cache").stat().st_size > 0
    config = parse_config(model_dir)
    assert (config.platform, config.max_batch_size) == ("tensorrt_plan", 8)
    manifest = json.loads((model_dir / "1" / "manifest.json").read_text())
    import tensorrt

    assert manifest["tensorrt"]["version"] == tensorrt.__version__
    assert manifest["tensorrt"]["profiles"] == {"batch": "1:4:8", "seq": "1:16:32"}
    assert manifest["parity"]["worst_cosine"] >= 0.999
    assert manifest["max_seq_len"] == 32
    assert run_cli(capsys, "--repository", tmp_path, "--verify-only")[0] == 0


# --verify-only


def test_verify_only_rechecks_the_published_files(published: Path, capsys) -> None:
    code, out, err = run_cli(capsys, "--repository", published.parent, "--verify-only")

    assert (code, out) == (0, "verified bert_encoder version 1 locally\n")
    assert "model.optimized.onnx: worst cosine" in err and "model.onnx: worst cosine" in err


def test_verify_only_fails_a_version_whose_model_changed(
    tmp_path: Path, published: Path, capsys
) -> None:
    repository = tmp_path / "repo"
    shutil.copytree(published.parent, repository)
    onnx_path = repository / "bert_encoder" / "1" / "model.onnx"
    model = onnx.load(onnx_path)
    for tensor in model.graph.initializer:
        if tensor.name.endswith("attention.self.query.bias") or "MatMul" in tensor.name:
            array = onnx.numpy_helper.to_array(tensor)
            tensor.CopyFrom(onnx.numpy_helper.from_array(array[::-1].copy(), tensor.name))
    onnx.save(model, onnx_path)

    code, out, err = run_cli(capsys, "--repository", repository, "--verify-only", "--version", "1")

    assert (code, out) == (1, "")
    last = err.splitlines()[-1]
    assert last.startswith("error: parity failed for ") and " texts in model.onnx: " in last
    assert "published" not in last  # it was, and stays; the check says it is wrong
    assert "model.optimized.onnx: worst cosine" in err  # untouched, so it passed


def test_verify_only_refuses_other_weights_and_missing_versions(
    tmp_path: Path, published: Path, capsys
) -> None:
    other = build_tiny_bert(tmp_path / "other", seed=1)
    repository = published.parent

    code, _, err = run_cli(
        capsys, "--repository", repository, "--verify-only", "--model-dir", other
    )
    assert code == 2 and "does not hold the weights version 1 was built from" in err

    code, _, err = run_cli(capsys, "--repository", repository, "--verify-only", "--version", "9")
    assert (code, err) == (2, f"error: no published version 9 in {published}\n")

    # A Triton that cannot be reached fails the check (exit 1), it is not bad input.
    args = ("--repository", repository, "--verify-only", "--triton-url", "127.0.0.1:1")
    code, out, err = run_cli(capsys, *args)
    assert (code, out) == (1, "")
    assert err.startswith("error: cannot ask Triton at 127.0.0.1:1 about bert_encoder: ")


@pytest.mark.integration
def test_verify_only_through_triton_pins_the_version(triton, model_repository: Path, capsys):
    args = ("--repository", model_repository, "--verify-only", "--triton-url", triton.grpc_url)
    code, out, err = run_cli(capsys, *args)

    assert (code, out) == (0, f"verified bert_encoder version 1 on Triton {triton.grpc_url}\n")
    assert f"bert_encoder:1 on Triton {triton.grpc_url}: worst cosine" in err


# Subcommands


def test_rollout_and_rollback_go_to_the_rollout_command(monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(export.rollout, "main", lambda argv: seen.append(argv) or 7)

    assert main(["rollout", "--repository", "r"]) == 7
    assert main(["rollback"]) == 7
    assert seen == [["rollout", "--repository", "r"], ["rollback"]]
