"""Text embeddings for the ranking path: cache first, then Triton for what is missing.

The served model is discovered lazily and forgotten on any failure, so the ranker recovers by
itself when Triton restarts or starts serving a new version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ranker.budget import Deadline
from ranker.cache import EmbeddingCache
from ranker.tokenizer import TextTokenizer
from ranker.triton import EncoderTimeout, EncoderUnavailable, ServedModel, TritonEncoderClient


@dataclass(frozen=True)
class Embeddings:
    model_version: str
    vectors: np.ndarray


class TextEmbedder(Protocol):
    """What the ranking path needs from an encoder; implement it to plug in another one."""

    async def embed(self, texts: Sequence[str], deadline: Deadline) -> Embeddings: ...


class TritonTextEmbedder:
    def __init__(
        self,
        client: TritonEncoderClient,
        cache: EmbeddingCache,
        model_repository: Path,
        max_tokens: int,
    ) -> None:
        self.client = client
        self.cache = cache
        self.model_repository = model_repository
        self.max_tokens = max_tokens
        self._model: ServedModel | None = None
        self._tokenizers: dict[str, TextTokenizer] = {}

    async def embed(self, texts: Sequence[str], deadline: Deadline) -> Embeddings:
        model = await self._served_model(deadline)
        vectors = np.empty((len(texts), model.dim), dtype=np.float32)
        positions: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            cached = self.cache.get(model.label, text)
            if cached is None:
                positions.setdefault(text, []).append(i)
            else:
                vectors[i] = cached
        missing = list(positions)
        if missing:
            try:
                computed = await self._compute(model, missing, deadline)
            except (EncoderUnavailable, EncoderTimeout):
                self._model = None
                raise
            for text, vector in zip(missing, computed, strict=True):
                self.cache.put(model.label, text, vector)
                vectors[positions[text]] = vector
        return Embeddings(model.label, vectors)

    async def _served_model(self, deadline: Deadline) -> ServedModel:
        if self._model is None:
            if deadline.expired:
                raise EncoderTimeout("no time left in the budget to reach Triton")
            model = await self.client.discover(deadline.remaining())
            self._tokenizer(model)
            self._model = model
        return self._model

    def _tokenizer(self, model: ServedModel) -> TextTokenizer:
        tokenizer = self._tokenizers.get(model.version)
        if tokenizer is None:
            path = (
                self.model_repository / model.name / model.version / "tokenizer" / "tokenizer.json"
            )
            if not path.is_file():
                raise EncoderUnavailable(f"no tokenizer for {model.label}: {path} is missing")
            tokenizer = self._tokenizers[model.version] = TextTokenizer(path, self.max_tokens)
        return tokenizer

    async def _compute(
        self, model: ServedModel, texts: list[str], deadline: Deadline
    ) -> np.ndarray:
        tokenizer = self._tokenizer(model)
        size = model.max_batch_size
        chunks = [texts[i : i + size] for i in range(0, len(texts), size)]

        async def one(chunk: list[str]) -> np.ndarray:
            ids, mask = tokenizer.encode(chunk)
            if deadline.expired:
                raise EncoderTimeout("no time left in the budget for Triton")
            return await self.client.embed(model, ids, mask, deadline.remaining())

        return np.concatenate(await asyncio.gather(*(one(c) for c in chunks)))
