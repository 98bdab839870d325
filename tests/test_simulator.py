"""Statistical checks on the drifting-interest simulator (bench/simulator.py), fixed seeds."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import simulator
from simulator import Environment, Trace, World, run, stationary_arms

from ranker.bandits.registry import build_member

DRIFT_AT = 3000
WINDOW = 300
# As the simulator benchmark configures policies: no content signal, so rewards weigh fully, and
# forgetting after about 1,000 slates.
SPEC = simulator.SPEC


def test_ten_arms_ucb_and_thompson_reach_90_percent_of_the_best_arm_within_5000_steps():
    means = np.random.default_rng(0).uniform(0.1, 0.6, 10)
    for name, spec in [("ucb1", replace(SPEC, exploration=1.0)), ("thompson", SPEC)]:
        for seed in (0, 1):
            trace = run(build_member(spec, name), stationary_arms(means, seed), steps=5000)
            assert trace.expected[-1000:].mean() >= 0.9 * means.max(), (name, seed)


def test_ten_arms_regret_grows_ever_slower():
    means = np.random.default_rng(0).uniform(0.1, 0.6, 10)
    trace = run(build_member(replace(SPEC, exploration=1.0), "ucb1"), stationary_arms(means), 5000)
    regret = trace.regret
    assert regret[-1] - regret[-1000] < (regret[1000] - regret[0]) / 2


@pytest.mark.parametrize(
    ("stationary", "forgetting"),
    [
        ("ucb1", "ucb1_discounted"),
        ("thompson", "thompson_discounted"),
        ("thompson", "thompson_sliding_window"),
        ("linucb", "linucb_discounted"),
    ],
)
def test_forgetting_twins_recover_after_a_drift_and_stationary_ones_do_not(stationary, forgetting):
    world = World(drift_steps=(DRIFT_AT,), seed=1)
    traces = {
        name: run(build_member(SPEC, name), world, 6000, top_k=3)
        for name in (stationary, forgetting)
    }
    recovery = {name: trace.recovery_steps(DRIFT_AT, WINDOW, 0.9) for name, trace in traces.items()}
    assert recovery[forgetting] is not None
    assert recovery[stationary] is None or recovery[stationary] > recovery[forgetting]
    after_drift = {
        name: (trace.oracle - trace.expected)[DRIFT_AT:].sum() for name, trace in traces.items()
    }
    assert after_drift[forgetting] < 0.8 * after_drift[stationary]


def test_users_follow_the_trend_at_random_times():
    env = Environment(World(categories=4, users=200, switch_rate=0.2, seed=3))
    assert np.mean(env.user_category == 0) > 0.7
    env.drift()
    new_trend = env.trend
    shares = []
    for _ in range(10):
        for _ in range(200):
            env.visit()
        shares.append(np.mean(env.user_category == new_trend))
    assert new_trend != 0
    assert shares[0] < shares[-1]
    assert shares[-1] > 0.6


def test_clicks_are_likelier_in_the_users_category():
    env = Environment(World(categories=4, seed=2))
    rates = env.click_rates(0)
    in_category = env.categories == env.user_category[0]
    assert rates[in_category].mean() > 5 * rates[~in_category].mean()


def test_recovery_counts_steps_until_the_share_returns():
    oracle = np.ones(40)
    expected = np.r_[np.full(20, 0.8), np.full(10, 0.2), np.full(10, 0.8)]
    trace = Trace(expected, oracle, expected, (20,))
    # Steps 20..34: the first window wholly after the drift and back at 0.8 is steps 30..34.
    assert trace.recovery_steps(20, window=5, fraction=0.9) == 15
    assert (
        Trace(expected[:30], oracle[:30], expected[:30], (20,)).recovery_steps(20, 5, 0.9) is None
    )


def test_the_benchmark_writes_its_plot_and_figures(tmp_path):
    code = simulator.main(
        ["--steps", "600", "--drift-at", "300", "--window", "100", "--out", str(tmp_path)]
    )
    assert code == 0
    assert (tmp_path / "simulator.png").stat().st_size > 0
    assert "ucb1_discounted" in (tmp_path / "simulator.json").read_text()
    assert simulator.main(["--steps", "100", "--drift-at", "300", "--out", str(tmp_path)]) == 2
