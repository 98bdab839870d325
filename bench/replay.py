"""Online replay on real transactions: each policy serves every invoice, in time order, and
learns from what was bought.

At each invoice of the chosen customers the ranker ranks that invoice's distinct items plus
negatives drawn by popularity (shuffled, so no target gains from its place) for the customer
with their history so far; each top-k item bought in that invoice earns reward 1, sent back as
Feedback. The real ranking path runs in process: a `RankingService` per policy, with its own
state, fed real RankRequest and FeedbackRequest messages; only the encoder is replaced by the
cached embeddings of bench/next_basket (the same model, run once). Every policy sees exactly the
same requests. Prints and writes cumulative reward per policy and for the ensemble to
bench/results/replay.{json,png}.

    python bench/replay.py [--data PATH] [--customer-col ...] [--max-customers N] [--seed 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from next_basket.data import Columns, Transactions, load_transactions
from next_basket.embeddings import cached_embeddings
from next_basket.protocol import invoice_popularity, sample_negatives

from ranker.bandits.ensemble import WITH_INTEREST, WITHOUT_INTEREST
from ranker.bandits.linear_policy import LinearPolicy
from ranker.bandits.registry import (
    ENSEMBLE,
    PolicySpec,
    build_member,
    build_policy,
    parse_members,
    pinnable_names,
)
from ranker.budget import Deadline
from ranker.embeddings import Embeddings
from ranker.interest import default_interest_model
from ranker.service import RankingService
from ranker.settings import Settings
from ranker.v1 import ranker_pb2

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "online_retail_ii_2009_2010.parquet"
RESULTS = ROOT / "bench" / "results"
MODEL_VERSION = "bert_encoder:cached"


class CachedEmbedder:
    """A `TextEmbedder` over precomputed vectors: the served encoder's output, without Triton."""

    def __init__(self, texts: Sequence[str], vectors: np.ndarray, encoder: str = "") -> None:
        """`encoder`: the fingerprint of the version that made `vectors`."""
        self._rows = {text: row for row, text in enumerate(texts)}
        self._vectors = vectors
        self.encoder = encoder

    async def embed(self, texts: Sequence[str], deadline: Deadline) -> Embeddings:
        rows = np.array([self._rows.get(text, -1) for text in texts], dtype=np.int64)
        missing = rows < 0
        vectors = self._vectors[np.maximum(rows, 0)]
        vectors[missing] = 0.0
        return Embeddings(MODEL_VERSION, vectors, missing, encoder=self.encoder)


@dataclass(frozen=True)
class Visit:
    """One invoice to rank for: who, when, what they bought, what they are offered."""

    customer: str
    time_s: float
    bought: frozenset[str]
    request: ranker_pb2.RankRequest


def visits(
    transactions: Transactions,
    min_invoices: int,
    max_customers: int,
    negatives: int,
    top_k: int,
    max_history: int,
    seed: int,
) -> Iterator[Visit]:
    """Every invoice of the chosen customers in time order, with the history before it."""
    rng = np.random.default_rng(seed)
    popularity = invoice_popularity(transactions)
    invoices_per_customer: dict[str, set[str]] = {}
    for customer, invoice in zip(transactions.customers, transactions.invoices, strict=True):
        invoices_per_customer.setdefault(customer, set()).add(invoice)
    eligible = sorted(c for c, inv in invoices_per_customer.items() if len(inv) >= min_invoices)
    if max_customers:
        eligible = sorted(
            rng.choice(eligible, size=min(max_customers, len(eligible)), replace=False)
        )
    chosen = set(eligible)
    rows = np.flatnonzero([c in chosen for c in transactions.customers])
    if not len(rows):
        return
    history: dict[str, list[ranker_pb2.BehaviorEvent]] = {}
    # Rows are sorted by (time, invoice), so each invoice's rows are contiguous.
    starts = np.flatnonzero(
        np.r_[True, transactions.invoices[rows][1:] != transactions.invoices[rows][:-1]]
    )
    for start, stop in zip(starts, np.r_[starts[1:], len(rows)], strict=True):
        invoice_rows = rows[start:stop]
        customer = str(transactions.customers[invoice_rows[0]])
        bought = np.unique(transactions.items[invoice_rows])
        offered = np.concatenate([bought, sample_negatives(popularity, bought, negatives, rng)])
        offered = offered[rng.permutation(len(offered))]
        past = history.setdefault(customer, [])
        yield Visit(
            customer,
            float(transactions.times[invoice_rows[0]]),
            frozenset(transactions.item_ids[i] for i in bought),
            ranker_pb2.RankRequest(
                user_id=customer,
                history=past[-max_history:],
                candidates=[
                    ranker_pb2.Item(
                        item_id=transactions.item_ids[i], text=transactions.item_texts[i]
                    )
                    for i in offered
                ],
                top_k=top_k,
            ),
        )
        stamp = Timestamp(seconds=int(transactions.times[invoice_rows[0]]))
        past.extend(
            ranker_pb2.BehaviorEvent(
                item=ranker_pb2.Item(
                    item_id=transactions.item_ids[i], text=transactions.item_texts[i]
                ),
                type=ranker_pb2.EVENT_TYPE_PURCHASE,
                time=stamp,
            )
            for i in bought
        )


async def serve_one(service: RankingService, visit: Visit) -> tuple[float, str]:
    """Ranks the visit, sends Feedback for each bought item in the slate; (reward, policy)."""
    response = await service.rank(visit.request, None)
    reward = 0.0
    for item in response.items:
        if item.item_id in visit.bought:
            service.feedback(
                ranker_pb2.FeedbackRequest(
                    event_id=response.event_id, item_id=item.item_id, reward=1.0
                )
            )
            reward += 1.0
    return reward, response.policy


async def replay(
    services: dict[str, RankingService], stream: Iterator[Visit]
) -> tuple[dict[str, list[float]], dict[str, dict[str, int]]]:
    """Per run: the reward of each visit, and for each run how often each member served."""
    rewards: dict[str, list[float]] = {name: [] for name in services}
    served: dict[str, dict[str, int]] = {name: {} for name in services}
    for visit in stream:
        for name, service in services.items():
            reward, policy = await serve_one(service, visit)
            rewards[name].append(reward)
            served[name][policy] = served[name].get(policy, 0) + 1
    return rewards, served


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = Columns()
    spec = PolicySpec()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    for name in ("customer", "item", "text", "time", "invoice", "quantity"):
        parser.add_argument(f"--{name}-col", default=getattr(defaults, name))
    parser.add_argument("--min-invoices", type=int, default=5)
    parser.add_argument("--max-customers", type=int, default=0, help="0 for all")
    parser.add_argument("--negatives", type=int, default=100)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--members",
        default=spec.ensemble_members,
        help="the ensemble's members, each also replayed alone",
    )
    parser.add_argument(
        "--others", default="", help="policies replayed alone too, though not in the ensemble"
    )
    parser.add_argument("--ensemble-exploration", type=float, default=spec.ensemble_exploration)
    parser.add_argument("--feedback-weight", type=float, default=spec.feedback_weight)
    parser.add_argument("--exploration", type=float, default=spec.exploration)
    parser.add_argument(
        "--discount", type=float, default=spec.discount, help="of the _discounted policies"
    )
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "embeddings")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def build_services(
    settings: Settings, embedder: CachedEmbedder, spec: PolicySpec, others: Sequence[str] = ()
) -> dict[str, RankingService]:
    """One service per run, each member alone, the `others` alone and the ensemble, so no state
    is shared."""
    members = parse_members(spec.ensemble_members)
    names = [*members, *(name for name in others if name not in members), ENSEMBLE]
    services = {}
    for name in names:
        policy = build_policy(PolicySpec(**{**vars(spec), "policy": name}))
        services[name] = RankingService(
            settings,
            embedder,
            default_interest_model(settings),
            policy,
            pinnable=pinnable_names(policy),
        )
    return services


def plot(rewards: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The runs differ by a few percent: the right panel shows each against their mean.
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    cumulative = {name: np.cumsum(series) for name, series in rewards.items()}
    mean = np.mean(list(cumulative.values()), axis=0)
    for name, series in cumulative.items():
        width = 2.5 if name == ENSEMBLE else 1.2
        left.plot(series, label=name, linewidth=width)
        right.plot(series - mean, label=name, linewidth=width)
    left.set_ylabel("cumulative reward (bought items in the top 10)")
    right.set_ylabel("cumulative reward minus the mean of all runs")
    for axis in (left, right):
        axis.set_xlabel("invoice (time order)")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def summary(
    rewards: dict[str, list[float]], members_of: Sequence[str]
) -> dict[str, float | bool | str]:
    """The targets: the ensemble against its best member, and against every replayed policy
    that is not contextual, member or not."""
    totals = {name: float(sum(series)) for name, series in rewards.items()}
    members = {name: total for name, total in totals.items() if name in members_of}
    best = max(members, key=members.get)
    contextual = {
        name
        for name in totals
        if name != ENSEMBLE and isinstance(build_member(PolicySpec(), name), LinearPolicy)
    }
    return {
        "best_member": best,
        "ensemble_over_best_member": totals[ENSEMBLE] / max(members[best], 1e-9),
        "ensemble_beats_every_non_contextual_policy": all(
            totals[ENSEMBLE] > total
            for name, total in totals.items()
            if name not in contextual and name != ENSEMBLE
        ),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    columns = Columns(
        args.customer_col,
        args.item_col,
        args.text_col,
        args.time_col,
        args.invoice_col,
        args.quantity_col,
    )
    try:
        spec = PolicySpec(
            ensemble_members=args.members,
            ensemble_exploration=args.ensemble_exploration,
            feedback_weight=args.feedback_weight,
            exploration=args.exploration,
            discount=args.discount,
            seed=args.seed,
        )
        others = parse_members(args.others) if args.others.strip() else []
        for name in [*others, ENSEMBLE]:  # refuses unknown names before the data is read
            build_policy(PolicySpec(**{**vars(spec), "policy": name}))
        transactions = load_transactions(args.data, columns)
    except (ValueError, OSError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    vectors, encoder = cached_embeddings(args.repository, args.cache_dir, transactions.item_texts)
    settings = Settings()
    embedder = CachedEmbedder(transactions.item_texts, vectors, encoder)
    services = build_services(settings, embedder, spec, others)
    stream = visits(
        transactions,
        args.min_invoices,
        args.max_customers,
        args.negatives,
        args.top_k,
        settings.max_history,
        args.seed,
    )
    cold_visits: list[bool] = []
    rewards, served = asyncio.run(
        replay(services, (cold_visits.append(not v.request.history) or v for v in stream))
    )
    if not rewards[ENSEMBLE]:
        print("error: no customer has enough invoices", file=sys.stderr)
        return 2
    totals = {name: sum(series) for name, series in rewards.items()}
    cold = np.array(cold_visits)
    by_segment = {
        name: {
            "without_history": float(np.sum(np.array(series)[cold])),
            "with_history": float(np.sum(np.array(series)[~cold])),
        }
        for name, series in rewards.items()
    }
    print(f"{'policy':<26}{'reward':>10}{'per invoice':>13}")
    for name, total in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"{name:<26}{total:>10.0f}{total / len(rewards[name]):>13.3f}")
    report = {
        "data": str(args.data),
        "invoices": len(rewards[ENSEMBLE]),
        "max_customers": args.max_customers,
        "min_invoices": args.min_invoices,
        "negatives": args.negatives,
        "top_k": args.top_k,
        "spec": vars(spec),
        "cumulative_reward": totals,
        "visits_without_history": int(cold.sum()),
        "cumulative_reward_by_segment": by_segment,
        "ensemble_slates_per_member": served[ENSEMBLE],
        "ensemble_probabilities": {
            segment: services[ENSEMBLE].policy.probabilities(segment)
            for segment in (WITH_INTEREST, WITHOUT_INTEREST)
        },
        **summary(rewards, parse_members(spec.ensemble_members)),
        "runtime_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps({k: report[k] for k in ("ensemble_over_best_member", "best_member")}))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "replay.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(rewards, args.out / "replay.png")
    print(f"{report['runtime_s']} s; wrote {args.out / 'replay.json'} and replay.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
