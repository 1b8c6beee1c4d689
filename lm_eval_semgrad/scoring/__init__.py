"""Harness-independent uncertainty scores from one teacher-forced forward and one partial backward pass."""

from .core import SCORE_KEYS, score, score_with_prefix_cache
from .model_access import upper_half_layers

__all__ = ["SCORE_KEYS", "score", "score_with_prefix_cache", "upper_half_layers"]
