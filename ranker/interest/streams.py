"""The default interest model: repeats and new items as two streams, merged by a learned
probability of being taken next.

Items the user took before (the repeat stream: their repeat frequency, recency and similarity to
the rest of the history) and new items (the discovery stream: their similarity to single history
items and to the short-term interest) each get a logistic probability of being in the next
basket. Both streams also read the user's habits (how often they take an item again, how many
and how large their baskets are), so a heavy re-buyer's old items rise above close new items
and a user who rarely repeats sees close new items first; and a learned prior on the candidate's
text (its embedding times per-stream content weights: which kinds of items people take again,
which they try), which applies only to embeddings of the encoder it was fitted with (its
fingerprint, ranker/encoder_identity.py, is stored with the weights).

The weights are fitted on earlier invoices than any evaluated one (stream_weights.json;
`bench/evaluate.py --refit` refits them). `discovery_shift` adds log-odds to new items: it trades
accuracy on all items for accuracy on the new ones and is chosen on a validation split.

Relevance is the probability, in [0, 1]: the same unit as the reward rate whose lift (about
-0.1 to 0.9, times feedback_weight) the policies add, so one observed reward moves an item as
far as a comparable change in its chance of being taken.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache, cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .base import EVENT_WEIGHTS, HistoryEvent
from .evolving import EvolvingInterest, EvolvingInterestParams, EvolvingProfile
from .repeat import HABITS

REPEAT_PARTS = ("frequency", "recent", "similarity", *HABITS)
DISCOVERY_PARTS = ("similarity", "interest", *HABITS)
WEIGHTS_PATH = Path(__file__).with_name("stream_weights.json")
CONTENT_LISTS = ("repeat_content", "discovery_content")
WEIGHT_LISTS = ("repeat", "discovery", *CONTENT_LISTS)
# The parts that differ per candidate, the content priors last: both streams weigh them in one
# product, each prior by 1.0 in its own stream and 0.0 in the other.
CANDIDATE_PARTS = ("frequency", "recent", "similarity", "interest", *CONTENT_LISTS)


class LogOdds(NamedTuple):
    """The streams' weights arranged for `stream_probability`."""

    # Per candidate part (a row), its weight in the repeat and in the discovery stream.
    slopes: np.ndarray
    # Per habit, its name and its weights in the two streams.
    habits: tuple[tuple[str, float, float], ...]
    # The repeat and the discovery bias, the latter shifted.
    biases: tuple[float, float]


@dataclass(frozen=True)
class StreamWeights:
    """Logistic weights per stream: the bias first, then one per part in REPEAT_PARTS /
    DISCOVERY_PARTS; the content weights multiply the candidate's embedding (empty: none)."""

    repeat: tuple[float, ...]
    discovery: tuple[float, ...]
    repeat_content: tuple[float, ...] = ()
    discovery_content: tuple[float, ...] = ()
    discovery_shift: float = 0.0
    # The fingerprint of the encoder the content weights were fitted with; "" for any encoder
    # whose embeddings have their size.
    encoder: str = ""

    @cached_property
    def content_arrays(self) -> dict[str, np.ndarray]:
        """The content weights as arrays, made once: converting 384 floats on every request
        took as long as scoring with them. In the embeddings' precision, float32: the weights
        are stored to five decimals."""
        return {name: np.asarray(getattr(self, name), dtype=np.float32) for name in CONTENT_LISTS}

    @cached_property
    def log_odds(self) -> LogOdds:
        repeat = dict(zip(("bias", *REPEAT_PARTS), self.repeat, strict=True))
        discovery = dict(zip(("bias", *DISCOVERY_PARTS), self.discovery, strict=True))
        repeat["repeat_content"] = discovery["discovery_content"] = 1.0
        return LogOdds(
            np.array(
                [[repeat.get(name, 0.0), discovery.get(name, 0.0)] for name in CANDIDATE_PARTS]
            ),
            tuple((name, repeat[name], discovery[name]) for name in HABITS),
            (repeat["bias"], discovery["bias"] + self.discovery_shift),
        )

    def for_encoder(self, encoder: str) -> StreamWeights:
        """These weights, without the content prior unless `encoder` made the embeddings it
        was fitted on ("" for an unknown encoder)."""
        if not self.encoder or self.encoder == encoder:
            return self
        return replace(self, repeat_content=(), discovery_content=())

    def save(self, path: Path, note: str) -> None:
        stored = {
            "note": note,
            "repeat_parts": list(REPEAT_PARTS),
            "discovery_parts": list(DISCOVERY_PARTS),
            "discovery_shift": round(self.discovery_shift, 4),
            "encoder": self.encoder,
            **{name: [round(w, 5) for w in getattr(self, name)] for name in WEIGHT_LISTS},
        }
        path.write_text(json.dumps(stored) + "\n")

    @classmethod
    def load(cls, path: Path) -> StreamWeights:
        """Raises ValueError when the file was fitted for other parts than this code reads."""
        stored = json.loads(path.read_text())
        if (stored["repeat_parts"], stored["discovery_parts"]) != (
            list(REPEAT_PARTS),
            list(DISCOVERY_PARTS),
        ):
            raise ValueError(f"{path} was fitted on other parts; refit it")
        return cls(
            **{name: tuple(stored[name]) for name in WEIGHT_LISTS},
            discovery_shift=float(stored["discovery_shift"]),
            encoder=stored.get("encoder", ""),
        )


@cache
def fitted_weights() -> StreamWeights:
    return StreamWeights.load(WEIGHTS_PATH)


def content_parts(vectors: np.ndarray, weights: StreamWeights) -> dict[str, np.ndarray]:
    """Each stream's learned prior per row of `vectors`; 0 for embeddings of another size (the
    weights belong to one encoder) and for rows without content."""
    parts = {}
    for name, weighted in weights.content_arrays.items():
        content = weighted.astype(vectors.dtype, copy=False)
        fits = vectors.ndim == 2 and vectors.shape[1] == len(content)
        parts[name] = (vectors @ content).astype(np.float64) if fits else np.zeros(len(vectors))
    return parts


def stream_probability(
    parts: Mapping[str, np.ndarray | float], weights: StreamWeights
) -> np.ndarray:
    """Each candidate's probability from its own stream: repeat if the user took it, else
    discovery (plus the shift). `parts` holds the profile's scores, the user's habits (arrays
    or one number each) and `content_parts`: arrays of any shape, one value per candidate."""
    slopes, habits, (repeat_bias, discovery_bias) = weights.log_odds
    # A habit that is one number for every candidate joins the bias: the same sums, in the same
    # order, as with that number repeated per candidate, so serving gets the bits fitting got.
    for name, to_repeat, to_discovery in habits:
        repeat_bias = repeat_bias + to_repeat * parts[name]
        discovery_bias = discovery_bias + to_discovery * parts[name]
    # Transposed, the streams are the last axis whatever the parts' shape: one product for
    # both streams and all candidates.
    per_candidate = np.array([parts[name] for name in CANDIDATE_PARTS]).T
    both = per_candidate @ slopes + np.array([repeat_bias, discovery_bias]).T
    chosen = np.where(parts["known"].T > 0.0, both[..., 0], both[..., 1]).T
    return 1.0 / (1.0 + np.exp(-chosen))


@dataclass(frozen=True)
class TwoStreamProfile:
    vector: np.ndarray | None
    evolving: EvolvingProfile
    weights: StreamWeights

    def relevance(self, item_ids: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        # The habits as the user's numbers, not repeated per candidate: it saves a dozen array
        # operations a request and sums to the same bits.
        parts = (
            self.evolving.scores(item_ids, vectors)
            | self.evolving.repeats.habits
            | content_parts(vectors, self.weights)
        )
        return stream_probability(parts, self.weights)


class TwoStreamInterest:
    """The evolving model's profile (vector, drift, short- and long-term interest unchanged)
    with relevance from the two fitted streams."""

    def __init__(
        self,
        weights: StreamWeights | None = None,
        params: EvolvingInterestParams | None = None,
        event_weights: Mapping[int, float] = EVENT_WEIGHTS,
    ) -> None:
        self.weights = weights or fitted_weights()
        self.evolving = EvolvingInterest(params, event_weights)

    @property
    def params(self) -> EvolvingInterestParams:
        return self.evolving.params

    def profile(
        self, events: Sequence[HistoryEvent], vectors: np.ndarray, encoder: str = ""
    ) -> TwoStreamProfile:
        evolving = self.evolving.profile(events, vectors)
        return TwoStreamProfile(evolving.vector, evolving, self.weights.for_encoder(encoder))
