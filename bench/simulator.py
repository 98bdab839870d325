"""A small world whose users' interests drift, to measure regret and recovery after a drift.

The catalogue is items in categories: each item's vector sits near its category's centre, and
each item has an appeal, its click rate for a user interested in its category (a user elsewhere
clicks at `off_interest` times that). The population favours one category, the trend, and each
user holds one category at a time; on each visit a user re-draws it from the population's
preferences with probability `switch_rate`, so users follow a new trend at random times. At each
step of `drift_steps` the trend moves to another category. Clicks follow a position-based model:
slot s is examined with probability 1 / (1 + s).

What a policy sees is what a ranker would: the candidates' vectors and, when `observed_interest`,
the user's interest as the decayed mean of the vectors of the items they clicked, so after a
drift it lags the user. Regret is the oracle slate's expected clicks (true rates, sorted) minus
the policy slate's; recovery is how many steps after a drift the policy's share of the oracle's
expected clicks (moving average) takes to get back to a fraction of its level before the drift.

    python bench/simulator.py [--steps 20000] [--drift-at 8000] [--seed 0]

writes bench/results/simulator.{json,png}: cumulative regret and the moving oracle share per
policy, around the drift, for stationary policies and their forgetting twins.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ranker.bandits.base import Policy, ShownItem, cosine_context
from ranker.bandits.registry import PolicySpec, build_member

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
# Policies as the registry builds them, for a world without a content signal (relevance 0), so
# rewards weigh fully, and forgetting after about 1,000 slates.
SPEC = PolicySpec(
    exploration=0.3, feedback_weight=1.0, discount=0.998, window=1000, known_items=1000
)


@dataclass(frozen=True)
class World:
    categories: int = 8
    items_per_category: int = 10
    dim: int = 32
    # Click rates of items for a user interested in their category: uniform in this range.
    appeal: tuple[float, float] = (0.1, 0.6)
    off_interest: float = 0.1
    users: int = 50
    # The trend category's share of the population's preference; the rest spread evenly.
    trend_share: float = 0.8
    switch_rate: float = 0.2
    drift_steps: tuple[int, ...] = ()
    # Off by default: a ranker that follows the user's clicks by content keeps showing them
    # their old category after a drift, which hides what the item statistics do.
    observed_interest: bool = False
    # How much of a user's interest vector each new click replaces.
    interest_step: float = 0.3
    # Appeal per item, overriding `appeal`'s random draw: for problems with known arms.
    fixed_appeal: tuple[float, ...] = ()
    seed: int = 0


def stationary_arms(means: Sequence[float], seed: int = 0) -> World:
    """A plain k-armed bandit: one category, one user, no drift, no interest signal."""
    return World(
        categories=1,
        items_per_category=len(means),
        fixed_appeal=tuple(means),
        users=1,
        trend_share=1.0,
        switch_rate=0.0,
        observed_interest=False,
        seed=seed,
    )


class Environment:
    """The world's state as it runs: item rates, user categories and interests, the trend."""

    def __init__(self, world: World) -> None:
        self.world = world
        rng = np.random.default_rng(world.seed)
        n = world.categories * world.items_per_category
        self.item_ids = [f"item-{i}" for i in range(n)]
        self.categories = np.repeat(np.arange(world.categories), world.items_per_category)
        self.texts = [f"category {c} item {i}" for i, c in enumerate(self.categories)]
        centres = rng.standard_normal((world.categories, world.dim))
        vectors = centres[self.categories] + 0.5 * rng.standard_normal((n, world.dim))
        self.vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
        self.appeal = (
            np.array(world.fixed_appeal)
            if world.fixed_appeal
            else rng.uniform(*world.appeal, size=n)
        )
        self.trend = 0
        self.user_category = np.array([self._draw_category(rng) for _ in range(world.users)])
        self.interests: list[np.ndarray | None] = [None] * world.users
        self._rng = rng

    def _draw_category(self, rng: np.random.Generator) -> int:
        if rng.random() < self.world.trend_share or self.world.categories == 1:
            return self.trend
        return int(rng.integers(self.world.categories))

    def drift(self) -> None:
        """The trend moves to another category; users follow as they re-draw their interest."""
        self.trend = (self.trend + 1 + int(self._rng.integers(self.world.categories - 1))) % (
            self.world.categories
        )

    def visit(self) -> int:
        """The next visiting user, whose interest may have switched since their last visit."""
        user = int(self._rng.integers(self.world.users))
        if self._rng.random() < self.world.switch_rate:
            self.user_category[user] = self._draw_category(self._rng)
        return user

    def click_rates(self, user: int) -> np.ndarray:
        matches = self.categories == self.user_category[user]
        return self.appeal * np.where(matches, 1.0, self.world.off_interest)

    def observe_click(self, user: int, item: int) -> None:
        if not self.world.observed_interest:
            return
        old, new = self.interests[user], self.vectors[item].astype(np.float64)
        blended = (
            new
            if old is None
            else (1 - self.world.interest_step) * old + self.world.interest_step * new
        )
        self.interests[user] = blended / np.linalg.norm(blended)


def examination(slots: int) -> np.ndarray:
    return 1.0 / (1.0 + np.arange(slots))


@dataclass(frozen=True)
class Trace:
    expected: np.ndarray  # the policy slate's expected clicks, per step
    oracle: np.ndarray  # the best slate's expected clicks, per step
    clicks: np.ndarray  # clicks observed, per step
    drift_steps: tuple[int, ...]

    @property
    def regret(self) -> np.ndarray:
        return np.cumsum(self.oracle - self.expected)

    def oracle_share(self, window: int) -> np.ndarray:
        """Moving share of the oracle's expected clicks over the last `window` steps."""
        kernel = np.ones(window)
        return np.convolve(self.expected, kernel, "valid") / np.convolve(
            self.oracle, kernel, "valid"
        )

    def recovery_steps(self, drift: int, window: int, fraction: float) -> int | None:
        """Steps from `drift` to the end of the first window, wholly after it, whose oracle
        share is back to `fraction` of the window's just before; None if none is in the run."""
        share = self.oracle_share(window)
        # share[i] averages steps i .. i + window - 1.
        before = share[drift - window]
        after = share[drift:]
        recovered = np.flatnonzero(after >= fraction * before)
        return int(recovered[0]) + window if len(recovered) else None


def run(policy: Policy, world: World, steps: int, top_k: int = 1, candidates: int = 0) -> Trace:
    """`candidates`: how many catalogue items each request offers (0 for all)."""
    env = Environment(world)
    rng = np.random.default_rng(world.seed + 1)
    n = len(env.item_ids)
    seen = examination(top_k)
    expected, oracle, clicks = np.zeros(steps), np.zeros(steps), np.zeros(steps)
    drifts = set(world.drift_steps)
    for step in range(steps):
        if step in drifts:
            env.drift()
        user = env.visit()
        offered = (
            np.sort(rng.choice(n, size=candidates, replace=False)) if candidates else np.arange(n)
        )
        context = cosine_context(
            f"user-{user}",
            [env.item_ids[i] for i in offered],
            env.vectors[offered],
            env.interests[user],
        )
        slate = policy.rank(context, top_k)
        rates = env.click_rates(user)[offered]
        shown_rates = rates[slate.indices]
        expected[step] = shown_rates @ seen[: len(shown_rates)]
        best = np.sort(rates)[::-1][: len(shown_rates)]
        oracle[step] = best @ seen[: len(best)]
        clicked = rng.random(len(shown_rates)) < shown_rates * seen[: len(shown_rates)]
        clicks[step] = clicked.sum()
        for slot in np.flatnonzero(clicked):
            index = int(slate.indices[slot])
            item = int(offered[index])
            policy.update(
                ShownItem(
                    env.item_ids[item],
                    context.vectors[index],
                    context.interest,
                    slate.policy,
                    slate.pinned,
                ),
                1.0,
            )
            env.observe_click(user, item)
    return Trace(expected, oracle, clicks, tuple(sorted(drifts)))


def _policies(seed: int) -> dict[str, Callable[[], Policy]]:
    """Stationary policies and their forgetting twins, as the registry builds them."""
    spec = replace(SPEC, seed=seed)
    names = [
        "ucb1",
        "ucb1_discounted",
        "thompson",
        "thompson_discounted",
        "thompson_sliding_window",
    ]
    return {name: (lambda name=name: build_member(spec, name)) for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--drift-at", type=int, default=8_000)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--recovered-at", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--observed-interest", action="store_true", help="policies see users' click interest"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not args.window < args.drift_at < args.steps:
        print("error: need --window < --drift-at < --steps", file=sys.stderr)
        return 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    world = World(
        drift_steps=(args.drift_at,), observed_interest=args.observed_interest, seed=args.seed
    )
    results, traces = {}, {}
    for name, make in _policies(args.seed).items():
        trace = run(make(), world, args.steps, args.top_k)
        traces[name] = trace
        results[name] = {
            "regret": float(trace.regret[-1]),
            "regret_before_drift": float(trace.regret[args.drift_at - 1]),
            "oracle_share_before_drift": float(
                trace.oracle_share(args.window)[args.drift_at - args.window]
            ),
            "oracle_share_at_end": float(trace.oracle_share(args.window)[-1]),
            "recovery_steps": trace.recovery_steps(args.drift_at, args.window, args.recovered_at),
        }
        row = results[name]
        print(
            f"{name:<26} regret {row['regret']:8.1f}  share before drift "
            f"{row['oracle_share_before_drift']:.3f}  recovery {row['recovery_steps']}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "world": asdict(world),
        "steps": args.steps,
        "top_k": args.top_k,
        "window": args.window,
        "recovered_at": args.recovered_at,
        "policies": results,
    }
    (args.out / "simulator.json").write_text(json.dumps(report, indent=2) + "\n")
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, trace in traces.items():
        left.plot(trace.regret, label=name)
        right.plot(
            np.arange(args.window, args.steps + 1), trace.oracle_share(args.window), label=name
        )
    for axis in (left, right):
        axis.axvline(args.drift_at, color="grey", linestyle="--")
        axis.set_xlabel("step")
    left.set_ylabel("cumulative regret (expected clicks)")
    right.set_ylabel(f"share of oracle clicks, last {args.window} steps")
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out / "simulator.png", dpi=120)
    print(f"wrote {args.out / 'simulator.json'} and simulator.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
