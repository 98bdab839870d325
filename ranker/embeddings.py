"""Text embeddings for the ranking path: cache first, then shared batches to Triton.

Never waits past the request's budget, nor at all while none of the recent Triton calls
answered in time for the requests that wanted them: texts whose embeddings are not ready in
time come back marked missing, and the caller degrades. The served model is kept while Triton
is down (its cached embeddings still serve) and re-discovered in the background after a failure
and every `poll_s`, so the ranker follows a restarted Triton, a rollout to a new version and a
rollback by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import is_
from pathlib import Path
from typing import Protocol

import numpy as np

from ranker.batcher import BatchClock, EmbeddingBatcher, wait_stages
from ranker.budget import Deadline
from ranker.cache import EmbeddingCache
from ranker.encoder_identity import encoder_fingerprint
from ranker.tokenizer import TextTokenizer
from ranker.triton import EncoderTimeout, EncoderUnavailable, ServedModel, TritonEncoderClient

ENCODER_UNAVAILABLE = "encoder_unavailable"
ENCODER_TIMEOUT = "encoder_timeout"


@dataclass(frozen=True)
class Embeddings:
    # "name:version" of the encoder, or "" when no version is known yet.
    model_version: str
    # One row per text; rows of missing texts are zero.
    vectors: np.ndarray
    missing: np.ndarray
    # Why texts are missing: ENCODER_UNAVAILABLE or ENCODER_TIMEOUT; None when none are.
    failure: str | None = None
    # The fingerprint of the weights that made the vectors (encoder_identity.py); "" unknown.
    encoder: str = ""
    # Where the wait for Triton went, in milliseconds (batcher.wait_stages); empty when every
    # text was cached.
    wait_ms: Mapping[str, float] = field(default_factory=dict)


def stacked(rows: Sequence[bytes], dim: int) -> np.ndarray:
    """Cached float32 rows (cache.py) as one read-only array.

    Joining bytes takes a quarter of the time of np.concatenate over arrays, which checks each
    of a request's hundred-odd arrays on its own (np.stack takes 3x longer still)."""
    return np.frombuffer(b"".join(rows), dtype=np.float32).reshape(len(rows), dim)


class TextEmbedder(Protocol):
    """What the ranking path needs from an encoder; implement it to plug in another one."""

    async def embed(self, texts: Sequence[str], deadline: Deadline) -> Embeddings:
        """Texts in priority order: when time runs short, the first ones are served first."""
        ...


class TritonTextEmbedder:
    def __init__(
        self,
        client: TritonEncoderClient,
        cache: EmbeddingCache,
        model_repository: Path,
        max_tokens: int,
        batch_wait_s: float,
        late_grace_s: float,
        poll_s: float,
        max_calls: int,
    ) -> None:
        self.client = client
        self.cache = cache
        self.model_repository = model_repository
        self.max_tokens = max_tokens
        self.batch_wait_s = batch_wait_s
        self.late_grace_s = late_grace_s
        self.poll_s = poll_s
        self.max_calls = max_calls
        self.batcher: EmbeddingBatcher | None = None
        self._model: ServedModel | None = None
        self._encoder = ""
        self._stale = True
        self._discovered_at = 0.0
        self._refresh: asyncio.Task[None] | None = None

    async def embed(self, texts: Sequence[str], deadline: Deadline) -> Embeddings:
        model = await self._served_model(deadline)
        if model is None:
            vectors = np.zeros((len(texts), 1), dtype=np.float32)
            return Embeddings("", vectors, np.ones(len(texts), dtype=bool), ENCODER_UNAVAILABLE)
        cached_vectors = self.cache.get_many(model.label, texts)
        # The common case, every text cached, found in C.
        if not any(map(is_, cached_vectors, repeat(None))):
            vectors = stacked(cached_vectors, model.dim)
            missing = np.zeros(len(texts), dtype=bool)
            return Embeddings(model.label, vectors, missing, encoder=self._encoder)
        hit_rows = [i for i, cached in enumerate(cached_vectors) if cached is not None]
        vectors = np.zeros((len(texts), model.dim), dtype=np.float32)
        missing = np.ones(len(texts), dtype=bool)
        if hit_rows:
            hits = stacked([cached_vectors[i] for i in hit_rows], model.dim)
            vectors[hit_rows], missing[hit_rows] = hits, False
        positions: dict[str, list[int]] = {}
        for i, (text, cached) in enumerate(zip(texts, cached_vectors, strict=True)):
            if cached is None:
                positions.setdefault(text, []).append(i)
        failure = None
        batcher = self.batcher
        submitted = time.perf_counter()
        futures = batcher.submit(positions, deadline.remaining())
        # No recent call answered in time for anyone: the texts still go, for the cache, but
        # the answer degrades now rather than at the end of the budget.
        if not deadline.expired and not batcher.recent.futile:
            try:
                await asyncio.wait(futures.values(), timeout=deadline.remaining())
            except asyncio.CancelledError:
                batcher.abandon(futures)
                raise
        clocks: list[BatchClock] = []
        for text, future in futures.items():
            # Not done, or dropped from an overloaded queue (cancelled): out of time.
            if not future.done() or future.cancelled():
                failure = failure or ENCODER_TIMEOUT
                clocks.append(batcher.clock(text))
            elif future.exception() is None:
                embedded = future.result()
                vectors[positions[text]], missing[positions[text]] = embedded.vector, False
                clocks.append(embedded.clock)
            elif isinstance(future.exception(), EncoderUnavailable):
                failure = ENCODER_UNAVAILABLE
            else:
                failure = failure or ENCODER_TIMEOUT
        waited = wait_stages(clocks, submitted, time.perf_counter())
        return Embeddings(model.label, vectors, missing, failure, self._encoder, waited)

    async def close(self) -> None:
        """Stops a model discovery under way, then closes the client: a discovery left running
        would fail on the closed channel with nobody to hear it."""
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
        await self.client.close()

    async def _served_model(self, deadline: Deadline) -> ServedModel | None:
        if self._model is None:
            # Nothing to fall back on: discovering within this request's budget is worth it.
            await self._discover(deadline.remaining())
        elif (self._stale or time.monotonic() - self._discovered_at > self.poll_s) and (
            self._refresh is None or self._refresh.done()
        ):
            self._refresh = asyncio.get_running_loop().create_task(self._discover(timeout_s=1.0))
        return self._model

    async def _discover(self, timeout_s: float) -> None:
        try:
            model = await self.client.discover(timeout_s)
            if model != self._model:
                tokenizer = self._load_tokenizer(model)
                self.batcher = EmbeddingBatcher(
                    lambda texts, budget_s, clock: self._compute(
                        model, tokenizer, texts, budget_s, clock
                    ),
                    lambda text, vector: self.cache.put(model.label, text, vector),
                    model.max_batch_size,
                    self.batch_wait_s,
                    self.late_grace_s,
                    self.max_calls,
                )
                self._model = model
                self._encoder = encoder_fingerprint(self._version_dir(model))
            self._stale = False
            self._discovered_at = time.monotonic()
        except (EncoderUnavailable, EncoderTimeout):
            self._stale = True

    def _version_dir(self, model: ServedModel) -> Path:
        return self.model_repository / model.name / model.version

    def _load_tokenizer(self, model: ServedModel) -> TextTokenizer:
        path = self._version_dir(model) / "tokenizer" / "tokenizer.json"
        if not path.is_file():
            raise EncoderUnavailable(f"no tokenizer for {model.label}: {path} is missing")
        return TextTokenizer(path, self.max_tokens)

    async def _compute(
        self,
        model: ServedModel,
        tokenizer: TextTokenizer,
        texts: list[str],
        budget_s: float,
        clock: BatchClock,
    ) -> np.ndarray:
        # Tokenizing a batch takes about a millisecond: off the event loop it delays no one.
        ids, mask = await asyncio.to_thread(tokenizer.encode, texts)
        clock.mark_tokenized()
        try:
            return await self.client.embed(model, ids, mask, budget_s)
        except EncoderUnavailable:
            self._stale = True
            raise
