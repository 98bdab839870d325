"""The embedding path against a fake Triton (fault injection): batching, de-duplication,
deadlines, late results filling the cache, and recovery."""

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from ranker.batcher import BatchClock, RecentCalls, wait_stages
from ranker.budget import Deadline
from ranker.cache import EmbeddingCache
from ranker.embeddings import ENCODER_TIMEOUT, ENCODER_UNAVAILABLE, TritonTextEmbedder
from ranker.encoder_identity import encoder_fingerprint
from ranker.triton import EncoderTimeout, EncoderUnavailable, ServedModel

DIM = 4


class FakeTriton:
    """Embeds token ids as a vector of their sum; can be slowed down or taken down."""

    def __init__(self, version: str = "1", max_batch_size: int = 8) -> None:
        self.model = ServedModel("enc", version, max_batch_size, DIM)
        self.delay_s = 0.0
        self.down = False
        self.batches: list[int] = []
        self.timeouts: list[float] = []
        self.cancelled = 0
        # Set: discovery waits until it is set.
        self.discovery_gate: asyncio.Event | None = None
        self.closed = False

    async def discover(self, timeout_s: float) -> ServedModel:
        if self.discovery_gate is not None:
            await self.discovery_gate.wait()
        if self.closed:
            raise RuntimeError("Channel is closed.")
        if self.down:
            raise EncoderUnavailable("Triton at fake: down")
        return self.model

    async def embed(self, model, input_ids, attention_mask, timeout_s):
        self.batches.append(len(input_ids))
        self.timeouts.append(timeout_s)
        if self.down:
            raise EncoderUnavailable("Triton at fake: down")
        if self.delay_s > timeout_s:
            await asyncio.sleep(timeout_s)
            raise EncoderTimeout("too slow")
        try:
            await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        sums = (input_ids * attention_mask).sum(axis=1, keepdims=True).astype(np.float32)
        return np.repeat(sums, DIM, axis=1)

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    words = ["[UNK]", "[PAD]"] + [f"w{i}" for i in range(50)]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    for version in ("1", "2"):
        path = tmp_path / "enc" / version / "tokenizer"
        path.mkdir(parents=True)
        tokenizer.save(str(path / "tokenizer.json"))
    return tmp_path


def embedder(triton: FakeTriton, repository: Path, poll_s: float = 60.0, max_calls: int = 4):
    return TritonTextEmbedder(
        triton,
        EmbeddingCache(1 << 20),
        repository,
        16,
        batch_wait_s=0.005,
        late_grace_s=0.5,
        poll_s=poll_s,
        max_calls=max_calls,
    )


def run(coroutine):
    return asyncio.run(coroutine)


async def warm_then_slow(emb: TritonTextEmbedder, triton: FakeTriton, delay_s: float) -> None:
    """Discovery and a warm cache for "w1", then Triton takes `delay_s` per call."""
    await emb.embed(["w1"], Deadline(1.0))
    triton.delay_s = delay_s


def test_concurrent_requests_share_batches_and_identical_texts(repository):
    triton = FakeTriton(max_batch_size=8)
    emb = embedder(triton, repository)

    async def scenario():
        return await asyncio.gather(
            emb.embed(["w1 w2", "w3"], Deadline(1.0)),
            emb.embed(["w3", "w4", "w1 w2"], Deadline(1.0)),
        )

    first, second = run(scenario())
    assert triton.batches == [3]
    assert emb.batcher.calls == 1
    assert first.vectors[0, 0] == 7.0 and second.vectors[2, 0] == 7.0
    assert not first.missing.any() and not second.missing.any()


def test_batches_are_cut_at_the_models_max_batch(repository):
    triton = FakeTriton(max_batch_size=4)
    result = run(embedder(triton, repository).embed([f"w{i}" for i in range(10)], Deadline(1.0)))
    assert sorted(triton.batches) == [2, 4, 4]
    assert result.failure is None


def test_cached_texts_do_not_reach_triton(repository):
    triton = FakeTriton()
    emb = embedder(triton, repository)

    async def scenario():
        await emb.embed(["w1", "w2"], Deadline(1.0))
        return await emb.embed(["w2", "w1"], Deadline(1.0))

    result = run(scenario())
    assert triton.batches == [2]
    assert result.vectors[:, 0].tolist() == [4.0, 3.0]
    assert (emb.cache.hits, emb.cache.misses) == (2, 2)


def test_cached_vectors_of_any_layout_come_back_as_their_rows(repository):
    """Triton may answer with a strided array; the cache keeps each row whole."""
    triton = FakeTriton()
    emb = embedder(triton, repository)
    strided = np.arange(2 * DIM, dtype=np.float32)[::2]
    emb.cache.put("enc:1", "w5", strided)

    async def scenario():
        await emb.embed(["w1"], Deadline(1.0))
        warm = await emb.embed(["w5", "w1"], Deadline(1.0))
        return warm, await emb.embed(["w5", "w9"], Deadline(1.0))

    warm, partial = run(scenario())
    assert warm.vectors.tolist() == [strided.tolist(), [3.0] * DIM]
    assert partial.vectors[0].tolist() == strided.tolist()


def test_slow_triton_degrades_within_budget_and_late_results_fill_the_cache(repository):
    triton = FakeTriton()
    emb = embedder(triton, repository)

    async def scenario():
        await warm_then_slow(emb, triton, 0.2)
        loop = asyncio.get_running_loop()
        start = loop.time()
        late = await emb.embed(["w1", "w2"], Deadline(0.05))
        elapsed = loop.time() - start
        await asyncio.sleep(0.3)
        return late, elapsed

    late, elapsed = run(scenario())
    assert elapsed < 0.1
    assert late.missing.tolist() == [False, True]
    assert late.failure == ENCODER_TIMEOUT
    assert emb.cache.get("enc:1", "w2") is not None


def test_requests_stop_waiting_for_a_triton_too_slow_for_any_budget_until_it_is_quick(repository):
    """Waiting for a Triton whose recent calls all came too late for every request that wanted
    them gains nothing: the request degrades at once, its texts still fill the cache, and one
    call in time is enough for requests to wait again."""
    triton = FakeTriton(max_batch_size=1)
    emb = embedder(triton, repository, max_calls=8)

    async def scenario():
        await warm_then_slow(emb, triton, 0.3)
        await emb.embed([f"w{i}" for i in range(2, 10)], Deadline(0.01))  # eight slow calls
        await asyncio.sleep(0.35)
        start = time.perf_counter()
        skipped = await emb.embed(["w10"], Deadline(0.2))
        elapsed = time.perf_counter() - start
        triton.delay_s = 0.0
        await asyncio.sleep(0.35)
        await emb.embed(["w11"], Deadline(0.2))  # not waited for, but its call is in time
        await asyncio.sleep(0.05)
        waited = await emb.embed(["w12"], Deadline(0.2))
        return skipped, elapsed, waited

    skipped, elapsed, waited = run(scenario())
    assert skipped.failure == ENCODER_TIMEOUT and skipped.missing.all()
    assert elapsed < 0.1  # not the 0.2 s budget
    assert emb.cache.get("enc:1", "w10") is not None
    assert waited.failure is None and not waited.missing.any()


def test_waiting_is_futile_only_when_none_of_the_last_calls_came_in_time():
    recent = RecentCalls(window=3)
    for in_time in (True, False, False):
        recent.observe(in_time)
        assert not recent.futile
    recent.observe(False)
    assert recent.futile
    recent.observe(True)
    assert not recent.futile


def test_the_wait_for_triton_is_split_into_queue_tokenize_and_triton(repository):
    triton = FakeTriton()
    emb = embedder(triton, repository)

    async def scenario():
        await warm_then_slow(emb, triton, 0.05)
        start = time.perf_counter()
        waited = await emb.embed(["w1", "w2"], Deadline(1.0))
        cached = await emb.embed(["w2"], Deadline(1.0))
        return waited, (time.perf_counter() - start) * 1000.0, cached

    waited, elapsed_ms, cached = run(scenario())
    assert set(waited.wait_ms) == {"queue", "tokenize", "triton"}
    # A lone text waits out the batch window (5 ms) before it is sent.
    assert waited.wait_ms["queue"] >= 4.0
    assert waited.wait_ms["triton"] >= 45.0
    assert sum(waited.wait_ms.values()) <= elapsed_ms
    assert cached.wait_ms == {}


def test_the_call_that_kept_a_request_waiting_longest_decides_its_split():
    quick = BatchClock(dispatched=10.0, tokenized=10.001, answered=10.005)
    slow = BatchClock(dispatched=10.002, tokenized=10.004, answered=10.020)
    stages = wait_stages([quick, slow], submitted=10.0, ended=10.030)
    assert stages == pytest.approx({"queue": 2.0, "tokenize": 2.0, "triton": 16.0})
    # A call already under way when the request came counts from then; one not answered by
    # the end of the wait, up to the end; a text still queued is all queue.
    under_way = BatchClock(dispatched=9.0, tokenized=9.5)
    assert wait_stages([under_way], 10.0, 10.010) == pytest.approx(
        {"queue": 0.0, "tokenize": 0.0, "triton": 10.0}
    )
    assert wait_stages([BatchClock()], 10.0, 10.010) == pytest.approx(
        {"queue": 10.0, "tokenize": 0.0, "triton": 0.0}
    )
    assert wait_stages([], 10.0, 10.010) == {}


def test_triton_calls_carry_the_budget_plus_grace_as_timeout(repository):
    triton = FakeTriton()
    run(embedder(triton, repository).embed(["w1"], Deadline(0.3)))
    assert 0.5 < triton.timeouts[0] <= 0.8


def test_triton_down_answers_missing_and_recovers_by_itself(repository):
    triton = FakeTriton()
    emb = embedder(triton, repository)

    async def scenario():
        await emb.embed(["w1"], Deadline(1.0))
        triton.down = True
        for n in range(10):  # calls that fail at once are not too slow to wait for
            down = await emb.embed(["w1", f"w{n + 2}"], Deadline(1.0))
        triton.down = False
        await emb.embed(["w3"], Deadline(1.0))  # starts the background re-discovery
        await asyncio.sleep(0.01)
        return down, await emb.embed(["w11"], Deadline(1.0))

    down, back = run(scenario())
    assert down.missing.tolist() == [False, True]
    assert down.failure == ENCODER_UNAVAILABLE
    assert not back.missing.any() and back.failure is None


def test_unknown_model_at_start_is_all_missing(repository):
    triton = FakeTriton()
    triton.down = True
    result = run(embedder(triton, repository).embed(["w1", "w2"], Deadline(1.0)))
    assert result.model_version == ""
    assert result.missing.all()
    assert result.failure == ENCODER_UNAVAILABLE


def test_a_new_model_version_starts_a_fresh_cache_namespace(repository):
    triton = FakeTriton(version="1")
    emb = embedder(triton, repository)

    async def scenario():
        await emb.embed(["w1"], Deadline(1.0))
        triton.model = ServedModel("enc", "2", 8, DIM)
        triton.down = True
        await emb.embed(["w9"], Deadline(1.0))  # fails, marks the model stale
        triton.down = False
        await emb.embed(["w9"], Deadline(1.0))
        await asyncio.sleep(0.01)
        return await emb.embed(["w1"], Deadline(1.0))

    result = run(scenario())
    assert result.model_version == "enc:2"
    assert triton.batches[-1] == 1


def test_a_rollout_is_followed_within_the_poll_interval_without_a_failure(repository):
    triton = FakeTriton(version="1")
    emb = embedder(triton, repository, poll_s=0.05)

    async def scenario():
        first = await emb.embed(["w1"], Deadline(1.0))
        triton.model = ServedModel("enc", "2", 8, DIM)
        await asyncio.sleep(0.06)
        await emb.embed(["w1"], Deadline(1.0))  # notices the poll is due, asks in the background
        await asyncio.sleep(0.01)
        return first, await emb.embed(["w1"], Deadline(1.0))

    first, after = run(scenario())
    assert (first.model_version, after.model_version) == ("enc:1", "enc:2")
    assert after.failure is None


def test_closing_stops_a_discovery_under_way_before_closing_the_client(repository):
    triton = FakeTriton()
    emb = embedder(triton, repository, poll_s=0.0)

    async def scenario():
        await emb.embed(["w1"], Deadline(1.0))
        triton.discovery_gate = asyncio.Event()
        await emb.embed(["w1"], Deadline(1.0))  # the poll is due: a discovery starts and waits
        await asyncio.sleep(0)
        refresh = emb._refresh
        await emb.close()
        triton.discovery_gate.set()
        return refresh

    refresh = run(scenario())
    assert refresh.cancelled()
    assert triton.closed


def test_a_cancelled_request_cancels_the_triton_call_only_it_waits_for(repository):
    triton = FakeTriton(max_batch_size=2)
    triton.delay_s = 0.3
    emb = embedder(triton, repository)

    async def scenario():
        alone = asyncio.ensure_future(emb.embed(["w1", "w2"], Deadline(1.0)))
        await asyncio.sleep(0.05)  # its batch is at Triton now
        alone.cancel()
        await asyncio.sleep(0.01)
        cancelled = triton.cancelled
        return cancelled, await emb.embed(["w1", "w2"], Deadline(1.0))

    cancelled, result = run(scenario())
    assert cancelled == 1
    assert not result.missing.any()  # sent again for the new request, not lost
    assert triton.batches == [2, 2]


def test_a_cancelled_request_leaves_shared_texts_to_the_others(repository):
    triton = FakeTriton(max_batch_size=8)
    triton.delay_s = 0.05
    emb = embedder(triton, repository)

    async def scenario():
        leaving = asyncio.ensure_future(emb.embed(["w1", "w2", "w3"], Deadline(1.0)))
        staying = asyncio.ensure_future(emb.embed(["w2"], Deadline(1.0)))
        await asyncio.sleep(0)  # both queued, nothing sent yet
        leaving.cancel()
        return await staying

    result = run(scenario())
    assert not result.missing.any()
    # Only the text that the staying request shared went out; the others were dropped.
    assert triton.batches == [1]


def test_an_overload_queues_in_the_ranker_and_drops_what_nobody_can_use(repository):
    triton = FakeTriton(max_batch_size=2)
    triton.delay_s = 0.1
    emb = embedder(triton, repository, max_calls=1)

    async def scenario():
        # Three requests, three batches, one call at a time: the second batch waits in the
        # ranker's queue and the third one's requester runs out of budget before it can go.
        first = asyncio.ensure_future(emb.embed(["w1", "w2"], Deadline(1.0)))
        second = asyncio.ensure_future(emb.embed(["w3", "w4"], Deadline(1.0)))
        third = asyncio.ensure_future(emb.embed(["w5", "w6"], Deadline(0.15)))
        await asyncio.sleep(0.05)
        calls_so_far = len(triton.batches)
        return calls_so_far, await asyncio.gather(first, second, third)

    calls_so_far, (first, second, third) = run(scenario())
    assert calls_so_far == 1
    assert not first.missing.any() and not second.missing.any()
    assert third.missing.all() and third.failure == ENCODER_TIMEOUT
    assert triton.batches == [2, 2]  # the third batch never reached Triton


def test_embeddings_name_the_weights_of_the_version_that_made_them(repository):
    """From each version's manifest, so that priors fitted on one encoder's space stay there."""
    manifest = {"source": {"weights_sha256": {"model.safetensors": "aa"}}}
    (repository / "enc" / "2" / "manifest.json").write_text(json.dumps(manifest))
    triton = FakeTriton(version="1")
    emb = embedder(triton, repository)

    async def scenario():
        first = await emb.embed(["w1"], Deadline(1.0))
        triton.model = ServedModel("enc", "2", 8, DIM)
        emb._stale = True  # what a failed call or the poll interval does
        await emb.embed(["w1"], Deadline(1.0))
        await asyncio.sleep(0.01)  # the background discovery
        return first, await emb.embed(["w1"], Deadline(1.0))

    first, second = run(scenario())
    assert first.encoder == "" and first.model_version == "enc:1"  # no manifest: unknown
    assert second.model_version == "enc:2"
    assert second.encoder == encoder_fingerprint(repository / "enc" / "2") != ""
    manifest["source"]["weights_sha256"]["model.safetensors"] = "bb"
    (repository / "enc" / "1" / "manifest.json").write_text(json.dumps(manifest))
    assert encoder_fingerprint(repository / "enc" / "1") != second.encoder
