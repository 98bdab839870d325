"""bench/perf_analyzer.py: its input-data files, and one short real perf_analyzer run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "perf_analyzer.py"
_spec = importlib.util.spec_from_file_location("perf_analyzer", SCRIPT)
perf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(perf)


def word_tokenizer() -> Tokenizer:
    vocabulary = {"[UNK]": 1, "red": 2, "spotty": 3, "apron": 4, "paper": 5, "napkins": 6}
    tokenizer = Tokenizer(WordLevel(vocabulary, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    return tokenizer


def test_committed_text_inputs_are_the_titles_the_script_picks():
    committed = json.loads(perf.TEXT_INPUTS.read_text())
    assert committed == perf.text_input_data(perf.load_titles())
    assert len(committed["data"]) == perf.ENTRIES
    for step in committed["data"]:
        assert list(step) == ["TEXT"]
        assert len(step["TEXT"]) == 1
        assert isinstance(step["TEXT"][0], str) and step["TEXT"][0]


def test_encoder_inputs_are_each_title_unpadded_for_batch_1():
    titles = ["red apron", "red spotty paper napkins", "spotty"]
    steps = perf.encoder_input_data(word_tokenizer(), titles, same_length=False)["data"]
    assert [step["input_ids"] for step in steps] == [
        {"content": [2, 4], "shape": [2]},
        {"content": [2, 3, 5, 6], "shape": [4]},
        {"content": [3], "shape": [1]},
    ]
    assert [step["attention_mask"]["content"] for step in steps] == [[1, 1], [1, 1, 1, 1], [1]]


def test_encoder_inputs_share_one_shape_for_larger_batches():
    """perf_analyzer refuses a batch of unequal shapes, and its batches slide over the steps."""
    titles = ["red apron", "red spotty paper napkins", "spotty"]
    steps = perf.encoder_input_data(word_tokenizer(), titles, same_length=True)["data"]
    for step in steps:
        assert set(step) == {"input_ids", "attention_mask"}
        for tensor in step.values():
            assert tensor["shape"] == [4]
            assert len(tensor["content"]) == 4
    assert steps[2]["input_ids"]["content"] == [3, 0, 0, 0]
    assert steps[2]["attention_mask"]["content"] == [1, 0, 0, 0]
    json.dumps({"data": steps})  # plain JSON types only


def test_format_table_reads_perf_analyzer_csv_rows():
    rows = [
        {
            "Concurrency": "2",
            "Inferences/Second": "200.5",
            "p50 latency": "9000",
            "p95 latency": "12000",
            "p99 latency": "15500",
        },
        {
            "Concurrency": "1",
            "Inferences/Second": "120",
            "p50 latency": "8000",
            "p95 latency": "9000",
            "p99 latency": "10000",
        },
    ]
    lines = perf.format_table("bert_encoder", rows, 1).splitlines()
    assert lines[2].split() == ["1", "120.0", "8.00", "9.00", "10.00"]
    assert lines[3].split() == ["2", "200.5", "9.00", "12.00", "15.50"]


@pytest.mark.integration
def test_short_perf_analyzer_run_on_bert_encoder(triton, model_repository, tmp_path):
    try:
        binary, env = perf.prepare_binary()
    except perf.PerfAnalyzerUnavailable as error:
        pytest.skip(f"perf_analyzer binary could not be prepared: {error}")
    _, tokenizer = perf.served_tokenizer(model_repository)
    input_data = tmp_path / "bert_encoder.json"
    input_data.write_text(
        json.dumps(perf.encoder_input_data(tokenizer, perf.load_titles(count=8), same_length=False))
    )
    csv_path = tmp_path / "bert_encoder.csv"
    rows = perf.run_perf_analyzer(
        binary,
        env,
        triton.grpc_url,
        "bert_encoder",
        input_data,
        csv_path,
        concurrency_range="1",
        measurement=("--request-count", "40"),
        timeout_s=60,
    )
    assert [int(row["Concurrency"]) for row in rows] == [1]
    assert float(rows[0]["Inferences/Second"]) > 0
    assert int(rows[0]["p99 latency"]) >= int(rows[0]["p50 latency"]) > 0


def sweep_point(concurrency: int, throughput: float) -> dict[str, str]:
    return {
        "Concurrency": str(concurrency),
        "Inferences/Second": str(throughput),
        "p50 latency": "20000",
    }


def test_comparison_rows_relate_every_point_to_the_in_process_figures():
    sweeps = {
        "fp32": {"text_encoder": [sweep_point(2, 270.0), sweep_point(1, 180.0)]},
        "int8": {"text_encoder": [sweep_point(1, 320.0)]},
    }
    figures = {
        "fp32": {"onnxruntime": 300.0, "sentence_transformers": 100.0},
        "int8": {"onnxruntime": 400.0},
    }
    rows = perf.comparison_rows(sweeps, figures)
    assert [(row["variant"], row["model"], row["concurrency"]) for row in rows] == [
        ("fp32", "text_encoder", 1),
        ("fp32", "text_encoder", 2),
        ("int8", "text_encoder", 1),
    ]
    assert rows[1]["vs_onnxruntime_fp32"] == pytest.approx(0.9)
    assert rows[1]["vs_sentence_transformers_fp32"] == pytest.approx(2.7)
    assert rows[2]["vs_onnxruntime_fp32"] == pytest.approx(320 / 300)
    assert rows[2]["vs_onnxruntime_int8"] == pytest.approx(0.8)
    assert "vs_onnxruntime_int8" not in rows[0]
    assert rows[0]["p50_ms"] == 20.0


def test_target_verdicts_judge_each_sweep_at_its_best_point_against_fp32_in_process():
    sweeps = {
        "fp32": {
            "bert_encoder": [sweep_point(1, 200.0), sweep_point(2, 280.0)],
            "text_encoder": [sweep_point(1, 250.0)],
        },
        "int8": {"bert_encoder": [sweep_point(1, 900.0), sweep_point(2, 600.0)]},
    }
    figures = {"fp32": {"onnxruntime": 300.0, "sentence_transformers": 180.0}}
    verdicts = perf.target_verdicts(perf.comparison_rows(sweeps, figures))
    prefix = "target: fp32 bert_encoder through Triton"
    assert verdicts[:2] == [
        f"{prefix} >= 0.9x fp32 onnxruntime (best, concurrency 2): 0.93x, met",
        f"{prefix} >= 1.7x fp32 sentence_transformers (best, concurrency 2): 1.56x, MISSED",
    ]
    assert verdicts[2].endswith("onnxruntime (best, concurrency 1): 0.83x, MISSED")
    assert verdicts[5] == (
        "target: int8 bert_encoder through Triton >= 1.7x fp32 sentence_transformers "
        "(best, concurrency 1): 5.00x, met"
    )


def test_format_comparison_shows_a_dash_where_a_ratio_does_not_apply():
    sweeps = {
        "fp32": {"bert_encoder": [sweep_point(1, 150.0)]},
        "int8": {"bert_encoder": [sweep_point(1, 240.0)]},
    }
    figures = {"fp32": {"onnxruntime": 300.0}, "int8": {"onnxruntime": 480.0}}
    lines = perf.format_comparison(perf.comparison_rows(sweeps, figures), 32).splitlines()
    assert lines[1].split() == [
        "variant",
        "model",
        "concurrency",
        "triton_emb_per_s",
        "p50_ms",
        "vs_onnxruntime_fp32",
        "vs_onnxruntime_int8",
    ]
    assert lines[2].split() == ["fp32", "bert_encoder", "1", "150.00", "20.00", "0.50", "-"]
    assert lines[3].split() == ["int8", "bert_encoder", "1", "240.00", "20.00", "0.80", "0.50"]


def test_compare_without_the_fp32_reference_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        perf.main(["--compare", "int8"])
    assert exit_info.value.code == 2
    assert "--compare needs fp32" in capsys.readouterr().err


@pytest.mark.parametrize("variant", sorted(perf.VARIANTS))
def test_every_variant_is_flags_the_export_cli_accepts(variant):
    from export.cli import build_parser

    args = build_parser().parse_args(list(perf.VARIANTS[variant]))
    assert args.int8 is (variant == "int8")
