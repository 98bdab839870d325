"""The online replay (bench/replay.py) on tiny in-memory transactions, through the real service."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import replay
from next_basket.data import Columns, clean

from ranker.bandits.registry import ENSEMBLE, PolicySpec
from ranker.budget import Deadline
from ranker.settings import Settings

COLUMNS = Columns()


def shop_table(customers: int = 8, invoices: int = 6, items: int = 40, seed: int = 0) -> pa.Table:
    """Customers buying a few random items per invoice, one invoice a day each."""
    rng = np.random.default_rng(seed)
    rows = [
        {
            COLUMNS.invoice: f"{c}-{i}",
            COLUMNS.item: f"I{item:02d}",
            COLUMNS.text: f"TITLE {item}",
            COLUMNS.quantity: 1,
            COLUMNS.time: f"2010-01-{1 + i:02d} {10 + c:02d}:00:00",
            COLUMNS.customer: c,
        }
        for c in range(customers)
        for i in range(invoices)
        for item in rng.choice(items, size=4, replace=False)
    ]
    return pa.Table.from_pylist(rows)


def fake_embeddings(repository: Path, cache_dir: Path, texts: list[str]) -> tuple[np.ndarray, str]:
    vectors = np.random.default_rng(0).normal(size=(len(texts), 8))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32), ""


def test_visits_walk_invoices_in_time_order_with_the_history_before_each():
    transactions = clean(shop_table(), COLUMNS)
    visits = list(replay.visits(transactions, 5, 0, 10, 10, 500, seed=0))
    assert len(visits) == 8 * 6
    assert [v.time_s for v in visits] == sorted(v.time_s for v in visits)
    seen: dict[str, int] = {}
    targets_first = 0
    for visit in visits:
        offered = [item.item_id for item in visit.request.candidates]
        assert len(set(offered)) == len(offered) == len(visit.bought) + 10
        assert visit.bought <= set(offered)
        targets_first += set(offered[: len(visit.bought)]) == visit.bought
        history_times = {event.time.seconds for event in visit.request.history}
        assert all(t < visit.time_s for t in history_times)
        assert len(visit.request.history) == 4 * seen.get(visit.customer, 0)
        seen[visit.customer] = seen.get(visit.customer, 0) + 1
    # Candidates are shuffled: the bought items are not simply listed first.
    assert targets_first < len(visits) / 2


def test_customers_below_the_invoice_minimum_or_over_the_cap_are_left_out():
    transactions = clean(shop_table(), COLUMNS)
    assert list(replay.visits(transactions, 7, 0, 10, 10, 500, seed=0)) == []
    capped = list(replay.visits(transactions, 5, 3, 10, 10, 500, seed=0))
    assert len({v.customer for v in capped}) == 3


def test_the_cached_embedder_marks_unknown_texts_missing():
    embedder = replay.CachedEmbedder(["a", "b"], np.eye(2, dtype=np.float32))
    embeddings = asyncio.run(embedder.embed(["b", "zzz"], Deadline(1.0)))
    assert embeddings.missing.tolist() == [False, True]
    np.testing.assert_array_equal(embeddings.vectors, [[0.0, 1.0], [0.0, 0.0]])


def test_each_run_keeps_its_own_state_and_earns_rewards_through_feedback():
    transactions = clean(shop_table(), COLUMNS)
    vectors, _ = fake_embeddings(Path(), Path(), transactions.item_texts)
    embedder = replay.CachedEmbedder(transactions.item_texts, vectors)
    spec = PolicySpec(ensemble_members="ucb1,linucb")
    services = replay.build_services(Settings(), embedder, spec)
    assert list(services) == ["ucb1", "linucb", ENSEMBLE]
    stream = replay.visits(transactions, 5, 0, 10, 10, 500, seed=0)
    rewards, served = asyncio.run(replay.replay(services, stream))
    assert all(len(series) == 48 for series in rewards.values())
    # Every invoice has 4 targets among 14 candidates and a slate of 10: some must be hit.
    assert all(sum(series) >= 48 for series in rewards.values())
    assert served["ucb1"] == {"ucb1": 48}
    assert set(served[ENSEMBLE]) <= {"ucb1", "linucb"}
    assert services["ucb1"].policy.stats is not services["linucb"].policy.learned.stats


def test_cli_writes_figures_and_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pq.write_table(shop_table(), tmp_path / "shop.parquet")
    monkeypatch.setattr(replay, "cached_embeddings", fake_embeddings)
    argv = ["--data", str(tmp_path / "shop.parquet"), "--negatives", "10", "--out", str(tmp_path)]
    assert replay.main([*argv, "--members", "ucb1,thompson"]) == 0
    report = json.loads((tmp_path / "replay.json").read_text())
    assert set(report["cumulative_reward"]) == {"ucb1", "thompson", ENSEMBLE}
    assert report["invoices"] == 48
    assert (tmp_path / "replay.png").stat().st_size > 0


def test_cli_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert replay.main(["--data", str(tmp_path / "absent.parquet")]) == 2
    assert "error:" in capsys.readouterr().err
    pq.write_table(shop_table(), tmp_path / "shop.parquet")
    data = ["--data", str(tmp_path / "shop.parquet")]
    assert replay.main([*data, "--members", "ucb1,nope"]) == 2
    assert "unknown policy 'nope'" in capsys.readouterr().err
    assert replay.main([*data, "--customer-col", "Client"]) == 2
    assert "Client" in capsys.readouterr().err


def test_the_summary_holds_the_ensemble_against_every_policy_that_is_not_contextual():
    rewards = {
        "linucb_discounted": [3.0, 3.0],
        "linear_thompson": [2.0, 3.0],
        "thompson_discounted": [2.0, 2.0],
        ENSEMBLE: [2.0, 3.0],
    }
    report = replay.summary(rewards, ["linucb_discounted", "linear_thompson"])
    assert report["best_member"] == "linucb_discounted"
    assert report["ensemble_over_best_member"] == pytest.approx(5.0 / 6.0)
    assert report["ensemble_beats_every_non_contextual_policy"]
    rewards["ucb1"] = [3.0, 2.0]
    assert not replay.summary(rewards, ["linucb_discounted"])[
        "ensemble_beats_every_non_contextual_policy"
    ]
