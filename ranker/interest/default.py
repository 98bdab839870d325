"""The interest model the ranker serves, built from the settings."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .evolving import EvolvingInterestParams
from .streams import TwoStreamInterest

if TYPE_CHECKING:
    from ranker.settings import Settings


def interest_params(settings: Settings) -> EvolvingInterestParams:
    """The profile's parameters that the settings expose; the streams' weights were fitted with
    the defaults, so changing the half-lives calls for a refit (bench/evaluate.py --refit)."""
    return replace(
        EvolvingInterestParams(),
        short_half_life_hours=settings.half_life_hours,
        long_half_life_hours=settings.long_half_life_hours,
        repeat_half_life_hours=settings.repeat_half_life_hours,
    )


def default_interest_model(settings: Settings) -> TwoStreamInterest:
    """The two fitted streams: the model that met both of the evaluation's targets (beats
    buy-again over all items and plain text interest over new items), where the evolving
    model's single scale met only the first."""
    return TwoStreamInterest(params=interest_params(settings))
