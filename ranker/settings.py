"""One typed settings object for the ranker, filled from defaults, then env vars, then CLI flags.

Every field `foo_bar` is settable as env var `RANKER_FOO_BAR` and as flag `--foo-bar`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from ranker.bandits.registry import PolicySpec
from ranker.interest import EvolvingInterestParams

ENV_PREFIX = "RANKER_"
# Defaults of the served interest model and policy live with them; the settings expose them.
_INTEREST = EvolvingInterestParams()
_POLICY = PolicySpec()


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 50051
    # Ranker processes sharing the port (ranker/workers.py); each serves about one core.
    workers: int = 1
    # With workers, worker i also listens on worker_port_base + i, for clients that balance
    # per request (gRPC round_robin over those ports); 0 for none.
    worker_port_base: int = 0
    triton_url: str = "localhost:8001"
    model_name: str = "bert_encoder"
    model_repository: Path = Path("model_repository")
    max_tokens: int = 128
    default_top_k: int = 10
    default_budget_ms: int = 1000
    # Kept from every budget for what happens outside the handler (transport, serialisation).
    budget_margin_ms: float = 5.0
    batch_wait_ms: float = 2.0
    late_grace_ms: float = 500.0
    # How often the ranker asks Triton for the newest ready encoder version (rollouts).
    model_poll_ms: float = 1000.0
    # Triton calls in flight at once; more texts wait in the ranker's queue, where they are
    # dropped when every request that wanted them is out of budget.
    triton_max_calls: int = 4
    max_in_flight: int = 256
    # The share of a request's budget_ms it may lose in gRPC core's queue before its handler
    # starts, as its gRPC deadline shows; more is refused. 1 for none.
    max_queued_share: float = 0.2
    # RPCs a ranker process holds at once, queued ones included; past it gRPC's asyncio server
    # answers RESOURCE_EXHAUSTED before the handler runs. 0 for no bound.
    max_concurrent_rpcs: int = 0
    cache_bytes: int = 256 * 1024 * 1024
    known_items: int = 200_000
    # A CSV of item_id,text loaded at start; empty for none.
    catalogue: str = ""
    issued_events_bytes: int = 256 * 1024 * 1024
    # Recency half-life of the short-term interest (the default model's); the long-term one
    # follows the user's slower taste, the repeat one how often they take an item again.
    half_life_hours: float = _INTEREST.short_half_life_hours
    long_half_life_hours: float = _INTEREST.long_half_life_hours
    repeat_half_life_hours: float = _INTEREST.repeat_half_life_hours
    # The served policy and its parameters: see ranker/bandits/registry.py for each one's
    # meaning; the defaults are PolicySpec's, tuned on the online replay (bench/replay.py).
    policy: str = _POLICY.policy
    ensemble_members: str = _POLICY.ensemble_members
    ab_split: str = _POLICY.ab_split
    split_salt: str = _POLICY.split_salt
    seed: int = _POLICY.seed
    feedback_weight: float = _POLICY.feedback_weight
    exploration: float = _POLICY.exploration
    epsilon: float = _POLICY.epsilon
    epsilon_decay: float = _POLICY.epsilon_decay
    temperature: float = _POLICY.temperature
    thompson_scale: float = _POLICY.thompson_scale
    ensemble_exploration: float = _POLICY.ensemble_exploration
    max_slate_reward: float = _POLICY.max_slate_reward
    discount: float = _POLICY.discount
    window: int = _POLICY.window
    ridge: float = _POLICY.ridge
    max_history: int = 500
    max_candidates: int = 1000
    max_top_k: int = 100
    max_text_chars: int = 1000
    max_id_chars: int = 256
    max_message_bytes: int = 4 * 1024 * 1024
    max_budget_ms: int = 60_000
    # Prometheus metrics on this HTTP port; 0 for none.
    metrics_port: int = 0
    # Also serve `ranker.bench.Echo/Echo`, a bare echo RPC that bench/load.py compares Rank with.
    echo_rpc: bool = False

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, int | float) and value < 0:
                raise ValueError(f"{field.name} must not be negative, got {value}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.worker_port_base and not 0 < self.worker_port_base <= 65536 - self.workers:
            raise ValueError(
                f"worker_port_base must leave room for {self.workers} ports below 65536, "
                f"got {self.worker_port_base}"
            )
        if self.max_queued_share > 1:
            raise ValueError(f"max_queued_share must be at most 1, got {self.max_queued_share}")
        if not 0 <= self.metrics_port < 65536:
            raise ValueError(f"metrics_port must be in 0..65535, got {self.metrics_port}")

    @classmethod
    def load(
        cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in fields(cls):
            raw = environ.get(ENV_PREFIX + field.name.upper())
            if raw is not None:
                values[field.name] = _parse(field, raw)
        flags = _parser().parse_args(argv)
        values.update({k: v for k, v in vars(flags).items() if v is not None})
        return cls(**values)


def _parse_bool(raw: str) -> bool:
    words = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
    if raw.lower() not in words:
        raise ValueError(f"{raw!r} is not one of {sorted(words)}")
    return words[raw.lower()]


def _field_type(field: dataclasses.Field) -> Callable[[str], object]:
    return {"str": str, "int": int, "float": float, "Path": Path, "bool": _parse_bool}[
        str(field.type)
    ]


def _parse(field: dataclasses.Field, raw: str) -> object:
    try:
        return _field_type(field)(raw)
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{field.name.upper()}: cannot read {raw!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ranker",
        description="Serve the ranker over gRPC. Every flag is also env var RANKER_<NAME>.",
    )
    for field in fields(Settings):
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            type=_field_type(field),
            default=None,
            help=f"default: {field.default}",
        )
    return parser
