"""The next-basket evaluation (bench/evaluate.py) on tiny in-memory transactions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import evaluate
from next_basket.baselines import BuyAgainScorer, InterestModelScorer, RandomScorer
from next_basket.calibration import logistic_weights
from next_basket.data import Columns, Transactions, clean
from next_basket.metrics import Tables, hit_rate, ndcg, recall, recall_capped
from next_basket.protocol import (
    CandidateGrid,
    Episode,
    History,
    build_episodes,
    sample_negatives,
    score_grid,
)
from next_basket.significance import paired_bootstrap
from next_basket.trade_off import SHIFTS

from ranker.interest import HistoryEvent, RecencyWeightedInterest
from ranker.interest.streams import StreamWeights
from ranker.v1 import ranker_pb2

COLUMNS = Columns()


def line(
    invoice: str,
    item: str,
    customer: int | None,
    day: int,
    quantity: int = 1,
    title: str | None = None,
) -> dict:
    return {
        COLUMNS.invoice: invoice,
        COLUMNS.item: item,
        COLUMNS.text: f"TITLE {item}" if title is None else title,
        COLUMNS.quantity: quantity,
        COLUMNS.time: f"2010-01-{day:02d} 10:00:00",
        COLUMNS.customer: customer,
    }


def table(lines: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(
        lines,
        schema=pa.schema(
            [
                (COLUMNS.invoice, pa.string()),
                (COLUMNS.item, pa.string()),
                (COLUMNS.text, pa.string()),
                (COLUMNS.quantity, pa.int64()),
                (COLUMNS.time, pa.string()),
                (COLUMNS.customer, pa.int64()),
            ]
        ),
    )


def shop(customers: int = 6, invoices: int = 6, items: int = 30, seed: int = 0) -> Transactions:
    """Customers buying a few random items per invoice, one invoice a day each."""
    rng = np.random.default_rng(seed)
    lines = [
        line(f"{c}-{i}", f"I{item:02d}", c, 1 + i)
        for c in range(customers)
        for i in range(invoices)
        for item in rng.choice(items, size=4, replace=False)
    ]
    return clean(table(lines), COLUMNS)


def test_clean_drops_missing_customers_cancellations_and_non_positive_quantities() -> None:
    transactions = clean(
        table(
            [
                line("1", "A", 7, 1),
                line("2", "B", None, 1),
                line("C3", "C", 7, 2),
                line("4", "D", 7, 2, quantity=0),
                line("5", "E", 7, 2, quantity=-3),
            ]
        ),
        COLUMNS,
    )
    assert transactions.item_ids == ["A"]
    assert transactions.invoices.tolist() == ["1"]
    assert transactions.customers.tolist() == ["7"]


def test_clean_strips_titles_skips_nan_and_counts_repeated_lines_once() -> None:
    transactions = clean(
        table(
            [
                line("1", "A", 7, 1, title=" LAMP"),
                line("1", "A", 7, 1, title="nan"),
                line("2", "A", 7, 2, title="LAMP"),
                line("2", "B", 7, 2, title="nan"),
            ]
        ),
        COLUMNS,
    )
    assert transactions.item_texts == ["LAMP", "B"]
    assert transactions.invoices.tolist() == ["1", "2", "2"]


def test_history_is_strictly_before_the_last_invoice() -> None:
    lines = [line(str(day), f"I{day}", 1, day) for day in range(1, 6)]
    lines += [line("5b", "LAST", 1, 5), line("6", "T1", 1, 6), line("6", "T2", 1, 6)]
    lines += [line(f"x{i}", f"N{i}", 2, 1) for i in range(10)]
    transactions = clean(table(lines), COLUMNS)
    (episode,) = build_episodes(transactions, min_invoices=5, negatives=3, seed=0)
    ids = np.array(transactions.item_ids)
    assert sorted(ids[episode.targets]) == ["T1", "T2"]
    assert (episode.history.times < episode.history.cutoff).all()
    assert sorted(ids[episode.history.items]) == ["I1", "I2", "I3", "I4", "I5", "LAST"]
    (earlier,) = build_episodes(transactions, 5, 3, 0, invoices_back=1)
    assert (earlier.history.times < earlier.history.cutoff).all()
    assert ids[earlier.targets].tolist() == ["LAST"]


def test_candidates_hold_the_targets_once_and_negatives_by_popularity() -> None:
    for episode in build_episodes(shop(), min_invoices=5, negatives=10, seed=0):
        assert len(np.unique(episode.candidates)) == len(episode.candidates)
        assert np.isin(episode.targets, episode.candidates).all()
        assert not np.isin(episode.candidates[len(episode.targets) :], episode.targets).any()
    popularity = np.array([0.0, 1.0, 1000.0, 50.0])
    rng = np.random.default_rng(0)
    draws = np.concatenate(
        [sample_negatives(popularity, np.array([3]), 1, rng) for _ in range(300)]
    )
    assert set(draws) <= {1, 2}
    assert (draws == 2).sum() > 250


def test_ties_break_at_random_not_by_place_in_the_list() -> None:
    episodes = build_episodes(shop(customers=40), min_invoices=5, negatives=10, seed=0)
    grid = CandidateGrid.from_episodes(episodes)  # targets come first in every row
    constant = Tables(grid).metrics(score_grid(RandomScorer(), episodes, grid))[Tables.ALL]
    assert constant["recall@10"] < 0.9
    assert constant["ndcg@10"] < 0.9


def test_metrics_on_hand_computed_rankings() -> None:
    three_targets = np.zeros((1, 20), dtype=bool)
    three_targets[0, [0, 2, 12]] = True
    assert recall_capped(three_targets)[0] == pytest.approx(2 / 3)
    assert recall(three_targets)[0] == pytest.approx(2 / 3)
    assert hit_rate(three_targets)[0] == 1.0
    ideal = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert ndcg(three_targets)[0] == pytest.approx((1 + 1 / np.log2(4)) / ideal)

    fifteen_targets = np.zeros((1, 30), dtype=bool)
    fifteen_targets[0, :15] = True
    assert recall_capped(fifteen_targets)[0] == 1.0
    assert recall(fifteen_targets)[0] == pytest.approx(10 / 15)
    assert ndcg(fifteen_targets)[0] == pytest.approx(1.0)

    miss = np.zeros((1, 20), dtype=bool)
    miss[0, 15] = True
    assert recall_capped(miss)[0] == hit_rate(miss)[0] == ndcg(miss)[0] == 0.0


def test_buy_again_ranks_the_repurchased_item_first() -> None:
    history = History("c", np.array([3, 7, 7, 7]), np.array([0.0, 3600.0, 7200.0, 9000.0]), 1e4)
    scores = BuyAgainScorer(half_life_hours=72.0).score(history, np.array([1, 3, 7, 9]))
    assert np.argmax(scores) == 2
    assert scores[0] == scores[3] == 0.0


def test_new_items_table_drops_repeat_targets_from_targets_and_candidates() -> None:
    history = History("c", np.array([1, 2]), np.array([0.0, 1.0]), 2.0)
    episode = Episode(history, np.array([1, 5]), np.array([1, 5, 2, 8]), np.arange(4.0))
    only_repeats = Episode(history, np.array([2]), np.array([2, 8]), np.arange(2.0))
    grid, rows = CandidateGrid.from_episodes([episode, only_repeats]).new_items_only()
    assert rows.tolist() == [0]
    assert grid.items[0, :4].tolist() == [-1, 5, 2, 8]  # the bought-before negative 2 stays
    assert grid.relevant[0, :4].tolist() == [False, True, False, False]


def test_new_items_without_old_candidates_drops_every_bought_item() -> None:
    history = History("c", np.array([1, 2]), np.array([0.0, 1.0]), 2.0)
    episode = Episode(history, np.array([1, 5]), np.array([1, 5, 2, 8]), np.arange(4.0))
    grid, rows = CandidateGrid.from_episodes([episode]).new_items_only(drop_old_candidates=True)
    assert rows.tolist() == [0]
    assert grid.items[0, :4].tolist() == [-1, 5, -1, 8]


def test_interest_model_scorer_is_the_rankers_profile_on_purchases_newest_first() -> None:
    transactions = shop(customers=1, invoices=3, items=10)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(transactions.n_items, 8)).astype(np.float32)
    history = History("c", np.array([0, 3, 4]), np.array([0.0, 50 * 3600.0, 90 * 3600.0]), 1e6)
    scorer = InterestModelScorer("t", RecencyWeightedInterest(72.0), vectors, transactions)
    events = [
        HistoryEvent(transactions.item_ids[i], "", ranker_pb2.EVENT_TYPE_PURCHASE, t)
        for i, t in zip(history.items[::-1], history.times[::-1], strict=True)
    ]
    expected = RecencyWeightedInterest(72.0).interest(events, vectors[history.items[::-1]])
    np.testing.assert_allclose(scorer.profile(history).vector, expected, atol=1e-6)
    assert [e.time_s for e in events] == sorted((e.time_s for e in events), reverse=True)


def test_paired_bootstrap_separates_a_real_gain_from_none() -> None:
    rng = np.random.default_rng(1)
    theirs = rng.random(500)
    same = paired_bootstrap(theirs, theirs)
    assert same["low"] == same["high"] == same["difference"] == 0.0
    assert same["wins"] == same["losses"] == 0
    better = paired_bootstrap(theirs + 0.05 + rng.normal(0, 0.1, 500), theirs)
    assert 0.0 < better["low"] < better["difference"] < better["high"]
    noise = paired_bootstrap(theirs + rng.normal(0, 0.1, 500), theirs)
    assert noise["low"] < 0.0 < noise["high"]


def test_logistic_weights_recover_the_model_that_drew_the_labels() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(20_000, 2))
    drawn = np.array([-1.0, 2.0, -0.5])
    chance = 1.0 / (1.0 + np.exp(-(drawn[0] + features @ drawn[1:])))
    labels = (rng.random(len(features)) < chance).astype(np.float64)
    np.testing.assert_allclose(logistic_weights(features, labels), drawn, atol=0.1)


def test_cli_writes_the_tables_and_intervals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    transactions = shop(customers=12, invoices=6, items=40)
    lines = [
        line(invoice, transactions.item_ids[item], int(customer), 1 + int(invoice.split("-")[1]))
        for customer, invoice, item in zip(
            transactions.customers, transactions.invoices, transactions.items, strict=True
        )
    ]
    pq.write_table(table(lines), tmp_path / "shop.parquet")

    def fake_embeddings(
        repository: Path, cache_dir: Path, texts: list[str]
    ) -> tuple[np.ndarray, str]:
        vectors = np.random.default_rng(0).normal(size=(len(texts), 8))
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32), ""

    monkeypatch.setattr(evaluate, "cached_embeddings", fake_embeddings)
    data = str(tmp_path / "shop.parquet")
    weights = tmp_path / "weights.json"
    argv = ["--data", data, "--negatives", "10", "--out", str(tmp_path), "--tune"]
    assert evaluate.main([*argv, "--refit", str(weights)]) == 0
    report = json.loads((tmp_path / "next_basket.json").read_text())
    assert report["customers"] == 12
    assert set(report["results"]) >= {
        "buy_again",
        "text_interest",
        evaluate.SERVED,
        evaluate.EVOLVING,
        evaluate.TUNED,
    }
    refitted = StreamWeights.load(weights)
    assert len(refitted.discovery_content) == 8  # the fake encoder's size
    assert refitted.discovery_shift == report["served_discovery_shift"]
    assert [row["served"] for row in report["two_streams"]].count(True) == 1
    assert set(report["results"]["buy_again"]) == {Tables.ALL, Tables.NEW, Tables.NEW_ONLY}
    assert set(report["bootstrap_95"]) == {
        f"{table}: vs {baseline}" for table, baseline in evaluate.COMPARISONS
    }
    assert set(report["validation"]) == set(report["results"])
    assert [row["discovery_shift"] for row in report["two_streams"]] == list(SHIFTS)
    for row in report["two_streams"]:
        assert set(row["test"]) == {Tables.ALL, Tables.NEW, Tables.NEW_ONLY}
        assert row["meets_targets_on_validation"] == (min(row["validation_margins"].values()) > 0)
    assert (tmp_path / "next_basket.csv").read_text().startswith("table,method,recall@10")
    assert evaluate.main([*argv, "--refit", str(tmp_path / "absent" / "weights.json")]) == 2
    assert "error: cannot write" in capsys.readouterr().err


def test_cli_rejects_a_missing_file_or_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert evaluate.main(["--data", str(tmp_path / "absent.parquet")]) == 2
    assert "error: cannot read" in capsys.readouterr().err
    pq.write_table(table([line("1", "A", 7, 1)]), tmp_path / "shop.parquet")
    argv = ["--data", str(tmp_path / "shop.parquet"), "--customer-col", "Client"]
    assert evaluate.main(argv) == 2
    assert "Client" in capsys.readouterr().err
