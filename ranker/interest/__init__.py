"""The user's interest, built from their history, and how relevant each candidate is to it."""

from .base import EVENT_WEIGHTS, CosineProfile, HistoryEvent, InterestModel, UserProfile
from .default import default_interest_model, interest_params
from .evolving import EvolvingInterest, EvolvingInterestParams, EvolvingProfile
from .recency import RecencyWeightedInterest
from .streams import StreamWeights, TwoStreamInterest, TwoStreamProfile

__all__ = [
    "EVENT_WEIGHTS",
    "CosineProfile",
    "EvolvingInterest",
    "EvolvingInterestParams",
    "EvolvingProfile",
    "HistoryEvent",
    "InterestModel",
    "RecencyWeightedInterest",
    "StreamWeights",
    "TwoStreamInterest",
    "TwoStreamProfile",
    "UserProfile",
    "default_interest_model",
    "interest_params",
]
