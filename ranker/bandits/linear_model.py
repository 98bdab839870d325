"""The ridge regression that the contextual policies share, on projected interest x item features.

Features: x = sqrt(d) * P^T (interest * item), elementwise product of the user's interest and
the item embedding (d-dim, so that the model learns which directions of interest pay off for
which items) projected by a fixed, seeded Gaussian P (d x k, entries N(0, 1/k)) down to k
dimensions. The sqrt(d) makes |x| about 1 for unit embeddings, so the ridge prior means the
same whatever d. When d <= k there is no projection.

Why project: scoring a candidate needs x^T A^-1 x, which at d=384 is 147M flops for 1,000
candidates, far over the 1 ms budget; at k=16 it is 0.3M, and computing x itself is one
(n x d) @ (d x k) product with diag(interest) folded into P, the policy's largest cost (0.15 ms
at k=16 on one core here, 0.3 ms at k=32, which put the contextual policies' p99 at 1 ms).
Random projection keeps inner products in expectation (Johnson-Lindenstrauss), which is what a
linear reward model needs.

The target is the reward's lift over what the item earns anyway: its own smoothed reward rate
when the policy keeps item statistics, else the prior rate (as for count-based policies). This
is the hybrid model of LinUCB's paper (Li et al., 2010): per-item terms (here the statistics)
beside features shared by all items. The score adds the statistics' reward lift and the model's
prediction, and because the model learns only the residual, one reward is not counted twice.
An unlearned model predicts 0, and items shown without reward sink below their content score
instead of rising above it. On the replay (bench/replay.py, all customers, --seed 0), LinUCB
with a residual model over forgetting statistics earned 58,150, against 57,625 when its model
learned the whole lift.

A and A^-1 are both kept: shows add X^T X to A and invert it afresh, O(k^2 m + k^3) for a
slate of m, rewards update b and theta = A^-1 b in O(k^2). At k=16 the inversion's flops cost
less than the calls of a Woodbury update (a product, a solve, two more products, a
symmetrisation), and it carries no rounding over from earlier slates. Shows are recorded when
the slate is ranked and rewards when they arrive, so shown items that earn nothing count as
zero-reward observations without any feedback call.

Embedding sizes: a model is built for one size. `RidgePerDimension` keeps one per size seen, so
a new encoder version with another size starts a fresh model instead of failing, and a rollback
finds its old model again; the ranker's zero vectors of size 1 (no encoder known yet) carry no
interest and never reach a model. Contexts a model cannot use are ranked by relevance alone.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from ranker.bandits.base import (
    PRIOR_RATE,
    RankContext,
    ShownItem,
    Slate,
    reward_lift,
    slate_from_scores,
)
from ranker.bandits.item_stats import ItemStatsStore

# Embedding sizes whose models are kept: the serving one and a few to roll back to.
KEPT_SIZES = 4


class CandidateFeatures:
    """A request's candidate features, formed only as far as a policy needs them.

    A score along one direction w of feature space is x^T w = v^T (U w), v the item embedding
    and U the user's projection: one (n x d) product with a vector, where forming every x costs
    n x d x k. LinUCB's bonus needs every x; linear Thompson only scores and the slate's rows.
    Scoring stays in float32, which halves its cost; the model's own state is float64.
    """

    def __init__(self, vectors: np.ndarray, user_projection: np.ndarray) -> None:
        self.vectors = vectors.astype(np.float32, copy=False)
        self._projection = user_projection
        self._all: np.ndarray | None = None
        # The rows last formed, and the candidates they were formed for, in order.
        self._formed: np.ndarray | None = None
        self._formed_for: list[int] = []

    def along(self, direction: np.ndarray) -> np.ndarray:
        """x^T direction per item: from the rows when every one is formed, a product with k
        columns instead of d (the two round differently in float32, by about 1e-7 relative)."""
        direction = direction.astype(np.float32)
        if self._all is not None:
            return (self._all @ direction).astype(np.float64)
        return (self.vectors @ (self._projection @ direction)).astype(np.float64)

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """The items' feature rows. A policy asks twice for a slate's (its propensities, for the
        slate and a rival after it, then its update, for the slate), and a small product costs as
        much as a large one: rows once formed serve a later call for a prefix of them."""
        # take, not indexing: for rows it costs a quarter as much.
        if self._all is not None:
            return self._all.take(indices, axis=0)
        wanted = indices.tolist()
        if self._formed is not None and self._formed_for[: len(wanted)] == wanted:
            return self._formed[: len(wanted)]
        self._formed = self.vectors.take(indices, axis=0) @ self._projection
        self._formed_for = wanted
        return self._formed

    def all(self) -> np.ndarray:
        if self._all is None:
            self._all = self.vectors @ self._projection
        return self._all


class ProjectedRidge:
    def __init__(self, dim: int, feature_dim: int, ridge: float, seed: int) -> None:
        self.dim = dim
        k = min(feature_dim, dim)
        if dim <= feature_dim:
            projection = np.eye(dim)
        else:
            rng = np.random.default_rng(seed)
            projection = rng.normal(0.0, 1.0 / math.sqrt(k), size=(dim, k))
        # Stored transposed: scaling it by an interest then runs along its rows (callgrind: 21k
        # instructions, against 50k down its columns).
        self._projection_t = np.ascontiguousarray(
            (math.sqrt(dim) * projection).astype(np.float32).T
        )
        self.a = np.eye(k) * ridge
        self.a_inv = np.eye(k) / ridge
        self.b = np.zeros(k)
        self.theta = np.zeros(k)

    def candidates(self, vectors: np.ndarray, interest: np.ndarray) -> CandidateFeatures:
        """The features of these items for this interest, formed as far as they are used."""
        user_projection_t = self._projection_t * interest.astype(np.float32, copy=False)
        return CandidateFeatures(vectors, user_projection_t.T)

    def features(self, vectors: np.ndarray, interest: np.ndarray) -> np.ndarray:
        """One float32 feature row per item."""
        return self.candidates(vectors, interest).all()

    def variance(self, features: np.ndarray) -> np.ndarray:
        """x^T A^-1 x per row: the model's uncertainty about each item's reward."""
        spread = features @ self.a_inv.astype(np.float32)
        return np.einsum("ij,ij->i", spread, features).astype(np.float64)

    def record_shown(self, features: np.ndarray, expected: np.ndarray) -> None:
        """Observes each shown row as earning nothing yet: adds x x^T to A and -expected * x to
        b, `expected` being the reward the row's item earns without the model.

        A^-1 is A's inverse afresh; a later reward for the row adds reward * x to b. Zero rows
        (items without content) teach nothing: they add exact zeros to each term, so they need
        no mask (whose calls cost more than the update's arithmetic).
        """
        if not len(features):
            return
        shown = features.astype(np.float64)
        # X^T X, which numpy computes as one symmetric rank-m update: A stays exactly symmetric.
        self.a += shown.T @ shown
        self.a_inv = np.linalg.inv(self.a)
        self.b -= expected @ shown
        self.theta = self.a_inv @ self.b

    def record_reward(self, features: np.ndarray, reward: float) -> None:
        self.b += reward * features.astype(np.float64)
        self.theta = self.a_inv @ self.b


class RidgePerDimension:
    """One `ProjectedRidge` per embedding size, the most recently used `KEPT_SIZES` of them."""

    def __init__(self, feature_dim: int, ridge: float, seed: int) -> None:
        self.feature_dim = feature_dim
        self.ridge = ridge
        self.seed = seed
        self._models: OrderedDict[int, ProjectedRidge] = OrderedDict()

    def for_context(
        self, vectors: np.ndarray, interest: np.ndarray | None
    ) -> ProjectedRidge | None:
        """The model for these embeddings, or None when they carry no usable interest: none at
        all, or one whose size differs from the items' (then no feature can be formed)."""
        if interest is None or vectors.ndim != 2 or len(interest) != vectors.shape[1]:
            return None
        if not interest.any():
            return None
        return self.model(vectors.shape[1])

    def record_reward(self, vector: np.ndarray, interest: np.ndarray | None, reward: float) -> None:
        """Credits a reward to the model of the size the item was ranked at, if it had one."""
        model = self.for_context(vector[None, :], interest)
        if model is not None:
            model.record_reward(model.features(vector[None, :], interest)[0], reward)

    def model(self, dim: int) -> ProjectedRidge:
        model = self._models.get(dim)
        if model is None:
            model = self._models[dim] = ProjectedRidge(dim, self.feature_dim, self.ridge, self.seed)
            if len(self._models) > KEPT_SIZES:
                self._models.popitem(last=False)
        self._models.move_to_end(dim)
        return model

    def sizes(self) -> list[int]:
        return list(self._models)


class ContextualFeedback:
    """What a contextual policy learns from: its linear models and, optionally, item statistics,
    either of which an ensemble may share between members.

    The models learn the reward beyond the statistics' rate (see the module docstring); where
    no model applies (a user without history, no encoder) the statistics rank alone.
    `records_stats=False` only reads the statistics: for an ensemble's observer that teaches
    the models while members or another observer keep the statistics.
    """

    def __init__(
        self, models: RidgePerDimension, stats: ItemStatsStore | None, records_stats: bool = True
    ) -> None:
        self.models = models
        self.stats = stats
        self.records_stats = records_stats

    def lift(self, item_ids: Sequence[str]) -> np.ndarray:
        """Each item's reward lift by its statistics; zeros without statistics."""
        if self.stats is None:
            return np.zeros(len(item_ids))
        return reward_lift(*self.stats.counts(item_ids))

    def fallback_slate(
        self, context: RankContext, top_k: int, feedback_weight: float, policy: str
    ) -> Slate:
        """The deterministic slate for a context no linear model can use."""
        lift = self.lift(context.item_ids)
        scores = context.relevance + feedback_weight * lift
        slate = slate_from_scores(scores, scores, top_k, policy)
        self.record_slate(context, slate.indices, None, None, lift[slate.indices])
        return slate

    def record_slate(
        self,
        context: RankContext,
        indices: np.ndarray,
        model: ProjectedRidge | None,
        rows: np.ndarray | None,
        lift: np.ndarray,
    ) -> None:
        """Records the slate's items as shown: to `model` with `rows`, their features, as
        expected to earn their rate (`lift`, theirs by the statistics, over the prior), then
        to the statistics."""
        if model is not None and rows is not None:
            model.record_shown(rows, PRIOR_RATE + lift)
        if self.stats is not None and self.records_stats:
            self.stats.record_shows([context.item_ids[i] for i in indices.tolist()])

    def observe_shown(self, context: RankContext, slate: Slate) -> None:
        """Learns from a slate another policy ranked, as if this policy had shown it."""
        model = self.models.for_context(context.vectors, context.interest)
        rows = None
        if model is not None:
            rows = model.features(context.vectors[slate.indices], context.interest)
        lift = self.lift([context.item_ids[i] for i in slate.indices.tolist()])
        self.record_slate(context, slate.indices, model, rows, lift)

    def observe_reward(self, shown: ShownItem, reward: float) -> None:
        self.record_reward(shown, reward)

    def record_reward(self, shown: ShownItem, reward: float) -> None:
        self.models.record_reward(shown.vector, shown.interest, reward)
        if self.stats is not None and self.records_stats:
            self.stats.record_reward(shown.item_id, reward)
