"""What the contextual policies share: the per-dimension ridge model, the fallback for contexts
without a usable interest, the bookkeeping of shows and rewards. A policy adds how it explores."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

import numpy as np

from ranker.bandits.base import RankContext, ShownItem, Slate, check_update
from ranker.bandits.item_stats import ItemStatsStore
from ranker.bandits.linear_model import (
    CandidateFeatures,
    ContextualFeedback,
    ProjectedRidge,
    RidgePerDimension,
)


class LinearPolicy(ABC):
    name = ""
    # Whether `explore` needs every candidate's feature row: then they are formed first, and the
    # model's scores come from them rather than from another product with the embeddings.
    every_row = False

    def __init__(
        self,
        feedback_weight: float,
        feature_dim: int,
        ridge: float,
        seed: int,
        name: str,
        stats: ItemStatsStore | None,
        models: RidgePerDimension | None,
    ) -> None:
        """`name`: "" keeps the class's name; the registry names variants. `stats`: item
        statistics that rank contexts without a usable interest; `models`: a model to share."""
        self.name = name or self.name
        self.feedback_weight = feedback_weight
        self.models = models or RidgePerDimension(feature_dim, ridge, seed)
        self.learned = ContextualFeedback(self.models, stats)
        self._lock = threading.Lock()

    def rank(self, context: RankContext, top_k: int) -> Slate:
        with self._lock:
            model = self.models.for_context(context.vectors, context.interest)
            if model is None:
                return self.learned.fallback_slate(context, top_k, self.feedback_weight, self.name)
            candidates = model.candidates(context.vectors, context.interest)
            if self.every_row:
                candidates.all()
            lift = self.learned.lift(context.item_ids)
            learned = lift + candidates.along(model.theta)
            exploit = context.relevance + self.feedback_weight * learned
            slate = self.explore(model, candidates, exploit, top_k)
            rows = slate.indices
            self.learned.record_slate(context, rows, model, candidates.rows(rows), lift[rows])
            return slate

    @abstractmethod
    def explore(
        self, model: ProjectedRidge, candidates: CandidateFeatures, exploit: np.ndarray, top_k: int
    ) -> Slate:
        """The slate, from the exploitation scores and the model's uncertainty."""

    def update(self, shown: ShownItem, reward: float) -> None:
        check_update(shown, reward, (self.name,))
        with self._lock:
            self.learned.record_reward(shown, reward)
