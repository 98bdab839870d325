"""Episodes of the next-basket protocol: a history, the basket that followed, its candidates.

A customer's history is every purchase strictly before the predicted invoice; the candidates
are that invoice's distinct items plus negatives drawn by popularity. Each candidate carries a
random tie-break key, so a scorer that cannot tell items apart ranks targets by chance, never by
their place in the list.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .data import Transactions


@dataclass(frozen=True)
class History:
    """What a scorer may see of one customer: purchases before `cutoff`, oldest first."""

    customer: str
    items: np.ndarray  # item indices, one per (invoice, item) purchase
    times: np.ndarray  # seconds
    cutoff: float  # time of the invoice to predict


class Scorer(Protocol):
    """A ranking model under test: higher scores rank first; equal scores tie at random."""

    name: str

    def score(self, history: History, candidates: np.ndarray) -> np.ndarray:
        """One score per candidate item index."""
        ...


@dataclass(frozen=True)
class Episode:
    history: History
    targets: np.ndarray  # distinct item indices of the predicted invoice
    candidates: np.ndarray  # targets then negatives, no duplicates
    tie_breaks: np.ndarray  # one random key per candidate


def invoice_popularity(transactions: Transactions) -> np.ndarray:
    """Number of invoices holding each item: the distribution negatives are drawn from."""
    return np.bincount(transactions.items, minlength=transactions.n_items).astype(np.float64)


def sample_negatives(
    popularity: np.ndarray, exclude: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """`count` distinct items, drawn by popularity, none of them in `exclude`."""
    weights = popularity.copy()
    weights[exclude] = 0.0
    count = min(count, int(np.count_nonzero(weights)))
    return rng.choice(len(weights), size=count, replace=False, p=weights / weights.sum())


def _customer_rows(transactions: Transactions) -> Iterator[tuple[str, np.ndarray]]:
    order = np.argsort(transactions.customers, kind="stable")  # keeps (time, invoice) order
    customers = transactions.customers[order]
    starts = np.flatnonzero(np.r_[True, customers[1:] != customers[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], len(order)], strict=True):
        yield customers[start], order[start:stop]


def build_episodes(
    transactions: Transactions,
    min_invoices: int,
    negatives: int,
    seed: int,
    invoices_back: int = 0,
) -> list[Episode]:
    """One episode per customer with at least `min_invoices` invoices, sorted by cutoff.

    `invoices_back=0` predicts each customer's last invoice (the test split); 1 predicts the one
    before it from the history before that, so parameters can be tuned without seeing the test.
    """
    rng = np.random.default_rng(seed)
    popularity = invoice_popularity(transactions)
    episodes = []
    for customer, rows in _customer_rows(transactions):
        invoices = list(dict.fromkeys(transactions.invoices[rows]))  # in (time, invoice) order
        if len(invoices) < min_invoices:
            continue
        target_rows = rows[transactions.invoices[rows] == invoices[-1 - invoices_back]]
        cutoff = transactions.times[target_rows[0]]
        before = rows[transactions.times[rows] < cutoff]
        if before.size == 0:
            continue
        targets = np.unique(transactions.items[target_rows])
        candidates = np.concatenate(
            [targets, sample_negatives(popularity, targets, negatives, rng)]
        )
        history = History(
            customer, transactions.items[before], transactions.times[before], float(cutoff)
        )
        episodes.append(Episode(history, targets, candidates, rng.random(len(candidates))))
    episodes.sort(key=lambda e: e.history.cutoff)
    return episodes


@dataclass(frozen=True)
class CandidateGrid:
    """Every episode's candidates as one row, padded to a common width, to rank all at once."""

    items: np.ndarray  # item indices; -1 pads a row
    relevant: np.ndarray  # the candidate is a target
    bought_before: np.ndarray  # the candidate is in the customer's history
    tie_breaks: np.ndarray

    @classmethod
    def from_episodes(cls, episodes: list[Episode]) -> CandidateGrid:
        width = max(len(e.candidates) for e in episodes)
        items = np.full((len(episodes), width), -1, dtype=np.int64)
        tie_breaks = np.zeros((len(episodes), width))
        for row, episode in enumerate(episodes):
            items[row, : len(episode.candidates)] = episode.candidates
            tie_breaks[row, : len(episode.candidates)] = episode.tie_breaks
        relevant = np.zeros_like(items, dtype=bool)
        bought_before = np.zeros_like(items, dtype=bool)
        for row, episode in enumerate(episodes):
            relevant[row] = np.isin(items[row], episode.targets)
            bought_before[row] = np.isin(items[row], episode.history.items)
        return cls(items, relevant, bought_before, tie_breaks)

    @property
    def valid(self) -> np.ndarray:
        return self.items >= 0

    def new_items_only(self, drop_old_candidates: bool = False) -> tuple[CandidateGrid, np.ndarray]:
        """Targets the customer bought before leave the targets and the candidates alike (a
        bought item is no negative); rows left without a target go. Returns the kept rows too.

        Bought-before negatives stay unless `drop_old_candidates`: a model that pushes every old
        purchase up pays for it then.
        """
        new_targets = self.relevant & ~self.bought_before
        rows = np.flatnonzero(new_targets.any(axis=1))
        dropped = self.bought_before if drop_old_candidates else self.relevant & self.bought_before
        removed = dropped[rows]
        grid = CandidateGrid(
            np.where(removed, -1, self.items[rows]),
            new_targets[rows],
            self.bought_before[rows] & ~removed,
            self.tie_breaks[rows],
        )
        return grid, rows


def score_grid(scorer: Scorer, episodes: list[Episode], grid: CandidateGrid) -> np.ndarray:
    """The scorer's scores laid out like the grid (episodes in cutoff order, as scored)."""
    scores = np.zeros(grid.items.shape)
    for row, episode in enumerate(episodes):
        scores[row, : len(episode.candidates)] = scorer.score(episode.history, episode.candidates)
    return scores
