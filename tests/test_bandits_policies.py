"""Every policy: cold items by content, learning the rewarded item, seeds, propensities, drift."""

import threading
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest

from ranker.bandits.base import Policy, RankContext, ShownItem, cosine_context
from ranker.bandits.epsilon_greedy import EpsilonGreedy
from ranker.bandits.item_stats import InMemoryItemStats
from ranker.bandits.linear_thompson import LinearThompson
from ranker.bandits.linucb import LinUCB
from ranker.bandits.sliding_window_stats import SlidingWindowItemStats
from ranker.bandits.softmax import Softmax, plackett_luce_propensities
from ranker.bandits.thompson import BetaThompson
from ranker.bandits.ucb1 import UCB1

DIM = 16
ITEMS = 6


def unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def make_context(dim: int = DIM, items: int = ITEMS, seed: int = 7) -> RankContext:
    """Candidates whose similarities to the interest step down from 0.6 by 0.05."""
    rng = np.random.default_rng(seed)
    interest = unit_rows(rng, 1, dim)[0]
    others = rng.standard_normal((items, dim))
    others -= np.outer(others @ interest, interest)
    others /= np.linalg.norm(others, axis=1, keepdims=True)
    cosines = 0.6 - 0.05 * np.arange(items) % 0.6
    vectors = cosines[:, None] * interest + np.sqrt(1 - cosines**2)[:, None] * others
    return cosine_context(
        user_id="u",
        item_ids=[f"i{n}" for n in range(items)],
        vectors=vectors.astype(np.float32),
        interest=interest,
    )


def shown_item(context: RankContext, index: int, member: str) -> ShownItem:
    return ShownItem(context.item_ids[index], context.vectors[index], context.interest, member)


# Each policy in a setting with its exploration on, as it would serve.
EXPLORING: dict[str, Callable[[int], Policy]] = {
    "ucb1": lambda seed: UCB1(InMemoryItemStats(100), exploration=0.1, feedback_weight=2.0),
    "epsilon_greedy": lambda seed: EpsilonGreedy(
        InMemoryItemStats(100), epsilon=0.2, decay=0.001, feedback_weight=2.0, seed=seed
    ),
    "thompson": lambda seed: BetaThompson(InMemoryItemStats(100), feedback_weight=2.0, seed=seed),
    "softmax": lambda seed: Softmax(
        InMemoryItemStats(100), temperature=0.05, feedback_weight=2.0, seed=seed
    ),
    "linucb": lambda seed: LinUCB(exploration=0.1, feedback_weight=2.0, seed=seed),
    "linear_thompson": lambda seed: LinearThompson(scale=0.1, feedback_weight=2.0, seed=seed),
}

# The same policies with no randomness or optimism left: what they rank by is what they know.
EXPLOITING: dict[str, Callable[[], Policy]] = {
    "ucb1": lambda: UCB1(InMemoryItemStats(100), exploration=0.5, feedback_weight=1.0),
    "epsilon_greedy": lambda: EpsilonGreedy(InMemoryItemStats(100), epsilon=0.0),
    "thompson": lambda: BetaThompson(InMemoryItemStats(100)),
    "softmax": lambda: Softmax(InMemoryItemStats(100), temperature=1e-6),
    "linucb": lambda: LinUCB(exploration=0.0),
    "linear_thompson": lambda: LinearThompson(scale=0.0),
}


def simulate(
    policy: Policy, context: RankContext, click_rates: Callable[[int], np.ndarray], rounds: int
) -> list[int]:
    """Slates of one; a Bernoulli click per round at the shown item's rate. The items shown."""
    rng = np.random.default_rng(123)
    picks = []
    for round_ in range(rounds):
        slate = policy.rank(context, top_k=1)
        item = int(slate.indices[0])
        if rng.random() < click_rates(round_)[item]:
            policy.update(shown_item(context, item, slate.policy), 1.0)
        picks.append(item)
    return picks


@pytest.mark.parametrize("name", EXPLOITING)
def test_cold_items_rank_by_similarity(name):
    # UCB1 keeps its bonus on: every unshown item gets the same bonus, so content decides.
    context = make_context()
    slate = EXPLOITING[name]().rank(context, top_k=4)
    assert slate.indices.tolist() == np.argsort(-context.relevance)[:4].tolist()
    assert not slate.explored.any()


@pytest.mark.parametrize("name", EXPLORING)
def test_learns_to_prefer_the_item_that_earns_rewards(name):
    context = make_context()
    # The best item is only the fourth most similar one.
    best = int(np.argsort(-context.relevance)[3])
    rates = np.full(ITEMS, 0.05)
    rates[best] = 0.6
    picks = simulate(EXPLORING[name](0), context, lambda _: rates, rounds=400)
    assert Counter(picks[-100:])[best] >= 70


@pytest.mark.parametrize("name", EXPLORING)
def test_same_seed_same_slates(name):
    def run(seed: int) -> list[list[int]]:
        policy, context, slates = EXPLORING[name](seed), make_context(dim=64, items=50), []
        for round_ in range(30):
            slate = policy.rank(context, top_k=5)
            slates.append(slate.indices.tolist())
            policy.update(shown_item(context, int(slate.indices[round_ % 5]), slate.policy), 1.0)
        return slates

    assert run(3) == run(3)


@pytest.mark.parametrize("name", EXPLORING)
def test_propensities_are_probabilities(name):
    policy, context = EXPLORING[name](0), make_context(dim=64, items=50)
    for round_ in range(30):
        slate = policy.rank(context, top_k=5)
        assert np.all((slate.propensities > 0) & (slate.propensities <= 1))
        assert len(slate.indices) == len(set(slate.indices.tolist())) == 5
        policy.update(shown_item(context, int(slate.indices[round_ % 3]), slate.policy), 1.0)


@pytest.mark.parametrize("name", EXPLORING)
def test_no_interest_still_ranks(name):
    context = make_context()
    context = cosine_context(context.user_id, context.item_ids, context.vectors, None)
    policy = EXPLORING[name](0)
    slate = policy.rank(context, top_k=3)
    policy.update(shown_item(context, int(slate.indices[0]), slate.policy), 1.0)
    assert len(slate.indices) == 3


def slot_one_frequencies(make: Callable[[int], Policy], context: RankContext, trials: int):
    """How often each item takes the top slot over fresh seeds, and the propensities reported."""
    counts, reported = np.zeros(len(context.item_ids)), {}
    for seed in range(trials):
        slate = make(seed).rank(context, top_k=1)
        counts[slate.indices[0]] += 1
        reported[int(slate.indices[0])] = float(slate.propensities[0])
    return counts / trials, reported


def test_epsilon_greedy_propensities_are_exact():
    context = make_context(items=4)
    frequencies, reported = slot_one_frequencies(
        lambda seed: EpsilonGreedy(InMemoryItemStats(10), epsilon=0.4, seed=seed), context, 3000
    )
    greedy = int(np.argmax(context.relevance))
    for item, propensity in reported.items():
        assert propensity == pytest.approx(0.6 * (item == greedy) + 0.4 / 4)
        assert frequencies[item] == pytest.approx(propensity, abs=0.03)
    slate = EpsilonGreedy(InMemoryItemStats(10), epsilon=0.0).rank(context, top_k=4)
    assert slate.propensities.tolist() == [1.0] * 4


def test_epsilon_decays_with_slates_ranked():
    policy = EpsilonGreedy(InMemoryItemStats(10), epsilon=0.2, decay=0.5)
    for _ in range(4):
        policy.rank(make_context(), top_k=2)
    assert policy.current_epsilon() == pytest.approx(0.2 / 3)


def test_softmax_propensities_are_plackett_luce():
    context = make_context(items=4)
    frequencies, reported = slot_one_frequencies(
        lambda seed: Softmax(InMemoryItemStats(10), temperature=0.3, seed=seed), context, 3000
    )
    scores = context.relevance
    first_slot = [plackett_luce_propensities(scores, np.array([i]), 0.3)[0] for i in range(4)]
    assert sum(first_slot) == pytest.approx(1.0)
    for item, propensity in reported.items():
        assert propensity == pytest.approx(first_slot[item])
        assert frequencies[item] == pytest.approx(propensity, abs=0.03)
    # The last slot of a full slate has one candidate left, so it is certain.
    slate = Softmax(InMemoryItemStats(10), temperature=0.3).rank(context, top_k=4)
    assert slate.propensities[-1] == pytest.approx(1.0)


def test_thompson_propensity_tracks_how_often_the_item_is_drawn():
    context = make_context(items=4)
    stats = InMemoryItemStats(10)
    stats.record_shows(["i0", "i1", "i2", "i3"] * 5)
    stats.record_reward("i1", 2.0)

    def make(seed: int) -> BetaThompson:
        policy = BetaThompson(stats, seed=seed)
        policy.stats = _Frozen(stats)
        return policy

    frequencies, reported = slot_one_frequencies(make, context, 2000)
    for item, propensity in reported.items():
        assert frequencies[item] == pytest.approx(propensity, abs=0.25)


class _Frozen:
    """Stats that ignore new shows, so every trial ranks from the same posterior."""

    def __init__(self, stats: InMemoryItemStats) -> None:
        self.counts = stats.counts
        self.total_shows = stats.total_shows

    def record_shows(self, item_ids) -> None:
        pass


@pytest.mark.parametrize(
    "make_stats",
    [lambda: InMemoryItemStats(100, discount=0.97), lambda: SlidingWindowItemStats(window=60)],
)
def test_forgetting_stats_recover_faster_when_the_best_item_changes(make_stats):
    context = make_context()
    order = np.argsort(-context.relevance)
    first, second = int(order[0]), int(order[1])

    def rates(round_: int) -> np.ndarray:
        rates = np.full(ITEMS, 0.05)
        rates[first if round_ < 300 else second] = 0.7
        return rates

    def share_of_second_after_change(stats) -> float:
        policy = EpsilonGreedy(stats, epsilon=0.15, feedback_weight=2.0, seed=1)
        picks = simulate(policy, context, rates, rounds=450)
        return Counter(picks[300:])[second] / 150

    forgetting = share_of_second_after_change(make_stats())
    stationary = share_of_second_after_change(InMemoryItemStats(100))
    assert forgetting > stationary + 0.2


def _shown_features(policy: LinUCB, context: RankContext, indices) -> np.ndarray:
    model = policy.models.model(context.vectors.shape[1])
    return model.features(context.vectors[indices], context.interest).astype(np.float64)


def test_linucb_keeps_a_inverse_equal_to_the_inverse_of_a():
    policy = LinUCB(exploration=0.1, feature_dim=32, ridge=2.0, seed=0)
    context = make_context(dim=64, items=40)
    a = 2.0 * np.eye(32)
    for round_ in range(25):
        slate = policy.rank(context, top_k=4)
        features = _shown_features(policy, context, slate.indices)
        a += features.T @ features
        policy.update(shown_item(context, int(slate.indices[round_ % 4]), slate.policy), 1.0)
    a_inv = policy.models.model(64).a_inv
    # Features are float32: the policy forms them for all candidates at once, this test for the
    # shown four, and BLAS may round those two products apart in the last float32 bit, by the
    # CPU's kernels (it does on this AMD EPYC). A wrong update is off by orders of magnitude more.
    np.testing.assert_allclose(a_inv, np.linalg.inv(a), rtol=0, atol=1e-6)
    assert a_inv.shape == (32, 32)


def test_contextual_policies_generalise_to_an_unseen_item_like_a_rewarded_one():
    context = make_context(dim=64, items=30)
    policy = LinUCB(exploration=0.0, feedback_weight=5.0, seed=0)
    rewarded = int(np.argsort(-context.relevance)[20])
    for _ in range(20):
        policy.rank(context, top_k=3)
        policy.update(shown_item(context, rewarded, policy.name), 1.0)
    twin = cosine_context(
        "u",
        [*context.item_ids, "twin"],
        np.vstack([context.vectors, context.vectors[rewarded]]),
        context.interest,
    )
    assert 30 in policy.rank(twin, top_k=3).indices.tolist()


@pytest.mark.parametrize("policy_type", [LinUCB, LinearThompson])
def test_contextual_policies_rank_by_their_item_statistics_where_they_have_an_interest(
    policy_type,
):
    context = make_context()
    stats = InMemoryItemStats(100)
    stats.record_shows(["i5"] * 10)
    for _ in range(8):
        stats.record_reward("i5", 1.0)
    policy = policy_type(0.0, feedback_weight=2.0, stats=stats)
    assert policy.rank(context, top_k=1).indices.tolist() == [5]


def test_the_linear_model_learns_only_what_item_statistics_do_not_already_say():
    """The hybrid model: an item's own reward rate is the statistics' to learn, so rewards
    that this rate explains leave the shared model, which moves every similar item, alone."""
    context = make_context(dim=64, items=30)
    predicted = {}
    for stats in (InMemoryItemStats(100), None):
        policy = LinUCB(exploration=0.0, feedback_weight=0.01, seed=0, stats=stats)
        for _ in range(200):
            slate = policy.rank(context, top_k=1)
            policy.update(shown_item(context, int(slate.indices[0]), policy.name), 1.0)
        model = policy.models.model(64)
        top = context.vectors[slate.indices]
        predicted[stats is not None] = float(model.features(top, context.interest)[0] @ model.theta)
    assert predicted[False] > 0.5
    # What is left: the statistics' prior holds the rate down over the first few dozen shows.
    assert abs(predicted[True]) < 0.25 * predicted[False]


@pytest.mark.parametrize("name", ["linucb", "linear_thompson"])
def test_a_new_embedding_size_gets_its_own_model_and_the_old_one_is_kept(name):
    policy, old = EXPLORING[name](0), make_context(dim=16)
    for _ in range(5):
        slate = policy.rank(old, top_k=2)
        policy.update(shown_item(old, int(slate.indices[0]), slate.policy), 1.0)
    learned = policy.models.model(16).theta.copy()
    new = make_context(dim=8)
    slate = policy.rank(new, top_k=2)
    policy.update(shown_item(new, int(slate.indices[0]), slate.policy), 1.0)
    assert policy.models.sizes() == [16, 8]
    np.testing.assert_array_equal(policy.models.model(16).theta, learned)
    assert np.any(policy.models.model(8).theta)


@pytest.mark.parametrize("name", ["linucb", "linear_thompson"])
def test_zero_vectors_without_an_encoder_rank_by_relevance_and_teach_nothing(name):
    """What the ranker sends while no encoder is known: size-1 zero vectors, no interest."""
    policy, context = EXPLORING[name](0), make_context(dim=16)
    slate = policy.rank(context, top_k=2)
    policy.update(shown_item(context, int(slate.indices[0]), slate.policy), 1.0)
    learned = policy.models.model(16).theta.copy()
    relevance = np.array([0.0, 0.3, 0.1, 0.0, 0.2, 0.0])
    blind = RankContext("u", context.item_ids, np.zeros((ITEMS, 1), np.float32), None, relevance)
    for _ in range(3):
        slate = policy.rank(blind, top_k=3)
        assert slate.indices.tolist() == [1, 4, 2]
        assert slate.propensities.tolist() == [1.0, 1.0, 1.0]
        policy.update(shown_item(blind, 1, slate.policy), 1.0)
    assert policy.models.sizes() == [16]
    np.testing.assert_array_equal(policy.models.model(16).theta, learned)


@pytest.mark.parametrize("name", EXPLORING)
def test_concurrent_requests_keep_state_consistent(name):
    policy, context = EXPLORING[name](0), make_context(dim=64, items=50)

    def serve() -> None:
        for round_ in range(40):
            slate = policy.rank(context, top_k=5)
            policy.update(shown_item(context, int(slate.indices[round_ % 5]), slate.policy), 1.0)

    threads = [threading.Thread(target=serve) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if hasattr(policy, "stats"):
        assert policy.stats.total_shows == 4 * 40 * 5
    else:
        a_inv = policy.models.model(64).a_inv
        np.testing.assert_allclose(a_inv, a_inv.T)
        assert np.all(np.linalg.eigvalsh(a_inv) > 0)
