"""Input validation shared by the sampling-baseline formulas (ValueErrors that name the fix)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike


def sample_count(k: int, minimum: int, what: str) -> None:
    """Raise when fewer than `minimum` samples are given."""
    if k < minimum:
        raise ValueError(f"{what} needs at least {minimum} sample(s), got {k}; pass every sample of the question")


def token_log_probs(token_log_probs: Sequence[Sequence[float]], what: str, minimum: int = 2) -> list[np.ndarray]:
    """Per-sample generation-time token log-probs as float64 arrays: finite, and never empty (EOS counts)."""
    arrays = [np.asarray(lp, dtype=np.float64) for lp in token_log_probs]
    sample_count(len(arrays), minimum, what)
    for k, lp in enumerate(arrays):
        if lp.ndim != 1:
            raise ValueError(f"{what}: sample {k} must be a flat list of token log-probs, got shape {lp.shape}")
        if lp.size == 0:
            raise ValueError(
                f"{what}: sample {k} has no token log-probs; every generated sample has at least its EOS token, "
                "include the EOS log-prob"
            )
        if not np.all(np.isfinite(lp)):
            raise ValueError(f"{what}: sample {k} has a non-finite token log-prob; sampled tokens have finite ones")
    return arrays


def vector(values: ArrayLike, what: str, length: int | None = None) -> np.ndarray:
    """A finite 1-D float64 array, of `length` when given."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {array.shape}")
    if length is not None and array.size != length:
        raise ValueError(f"{what} must have one value per sample ({length}), got {array.size}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains NaN or inf; pass finite values")
    return array


def square_matrix(matrix: ArrayLike, what: str, size: int | None = None) -> np.ndarray:
    """A 2-D square float64 array, of side `size` when given (finiteness is left to the caller)."""
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(f"{what} must be a square K x K matrix, got shape {array.shape}")
    if size is not None and array.shape[0] != size:
        raise ValueError(f"{what} must be {size} x {size} (one row per sample), got {array.shape}")
    return array


def in_unit_interval(array: np.ndarray, what: str) -> None:
    """Raise unless every value is finite and in [0, 1]."""
    if not np.all(np.isfinite(array)) or np.any(array < 0) or np.any(array > 1):
        raise ValueError(f"{what} must hold finite probabilities/similarities in [0, 1]")
