"""How far the two-stream model trades all-items accuracy for new-items accuracy, and the shift
that meets the issue's targets.

Each discovery shift is scored on both splits with the model's own `stream_probability` over the
profile's parts. A shift counts as meeting the targets when it beats buy-again on Recall@10 and
NDCG@10 over all items and plain text interest on both over new items; the served shift is the
one with the largest smallest margin on validation, never chosen on the test.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ranker.interest import EvolvingInterestParams
from ranker.interest.streams import StreamWeights, content_parts, stream_probability

from .metrics import Tables
from .significance import paired_bootstrap
from .tuning import PartGrids

SHIFTS = tuple(np.round(np.arange(0.0, 2.01, 0.125), 3).tolist())
TARGETS = ((Tables.ALL, "buy_again"), (Tables.NEW, "text_interest"))
METRICS = ("recall@10", "ndcg@10")


@dataclass(frozen=True)
class Split:
    """One split's part grids and the baselines' scores on it."""

    grids: PartGrids
    baselines: dict[str, np.ndarray]

    def scores(self, params: EvolvingInterestParams, weights: StreamWeights) -> np.ndarray:
        items = self.grids.tables.grid.items
        content = {
            name: per_item[items]
            for name, per_item in content_parts(self.grids.vectors, weights).items()
        }
        return stream_probability(self.grids.parts(params) | content, weights)

    def margins(self, scores: np.ndarray) -> dict[str, float]:
        """The model minus each target's baseline, per target table and metric."""
        ours = self.grids.tables.metrics(scores)
        return {
            f"{table} {metric} vs {baseline}": ours[table][metric]
            - self.grids.tables.metrics(self.baselines[baseline])[table][metric]
            for table, baseline in TARGETS
            for metric in METRICS
        }

    def intervals(self, scores: np.ndarray, seed: int) -> dict[str, dict[str, float]]:
        tables = self.grids.tables
        ours = tables.per_customer(scores)
        return {
            f"{table} {metric} vs {baseline}": paired_bootstrap(
                ours[table][metric],
                tables.per_customer(self.baselines[baseline])[table][metric],
                seed,
            )
            for table, baseline in TARGETS
            for metric in METRICS
        }


def best_shift(validation: Split, params: EvolvingInterestParams, weights: StreamWeights) -> float:
    """The shift whose smallest margin over the targets is largest on validation."""
    return max(
        SHIFTS,
        key=lambda shift: min(
            validation.margins(
                validation.scores(params, replace(weights, discovery_shift=shift))
            ).values()
        ),
    )


def trade_off(
    validation: Split,
    test: Split,
    params: EvolvingInterestParams,
    weights: StreamWeights,
    seed: int,
) -> list[dict]:
    """One row per shift: metrics and target margins on both splits, test bootstrap intervals."""
    rows = []
    for shift in SHIFTS:
        shifted = replace(weights, discovery_shift=shift)
        on_validation = validation.scores(params, shifted)
        on_test = test.scores(params, shifted)
        validation_margins = validation.margins(on_validation)
        rows.append(
            {
                "discovery_shift": shift,
                "served": shift == weights.discovery_shift,
                "validation": validation.grids.tables.metrics(on_validation),
                "test": test.grids.tables.metrics(on_test),
                "validation_margins": validation_margins,
                "meets_targets_on_validation": min(validation_margins.values()) > 0,
                "test_margins_95": test.intervals(on_test, seed),
            }
        )
    return rows


def format_trade_off(rows: list[dict]) -> str:
    head = "".join(
        f"{f'{s} {t[:3]} {m[:1].upper()}@10':>14}"
        for s in ("val", "test")
        for t, _ in TARGETS
        for m in METRICS
    )
    lines = [
        "Two streams: discovery shift trade-off (the served shift is marked *)",
        f"{'shift':>7}{head}  targets on val",
    ]
    for row in rows:
        values = "".join(
            f"{row[split][table][metric]:>14.3f}"
            for split in ("validation", "test")
            for table, _ in TARGETS
            for metric in METRICS
        )
        met = "met" if row["meets_targets_on_validation"] else "not met"
        mark = "*" if row["served"] else " "
        lines.append(f"{row['discovery_shift']:>6.3f}{mark}{values}  {met}")
    return "\n".join(lines)
