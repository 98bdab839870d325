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
