import numpy as np

from ranker.cache import EmbeddingCache


def vector(value: float, dim: int = 4) -> np.ndarray:
    return np.full(dim, value, dtype=np.float32)


def test_evicts_least_recently_used_by_bytes():
    cache = EmbeddingCache(max_bytes=3 * 16)
    for i in range(3):
        cache.put("1", f"t{i}", vector(i))
    assert cache.get("1", "t0") is not None  # t0 is now the most recent
    cache.put("1", "t3", vector(3))
    assert cache.get("1", "t1") is None
    assert cache.get("1", "t0") is not None
    assert cache.bytes == 3 * 16
    assert len(cache) == 3


def test_versions_are_separate_namespaces_and_counted():
    cache = EmbeddingCache(max_bytes=1024)
    cache.put("1", "candle", vector(1))
    assert cache.get("2", "candle") is None
    np.testing.assert_array_equal(cache.get("1", "candle"), vector(1))
    assert (cache.hits, cache.misses) == (1, 1)


def test_replacing_an_entry_keeps_the_byte_count_right():
    cache = EmbeddingCache(max_bytes=1024)
    cache.put("1", "a", vector(1, dim=8))
    cache.put("1", "a", vector(2, dim=4))
    assert cache.bytes == 16


def test_entry_larger_than_the_cache_is_not_kept():
    cache = EmbeddingCache(max_bytes=8)
    cache.put("1", "big", vector(1))
    assert len(cache) == 0 and cache.bytes == 0


def test_a_version_not_looked_up_lately_is_evicted_before_the_served_one():
    cache = EmbeddingCache(max_bytes=2 * 16)
    cache.put("1", "a", vector(1))
    cache.put("2", "a", vector(2))
    assert cache.get("2", "a") is not None  # version 2 is the one being served
    cache.put("2", "b", vector(3))
    assert cache.get("1", "a") is None
    assert cache.get("2", "a") is not None and cache.get("2", "b") is not None
    assert cache.bytes == 2 * 16


def test_vectors_are_kept_as_float32_rows_and_counted_as_such():
    cache = EmbeddingCache(max_bytes=1024)
    cache.put("1", "a", np.arange(4, dtype=np.float64))
    got = cache.get("1", "a")
    assert got.dtype == np.float32 and got.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert cache.bytes == 16


def test_a_request_s_texts_count_as_used_in_their_order():
    cache = EmbeddingCache(max_bytes=3 * 16)
    for i in range(3):
        cache.put("1", f"t{i}", vector(i))
    cache.get_many("1", ["t1", "t0"])
    cache.put("1", "t3", vector(3))
    cache.put("1", "t4", vector(4))
    assert [cache.get("1", f"t{i}") is None for i in range(5)] == [False, True, True, False, False]
