"""The ridge regression that the contextual policies share, on projected interest x item features.

Features: x = sqrt(d) * P^T (interest * item), elementwise product of the user's interest and
the item embedding (d-dim, so that the model learns which directions of interest pay off for
which items) projected by a fixed, seeded Gaussian P (d x k, entries N(0, 1/k)) down to k
dimensions. The sqrt(d) makes |x| about 1 for unit embeddings, so the ridge prior means the
same whatever d. When d <= k there is no projection.

Why project: scoring a candidate needs x^T A^-1 x, which at d=384 is 147M flops for 1,000
candidates, far over the 1 ms budget; at k=32 it is 1M, and computing x itself is one
(n x d) @ (d x k) product with diag(interest) folded into P. Random projection keeps inner
products within a few percent in expectation (Johnson-Lindenstrauss), which is what a linear
reward model needs.

The target is the reward's lift over the prior rate (reward - PRIOR_RATE), as for count-based
policies: an unlearned model predicts 0, and items shown without reward sink below their
content score instead of rising above it.

A^-1 is kept directly: shows update it by Woodbury (Sherman-Morrison for a single item) in
O(k^2 m + m^3) for a slate of m, rewards update b and theta = A^-1 b in O(k^2). Shows are
recorded when the slate is ranked and rewards when they arrive, so shown items that earn
nothing count as zero-reward observations without any feedback call.
"""

from __future__ import annotations

import math

import numpy as np

from ranker.bandits.base import PRIOR_RATE


class ProjectedRidge:
    def __init__(self, feature_dim: int, ridge: float, seed: int) -> None:
        self.feature_dim = feature_dim
        self.ridge = ridge
        self._seed = seed
        self._projection: np.ndarray | None = None
        self.a_inv = np.zeros((0, 0))
        self.b = np.zeros(0)
        self.theta = np.zeros(0)

    def features(self, vectors: np.ndarray, interest: np.ndarray | None) -> np.ndarray:
        """One float32 feature row per item; all zeros without an interest, which teaches nothing.

        Scoring stays in float32, which halves its cost; the model's own state is float64.
        """
        projection = self._projection_for(vectors.shape[1])
        if interest is None:
            return np.zeros((len(vectors), projection.shape[1]), dtype=np.float32)
        user_projection = interest.astype(np.float32)[:, None] * projection
        return vectors.astype(np.float32, copy=False) @ user_projection

    def mean(self, features: np.ndarray) -> np.ndarray:
        return (features @ self.theta.astype(np.float32)).astype(np.float64)

    def variance(self, features: np.ndarray) -> np.ndarray:
        """x^T A^-1 x per row: the model's uncertainty about each item's reward."""
        spread = features @ self.a_inv.astype(np.float32)
        return np.einsum("ij,ij->i", spread, features).astype(np.float64)

    def record_shown(self, features: np.ndarray) -> None:
        """Observes each shown row as earning nothing yet: adds x x^T to A and -prior * x to b.

        A^-1 is updated by Woodbury; a later reward for the row adds reward * x to b.
        """
        shown = features[np.any(features != 0.0, axis=1)].astype(np.float64)
        if not len(shown):
            return
        projected = shown @ self.a_inv
        inner = np.eye(len(shown)) + projected @ shown.T
        self.a_inv -= projected.T @ np.linalg.solve(inner, projected)
        self.a_inv = 0.5 * (self.a_inv + self.a_inv.T)
        self.b -= PRIOR_RATE * shown.sum(axis=0)
        self.theta = self.a_inv @ self.b

    def record_reward(self, features: np.ndarray, reward: float) -> None:
        self.b += reward * features.astype(np.float64)
        self.theta = self.a_inv @ self.b

    def _projection_for(self, dim: int) -> np.ndarray:
        if self._projection is None:
            k = min(self.feature_dim, dim)
            if dim <= self.feature_dim:
                projection = np.eye(dim)
            else:
                rng = np.random.default_rng(self._seed)
                projection = rng.normal(0.0, 1.0 / math.sqrt(k), size=(dim, k))
            self._projection = (math.sqrt(dim) * projection).astype(np.float32)
            self.a_inv = np.eye(k) / self.ridge
            self.b = np.zeros(k)
            self.theta = np.zeros(k)
        elif self._projection.shape[0] != dim:
            raise ValueError(
                f"embeddings have {dim} dimensions, the model was built for "
                f"{self._projection.shape[0]}"
            )
        return self._projection
