"""Uncertainty-quality metrics: how well does an uncertainty score separate
correct from incorrect answers?

Conventions (shared by every metric here):

* ``uncertainty`` u_i: higher means *less* confident.
* ``correct`` c_i in {0, 1} (or bool).
* "Positive" class for the ranking metrics (AUROC, AUPRC) is the *incorrect*
  answers, because a good uncertainty score should rank errors above
  correct answers.

Every metric is implemented once as a vectorised "batch" kernel operating on
``(B, n)`` arrays (one row per bootstrap resample) that returns NaN where the
metric is undefined; the public scalar functions validate input, call the
kernel on a single row and turn NaN into an :class:`UndefinedMetricWarning`.
This keeps point estimates and bootstrap resamples bit-for-bit consistent.

Ties in ``uncertainty``:

* AUROC, AUPRC and Spearman are tie-aware (average ranks / one threshold per
  distinct score, exactly like scikit-learn and SciPy).
* AURC and PRR depend on an ordering of the samples; we use a *stable* sort on
  ``uncertainty``, so tied samples keep their input order.  Callers with
  many ties (e.g. discretised scores) should be aware that the result then
  depends on input order; it is not averaged over tie orderings.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "UndefinedMetricWarning",
    "auroc",
    "auprc",
    "aurc",
    "prr",
    "spearman",
    "METRICS",
    "HIGHER_IS_BETTER",
]

NanPolicy = Literal["raise", "omit"]


class UndefinedMetricWarning(UserWarning):
    """Metric is mathematically undefined for the given input (returns NaN)."""


# --------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------


def _as_1d(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 2 and arr.shape[1] == 1:  # column vector, like sklearn
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got array of shape {arr.shape}")
    return arr


def _describe_bad_labels(c_raw: np.ndarray, limit: int = 5) -> str:
    """Distinct offending label values, for the error message (slow path only)."""
    seen: dict[str, None] = {}
    for v in c_raw.tolist():
        ok = isinstance(v, (bool, int, float)) and (v == 0 or v == 1)
        if not ok:
            seen.setdefault(repr(v), None)
    bad = list(seen)
    return ", ".join(bad[:limit]) + (", ..." if len(bad) > limit else "")


def _validate(
    uncertainty: ArrayLike,
    correct: ArrayLike,
    nan_policy: NanPolicy = "raise",
    *,
    stacklevel: int = 2,
    name: str = "uncertainty",
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(u, c)`` as float64 arrays, checked like sklearn metrics do.

    ``+-inf`` scores are accepted (only their order matters, e.g. -log p with
    p == 0); NaN scores are handled per ``nan_policy``.  ``stacklevel`` is
    that of the *caller*, so the NaN-omission warning points
    at user code.  ``name`` is what the messages call the scores (the
    calibration metrics pass ``"probabilities"``)."""
    if nan_policy not in ("raise", "omit"):
        raise ValueError(f"nan_policy must be 'raise' or 'omit', got {nan_policy!r}")
    u_raw = _as_1d(uncertainty, name)
    c_raw = _as_1d(correct, "correct")
    if len(u_raw) != len(c_raw):
        raise ValueError(
            f"{name} and correct have inconsistent lengths: "
            f"len({name})={len(u_raw)}, len(correct)={len(c_raw)}"
        )
    if len(u_raw) == 0:
        raise ValueError(f"empty input: {name} and correct have 0 samples")

    if u_raw.dtype.kind not in "biufO":
        raise ValueError(f"{name} must be numeric, got dtype {u_raw.dtype}")
    try:
        u = u_raw.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, got dtype {u_raw.dtype}") from exc

    c = c_raw.astype(np.float64) if c_raw.dtype.kind in "biuf" else None
    if c is None or not np.all((c == 0) | (c == 1)):
        raise ValueError(
            "correct must be binary (0/1 or bool); found non-binary values: "
            f"[{_describe_bad_labels(c_raw)}]"
        )

    nan_mask = np.isnan(u)
    n_nan = int(nan_mask.sum())
    if n_nan:
        if nan_policy == "raise":
            raise ValueError(
                f"{name} contains {n_nan} NaN value(s) out of {len(u)}; "
                "pass nan_policy='omit' to drop those samples"
            )
        warnings.warn(
            f"dropping {n_nan} sample(s) with NaN {name} out of {len(u)} "
            "(nan_policy='omit')",
            UserWarning,
            stacklevel=stacklevel + 1,
        )
        keep = ~nan_mask
        u, c = u[keep], c[keep]
        if len(u) == 0:
            raise ValueError(f"all {name} values are NaN; nothing left to evaluate")
    return u, c


# --------------------------------------------------------------------------
# Vectorised kernels: inputs (B, n) float64, outputs (B,) with NaN if undefined
# --------------------------------------------------------------------------


def _group_bounds(sorted_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each position of a row-wise sorted array, first and last index of
    its run of equal values (used for tie handling)."""
    n = sorted_x.shape[1]
    idx = np.arange(n)
    new = np.ones(sorted_x.shape, dtype=bool)
    new[:, 1:] = sorted_x[:, 1:] != sorted_x[:, :-1]
    last = np.ones(sorted_x.shape, dtype=bool)
    last[:, :-1] = new[:, 1:]
    start = np.maximum.accumulate(np.where(new, idx, 0), axis=1)
    end = np.minimum.accumulate(np.where(last, idx, n - 1)[:, ::-1], axis=1)[:, ::-1]
    return start, end


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Row-wise 1-based ranks with ties given their average rank
    (scipy.stats.rankdata(method='average') along axis 1)."""
    order = np.argsort(x, axis=1, kind="stable")
    xs = np.take_along_axis(x, order, axis=1)
    start, end = _group_bounds(xs)
    ranks = np.empty(x.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, (start + end) / 2.0 + 1.0, axis=1)
    return ranks


def _auroc_batch(u: np.ndarray, c: np.ndarray) -> np.ndarray:
    # Mann-Whitney U of incorrect (positive) vs correct with average ranks.
    pos = c == 0
    n = u.shape[1]
    n1 = pos.sum(axis=1).astype(np.float64)
    n0 = n - n1
    r1 = np.where(pos, _average_ranks(u), 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (r1 - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    out[(n1 == 0) | (n0 == 0)] = np.nan
    return out


def _auprc_batch(u: np.ndarray, c: np.ndarray) -> np.ndarray:
    # sklearn's average precision: sum_k (R_k - R_{k-1}) P_k over distinct
    # thresholds.  Equivalently, each positive contributes the precision at
    # the end of its tie group (descending score), divided by #positives.
    order = np.argsort(-u, axis=1, kind="stable")
    us = np.take_along_axis(-u, order, axis=1)
    y = np.take_along_axis(c == 0, order, axis=1)
    n = u.shape[1]
    tps = np.cumsum(y, axis=1)
    precision = tps / np.arange(1, n + 1)
    _, end = _group_bounds(us)
    prec_at_end = np.take_along_axis(precision, end, axis=1)
    n_pos = tps[:, -1].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(y, prec_at_end, 0.0).sum(axis=1) / n_pos
    out[(n_pos == 0) | (n_pos == n)] = np.nan
    return out


def _aurc_batch(u: np.ndarray, c: np.ndarray) -> np.ndarray:
    # Most confident first (stable on ties); risk_k = error rate of first k.
    order = np.argsort(u, axis=1, kind="stable")
    err = 1.0 - np.take_along_axis(c, order, axis=1)
    n = u.shape[1]
    return (np.cumsum(err, axis=1) / np.arange(1, n + 1)).mean(axis=1)


def _mean_kept_quality(q_sorted: np.ndarray) -> np.ndarray:
    """Mean over rejection levels j=0..n-1 of the mean quality of the n-j
    items kept (q_sorted is most-confident first)."""
    n = q_sorted.shape[1]
    return (np.cumsum(q_sorted, axis=1) / np.arange(1, n + 1)).mean(axis=1)


def _prr_batch(u: np.ndarray, c: np.ndarray) -> np.ndarray:
    # LM-Polygraph PredictionRejectionArea, normalised to (raw-random)/(oracle-random).
    qmin = c.min(axis=1, keepdims=True)
    qmax = c.max(axis=1, keepdims=True)
    span = qmax - qmin
    degenerate = span[:, 0] == 0
    q = (c - qmin) / np.where(span == 0, 1.0, span)
    order = np.argsort(u, axis=1, kind="stable")
    raw = _mean_kept_quality(np.take_along_axis(q, order, axis=1))
    oracle = _mean_kept_quality(-np.sort(-q, axis=1))  # u = -q: best first
    random = q.mean(axis=1)  # expected kept-mean at every level
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (raw - random) / (oracle - random)
    out[degenerate] = np.nan
    return out


def _spearman_batch(u: np.ndarray, c: np.ndarray) -> np.ndarray:
    # Pearson correlation of average ranks == scipy.stats.spearmanr.
    ru = _average_ranks(u)
    rc = _average_ranks(1.0 - c)
    ru -= ru.mean(axis=1, keepdims=True)
    rc -= rc.mean(axis=1, keepdims=True)
    su = np.sqrt((ru * ru).sum(axis=1))
    sc = np.sqrt((rc * rc).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (ru * rc).sum(axis=1) / (su * sc)
    out[(su == 0) | (sc == 0)] = np.nan
    return np.clip(out, -1.0, 1.0)


# --------------------------------------------------------------------------
# Public scalar API
# --------------------------------------------------------------------------


def _undefined_reason(name: str, u: np.ndarray, c: np.ndarray) -> str:
    n = len(c)
    if np.all(c == 1):
        why = f"all {n} answers are correct"
    elif np.all(c == 0):
        why = f"all {n} answers are incorrect"
    elif np.all(u == u[0]):
        why = f"uncertainty is constant over all {n} samples"
    else:  # pragma: no cover - defensive
        why = "the input is degenerate"
    return f"{name} is undefined because {why}; returning nan"


def _scalar(name: str, kernel: Callable, uncertainty, correct, nan_policy) -> float:
    u, c = _validate(uncertainty, correct, nan_policy, stacklevel=3)
    value = float(kernel(u[None, :], c[None, :])[0])
    if np.isnan(value):
        warnings.warn(_undefined_reason(name, u, c), UndefinedMetricWarning, stacklevel=3)
    return value


def auroc(uncertainty: ArrayLike, correct: ArrayLike, *, nan_policy: NanPolicy = "raise") -> float:
    """ROC AUC for detecting *incorrect* answers with ``uncertainty`` as score.

    = P(u of a random incorrect answer > u of a random correct one), ties 1/2.
    0.5 = uninformative, 1 = perfect separation.  NaN if only one class.
    """
    return _scalar("AUROC", _auroc_batch, uncertainty, correct, nan_policy)


def auprc(uncertainty: ArrayLike, correct: ArrayLike, *, nan_policy: NanPolicy = "raise") -> float:
    """Average precision for detecting *incorrect* answers (sklearn semantics,
    tied scores form one threshold).  Baseline = error rate.  NaN if one class."""
    return _scalar("AUPRC", _auprc_batch, uncertainty, correct, nan_policy)


def aurc(uncertainty: ArrayLike, correct: ArrayLike, *, nan_policy: NanPolicy = "raise") -> float:
    """Area under the risk-coverage curve (LOWER is better).

    Samples sorted most-confident first (stable sort, ties keep input order);
    mean over k=1..n of the error rate among the first k.  Defined for any
    input: 0 if all correct, 1 if all incorrect.
    """
    return _scalar("AURC", _aurc_batch, uncertainty, correct, nan_policy)


def prr(uncertainty: ArrayLike, correct: ArrayLike, *, nan_policy: NanPolicy = "raise") -> float:
    """Prediction-rejection ratio (LM-Polygraph): area under the
    prediction-rejection curve, normalised so random = 0 and oracle = 1.

    Quality is min-max normalised correctness; rejection order is a stable
    sort on ``uncertainty``.  NaN if all answers have the same correctness.
    """
    return _scalar("PRR", _prr_batch, uncertainty, correct, nan_policy)


def spearman(uncertainty: ArrayLike, correct: ArrayLike, *, nan_policy: NanPolicy = "raise") -> float:
    """Spearman rank correlation between ``uncertainty`` and ``1 - correct``
    (same as scipy.stats.spearmanr).  NaN if either side is constant."""
    return _scalar("Spearman", _spearman_batch, uncertainty, correct, nan_policy)


METRICS: dict[str, Callable[..., float]] = {
    "auroc": auroc,
    "auprc": auprc,
    "aurc": aurc,
    "prr": prr,
    "spearman": spearman,
}

HIGHER_IS_BETTER: dict[str, bool] = {
    "auroc": True,
    "auprc": True,
    "aurc": False,
    "prr": True,
    "spearman": True,
}

# Public function -> vectorised kernel, used by bootstrap_ci to avoid a
# Python loop over resamples.
_BATCH_KERNELS: dict[Callable[..., float], Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    auroc: _auroc_batch,
    auprc: _auprc_batch,
    aurc: _aurc_batch,
    prr: _prr_batch,
    spearman: _spearman_batch,
}
