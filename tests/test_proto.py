"""The committed gRPC code must be exactly what `make proto` generates from proto/."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_generator():
    spec = importlib.util.spec_from_file_location("proto_generate", ROOT / "proto" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_current(tmp_path):
    load_generator().generate(tmp_path)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert generated, "protoc generated nothing"
    for relative in generated:
        committed = ROOT / relative
        assert committed.is_file(), f"{relative} is not committed; run `make proto`"
        assert committed.read_text() == (tmp_path / relative).read_text(), (
            f"{relative} is stale; run `make proto`"
        )


def test_public_contract_field_numbers():
    from ranker.v1 import ranker_pb2

    expected = {
        "Item": {"item_id": 1, "text": 2},
        "BehaviorEvent": {"item": 1, "type": 2, "time": 3},
        "RankRequest": {
            "user_id": 1,
            "history": 2,
            "candidates": 3,
            "top_k": 4,
            "budget_ms": 5,
            "policy": 6,
        },
        "RankedItem": {"item_id": 1, "score": 2, "propensity": 3, "explored": 4},
        "RankResponse": {
            "event_id": 1,
            "items": 2,
            "policy": 3,
            "model_version": 4,
            "degraded": 5,
        },
        "FeedbackRequest": {"event_id": 1, "item_id": 2, "type": 3, "reward": 4},
    }
    for message, numbers in expected.items():
        fields = ranker_pb2.DESCRIPTOR.message_types_by_name[message].fields_by_name
        assert {name: fields[name].number for name in numbers} == numbers
    service = ranker_pb2.DESCRIPTOR.services_by_name["Ranker"]
    assert service.full_name == "ranker.v1.Ranker"
    assert set(service.methods_by_name) >= {"Rank", "Feedback"}
