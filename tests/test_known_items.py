"""Item texts by id: the in-process LRU, and the SQLite store that a ranker's workers share."""

from __future__ import annotations

import pytest

from ranker.known_items import KnownItems, load_catalogue
from ranker.shared_known_items import SharedKnownItems


@pytest.fixture
def pair(tmp_path):
    """Two workers' views of one store."""
    first = SharedKnownItems(tmp_path / "items.sqlite", capacity=3)
    second = SharedKnownItems(tmp_path / "items.sqlite", capacity=3)
    yield first, second
    first.close()
    second.close()


def test_the_local_store_forgets_the_least_recently_given():
    known = KnownItems(capacity=2)
    known.remember({"a": "A", "b": "B"})
    known.remember({"a": "A", "c": "C"})
    assert [known.text(i) for i in "abc"] == ["A", None, "C"]


def test_texts_given_again_unchanged_count_as_recently_given():
    known = KnownItems(capacity=2)
    known.remember({"a": "A", "b": "B"})
    known.remember({"a": "A"})  # nothing new: only the recency changes
    known.remember({"c": "C"})
    assert [known.text(i) for i in "abc"] == ["A", None, "C"]


def test_a_text_one_worker_learned_resolves_on_another(pair):
    first, second = pair
    first.remember({"a": "apple pie tin"})
    assert second.text("a") == "apple pie tin"
    assert second.text("missing") is None


def test_a_changed_text_replaces_the_old_one_for_workers_that_have_not_seen_it(pair, tmp_path):
    first, second = pair
    first.remember({"a": "old"})
    second.remember({"a": "new"})
    third = SharedKnownItems(tmp_path / "items.sqlite", capacity=3)
    assert third.text("a") == "new"
    third.close()


def test_the_shared_store_keeps_the_most_recently_written(pair):
    first, second = pair
    first.remember({"a": "A", "b": "B"})
    second.remember({"c": "C", "d": "D"})
    assert len(first) == 3
    # A fresh view has nothing local: what it finds is what the file kept.
    assert [second.text(i) for i in "bcd"] == ["B", "C", "D"]
    assert first.text("a") == "A"  # still in the first worker's own memory


def test_a_catalogue_loads_into_either_store(tmp_path):
    catalogue = tmp_path / "items.csv"
    catalogue.write_text('item_id,text\nk1,candle red\nk2,"baking tin, round"\nk3,  \n')
    shared = SharedKnownItems(tmp_path / "items.sqlite", capacity=10)
    for store in (KnownItems(10), shared):
        assert load_catalogue(store, catalogue) == 2
        assert store.text("k2") == "baking tin, round" and store.text("k3") is None
    shared.close()


def test_a_catalogue_without_the_columns_is_refused(tmp_path):
    catalogue = tmp_path / "items.csv"
    catalogue.write_text("id,title\n1,x\n")
    with pytest.raises(ValueError, match="needs the columns item_id and text"):
        load_catalogue(KnownItems(10), catalogue)
