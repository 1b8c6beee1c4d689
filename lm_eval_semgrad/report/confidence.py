"""Calibrated confidence in a report (`report --confidence`): honest P(correct) per method and how good it is.

A thin layer over `metrics.confidence`: the probabilities come from `cross_fit_probabilities` (no
answer's probability from a map that saw its label), the metrics and their CIs from
`calibration_metrics`, which holds the fitted map fixed. Where the metrics cannot be computed
(results JSON only, too few answers for the folds, a single class) the result carries the reason
instead of a number, so the report can say why a cell is empty.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..metrics import BootstrapResult, brier, calibration_metrics, cross_fit_probabilities, ece, log_loss
from ..metrics import selective_accuracy as _selective_accuracy
from ..metrics.confidence import CALIBRATION_METRIC_NAMES, MAP_METHODS, SELECTIVE_PERCENTS

__all__ = [
    "CONFIDENCE_METHODS",
    "CONFIDENCE_NAMES",
    "CONFIDENCE_LABELS",
    "CONFIDENCE_HIGHER_IS_BETTER",
    "ConfidenceSettings",
    "ConfidenceResult",
    "evaluate_confidence",
    "unavailable",
]

CONFIDENCE_METHODS = MAP_METHODS
_COVERAGES = SELECTIVE_PERCENTS
CONFIDENCE_NAMES = CALIBRATION_METRIC_NAMES
CONFIDENCE_LABELS = {
    "ece": "ECE", "brier": "Brier", "log_loss": "Log loss",
    **{f"selective_accuracy_{k}": f"Sel. acc @{k}%" for k in _COVERAGES},
}
CONFIDENCE_HIGHER_IS_BETTER = {name: name.startswith("selective_accuracy") for name in CONFIDENCE_NAMES}


@dataclass(frozen=True)
class ConfidenceSettings:
    """How the cross-fitted map is built and binned (the `--confidence_*` options)."""

    method: Literal["isotonic", "platt"] = "isotonic"
    folds: int = 5
    seed: int = 0
    bins: int = 10


@dataclass
class ConfidenceResult:
    """One method's calibration metrics in one row; `reason` says why some or all are NaN."""

    metrics: dict[str, BootstrapResult]
    probabilities: np.ndarray | None = None  # cross-fitted P(correct) per scored answer, for the plots
    reason: str | None = None

    def value(self, name: str) -> float:
        result = self.metrics.get(name)
        return math.nan if result is None else result.value


def _nan_result(n: int) -> BootstrapResult:
    return BootstrapResult(math.nan, math.nan, math.nan, math.nan, n, 0)


def unavailable(reason: str, n: int = 0) -> ConfidenceResult:
    """Every metric NaN, with the reason the report shows in its place."""
    return ConfidenceResult({name: _nan_result(n) for name in CONFIDENCE_NAMES}, None, reason)


def _point_only(u: np.ndarray, c: np.ndarray, p: np.ndarray, bins: int) -> dict[str, BootstrapResult]:
    """`calibration_metrics` without intervals (`--bootstrap_iters 0`), from the same probabilities."""
    values: dict[str, float] = {}
    if not np.isnan(p).any():  # cross-fitting gives all NaN or none
        values = {"ece": ece(p, c, bins), "brier": brier(p, c), "log_loss": log_loss(p, c)}
    for k in _COVERAGES:
        values[f"selective_accuracy_{k}"] = _selective_accuracy(u, c, k / 100)
    return {name: BootstrapResult(values.get(name, math.nan), math.nan, math.nan, math.nan, len(u), 0)
            for name in CONFIDENCE_NAMES}


def _reason(messages: list[str]) -> str | None:
    texts = [m.removesuffix("; returning nan") for m in dict.fromkeys(messages)]
    return "; ".join(texts) or None


def evaluate_confidence(
    uncertainty: np.ndarray, correct: np.ndarray, settings: ConfidenceSettings, *,
    n_bootstrap: int, seed: int, confidence: float = 0.95,
) -> ConfidenceResult:
    """Cross-fitted probabilities and their metrics for one method's clean (NaN-free) scores."""
    n = len(uncertainty)
    if n < 2 * settings.folds:
        return unavailable(
            f"too few answers for --confidence_folds {settings.folds}: cross-fitting needs at least "
            f"{2 * settings.folds} (2 per fold), this method has {n}; lower --confidence_folds", n
        )
    method, folds, fold_seed = settings.method, settings.folds, settings.seed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            p = cross_fit_probabilities(uncertainty, correct, method=method, folds=folds, seed=fold_seed, nan_policy="raise")
            if n_bootstrap:
                metrics = calibration_metrics(
                    uncertainty, correct, method=method, folds=folds, seed=fold_seed, bins=settings.bins,
                    n_resamples=n_bootstrap, bootstrap_seed=seed, confidence=confidence, nan_policy="raise",
                )
            else:
                metrics = _point_only(uncertainty, correct, p, settings.bins)
        except ValueError as exc:  # e.g. infinite scores, which no map can be fitted on
            return unavailable(str(exc), n)
    undefined = np.isnan(p).any()
    return ConfidenceResult(metrics, None if undefined else p, _reason([str(w.message) for w in caught]))
