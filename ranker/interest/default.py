"""The interest model the ranker serves, built from the settings."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .evolving import EvolvingInterest, EvolvingInterestParams

if TYPE_CHECKING:
    from ranker.settings import Settings


def default_interest_model(settings: Settings) -> EvolvingInterest:
    return EvolvingInterest(
        replace(
            EvolvingInterestParams(),
            short_half_life_hours=settings.half_life_hours,
            long_half_life_hours=settings.long_half_life_hours,
            repeat_half_life_hours=settings.repeat_half_life_hours,
            repeat_boost=settings.repeat_boost,
            similarity_weight=settings.similarity_weight,
        )
    )
