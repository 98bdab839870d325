"""Is a difference between two rankers more than noise? A paired bootstrap over customers.

Both rankers are scored on the same customers, so the per-customer differences are resampled:
the interval says how far the mean difference could move with another draw of customers.
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000


def paired_bootstrap(
    ours: np.ndarray, theirs: np.ndarray, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Mean per-customer difference with its bootstrap interval, and the wins and losses."""
    differences = ours - theirs
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(differences), size=(RESAMPLES, len(differences)))
    means = differences[draws].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return {
        "difference": float(differences.mean()),
        "low": float(low),
        "high": float(high),
        "wins": int((differences > 0).sum()),
        "losses": int((differences < 0).sum()),
    }
