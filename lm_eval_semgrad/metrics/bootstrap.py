"""Percentile-bootstrap confidence intervals for the uncertainty metrics.

Benchmark samples are finite, so a metric difference between two uncertainty
methods is only meaningful next to its sampling noise; the bootstrap gives
that without distributional assumptions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .uncertainty import (
    _BATCH_KERNELS,
    METRICS,
    NanPolicy,
    UndefinedMetricWarning,
    _validate,
)

__all__ = ["BootstrapResult", "bootstrap_ci", "evaluate_uncertainty"]

MetricFn = Callable[..., float]

# Cap on resamples x samples materialised at once, to bound memory (~16 MB
# per float64 array) for large evaluation sets.
_MAX_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class BootstrapResult:
    """Point estimate with a percentile-bootstrap confidence interval.

    ``value`` is the metric on the full data; ``low``/``high`` the CI bounds;
    ``stderr`` the bootstrap standard deviation (ddof=1); ``n`` the number of
    samples evaluated (after NaN omission); ``n_resamples_used`` the number of
    resamples on which the metric was defined.
    """

    value: float
    low: float
    high: float
    stderr: float
    n: int
    n_resamples_used: int


def _resolve(metric_fn: str | MetricFn) -> MetricFn:
    if isinstance(metric_fn, str):
        try:
            return METRICS[metric_fn]
        except KeyError:
            raise ValueError(
                f"unknown metric {metric_fn!r}; expected one of {sorted(METRICS)}"
            ) from None
    if not callable(metric_fn):
        raise TypeError(f"metric_fn must be a metric name or callable, got {metric_fn!r}")
    return metric_fn


def _resample_values(
    metric_fn: MetricFn, u: np.ndarray, c: np.ndarray, n_resamples: int, seed: int
) -> np.ndarray:
    """Metric on each bootstrap resample (NaN where undefined)."""
    rng = np.random.default_rng(seed)
    n = len(u)
    kernel = _BATCH_KERNELS.get(metric_fn)
    chunk = max(1, min(n_resamples, _MAX_CHUNK_ELEMENTS // n))
    out = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        if kernel is not None:
            out[start:stop] = kernel(u[idx], c[idx])
        else:  # arbitrary user metric: plain loop, undefined -> NaN
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UndefinedMetricWarning)
                for k, row in enumerate(idx, start=start):
                    out[k] = float(metric_fn(u[row], c[row]))
    return out


def _bootstrap_clean(
    metric_fn: MetricFn,
    u: np.ndarray,
    c: np.ndarray,
    n_resamples: int,
    seed: int,
    confidence: float,
) -> BootstrapResult:
    n = len(u)
    value = float(metric_fn(u, c))  # warns itself if undefined
    if np.isnan(value):
        return BootstrapResult(value, np.nan, np.nan, np.nan, n, 0)

    values = _resample_values(metric_fn, u, c, n_resamples, seed)
    valid = values[~np.isnan(values)]
    used = int(valid.size)
    name = getattr(metric_fn, "__name__", repr(metric_fn))
    if used < max(2, n_resamples / 2):
        warnings.warn(
            f"{name}: only {used} of {n_resamples} bootstrap resamples had a defined "
            "metric (e.g. a single class); confidence interval is nan",
            UndefinedMetricWarning,
            stacklevel=3,
        )
        return BootstrapResult(value, np.nan, np.nan, np.nan, n, used)

    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(valid, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return BootstrapResult(
        value=value,
        low=float(low),
        high=float(high),
        stderr=float(np.std(valid, ddof=1)),
        n=n,
        n_resamples_used=used,
    )


def _check_params(n_resamples: int, confidence: float) -> None:
    if int(n_resamples) != n_resamples or n_resamples < 2:
        raise ValueError(f"n_resamples must be an integer >= 2, got {n_resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def bootstrap_ci(
    metric_fn: str | MetricFn,
    uncertainty: ArrayLike,
    correct: ArrayLike,
    *,
    n_resamples: int = 1000,
    seed: int = 1234,
    confidence: float = 0.95,
    nan_policy: NanPolicy = "raise",
) -> BootstrapResult:
    """Percentile bootstrap CI of ``metric_fn(uncertainty, correct)``.

    Samples are resampled with replacement (``np.random.default_rng(seed)``).
    Resamples where the metric is undefined (e.g. a single class) are
    skipped; if fewer than half are valid, low/high/stderr are NaN and an
    :class:`UndefinedMetricWarning` is emitted.  Built-in metrics (or their
    names) are evaluated vectorised over resamples; any other callable
    ``f(u, c) -> float`` works too, via a loop.
    """
    _check_params(n_resamples, confidence)
    fn = _resolve(metric_fn)
    u, c = _validate(uncertainty, correct, nan_policy, stacklevel=2)
    return _bootstrap_clean(fn, u, c, int(n_resamples), seed, confidence)


def evaluate_uncertainty(
    uncertainty: ArrayLike,
    correct: ArrayLike,
    *,
    metrics: Iterable[str] = ("auroc", "auprc", "aurc", "prr", "spearman"),
    n_resamples: int = 1000,
    seed: int = 1234,
    nan_policy: NanPolicy = "omit",
    confidence: float = 0.95,
) -> dict[str, BootstrapResult]:
    """All requested metrics with bootstrap CIs, keyed by metric name.

    Input is validated once (NaN scores dropped with a warning by default,
    since a failed uncertainty computation shouldn't sink a whole report).
    Every metric uses the same seed, hence the same resamples.
    """
    names = list(metrics)
    for name in names:
        _resolve(name)  # fail fast on typos
    _check_params(n_resamples, confidence)
    u, c = _validate(uncertainty, correct, nan_policy, stacklevel=2)
    return {
        name: _bootstrap_clean(METRICS[name], u, c, int(n_resamples), seed, confidence)
        for name in names
    }
