"""From ranking to decisions: a calibrated P(correct) from an uncertainty score, and how good it is.

AUROC and the other metrics in :mod:`.uncertainty` only judge the *order* of the scores; a decision
such as "abstain below 80 % confidence" needs a probability.  This module

* maps ``uncertainty`` (higher = less confident) to P(correct) with a monotone, non-increasing map
  (isotonic regression or Platt scaling), stored as plain data (:class:`ConfidenceMap`);
* cross-fits the map, so that no answer's probability comes from a map that saw its label
  (an in-sample isotonic fit would look perfectly calibrated);
* measures the probabilities (ECE, Brier score, log loss) and the accuracy that abstention buys
  (selective accuracy), with bootstrap intervals (:func:`calibration_metrics`).

Edge-case rules:

* Invalid input (lengths, non-binary labels, probabilities outside [0, 1], too few answers for the
  folds, infinite scores where a map is fitted) raises a ``ValueError``; NaN scores follow
  ``nan_policy`` like the metrics in :mod:`.uncertainty`.
* Cross-fitting needs both correct and incorrect answers in the training part of every fold;
  otherwise (all answers correct, all wrong, or a single minority answer) *every* probability is
  NaN and an :class:`UndefinedMetricWarning` is emitted, so a whole run is never half calibrated.
* ECE, Brier score, log loss and selective accuracy are defined for every valid input,
  a single class included (like AURC), so they never return NaN.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, logit

from .bootstrap import BootstrapResult, _check_params, bootstrap_ci
from .uncertainty import NanPolicy, UndefinedMetricWarning, _as_1d, _validate

__all__ = [
    "ConfidenceMap",
    "fit_confidence_map",
    "cross_fit_probabilities",
    "ece",
    "brier",
    "log_loss",
    "selective_accuracy",
    "reliability_curve",
    "calibration_metrics",
    "PLATT_L2",
    "MAP_METHODS",
    "SELECTIVE_PERCENTS",
    "CALIBRATION_METRIC_NAMES",
]

Method = Literal["isotonic", "platt"]
MAP_METHODS: tuple[Method, ...] = ("isotonic", "platt")

PLATT_L2 = 1e-10
"""L2 penalty on the slope of the *standardised* score in Platt scaling (intercept unpenalised).
Small enough that fits whose maximum-likelihood estimate exists match unpenalised logistic
regression (within 1e-5 in probability in the tests), large enough to keep the fit finite when
the score separates the classes perfectly (where the estimate does not exist)."""

_NEWTON_MAX_ITER = 200
_NEWTON_TOL = 1e-10  # stop when no parameter moves by more than this (standardised units)
SELECTIVE_PERCENTS = (50, 80, 90)
#: the keys of :func:`calibration_metrics`, in its order
CALIBRATION_METRIC_NAMES = ("ece", "brier", "log_loss", *(f"selective_accuracy_{k}" for k in SELECTIVE_PERCENTS))


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _check_method(method: Any) -> None:
    if method not in MAP_METHODS:
        raise ValueError(f"method must be one of {list(MAP_METHODS)}, got {method!r}")


def _check_folds(folds: int) -> None:
    if not _is_int(folds) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")


def _check_bins(bins: int) -> None:
    if not _is_int(bins) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")


def _validate_keep(
    uncertainty: ArrayLike, correct: ArrayLike, nan_policy: NanPolicy, stacklevel: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`_validate`, plus the mask of the input rows that were kept."""
    u, c = _validate(uncertainty, correct, nan_policy, stacklevel=stacklevel + 1)
    keep = ~np.isnan(_as_1d(uncertainty, "uncertainty").astype(np.float64))
    return u, c, keep


def _require_finite(u: np.ndarray) -> None:
    n_inf = int(np.isinf(u).sum())
    if n_inf:
        raise ValueError(
            f"uncertainty contains {n_inf} infinite value(s); a confidence map is fitted on finite "
            "scores (clip them first)"
        )


def _validate_probs(
    p: ArrayLike, correct: ArrayLike, nan_policy: NanPolicy, stacklevel: int
) -> tuple[np.ndarray, np.ndarray]:
    p, c = _validate(p, correct, nan_policy, stacklevel=stacklevel + 1, name="probabilities")
    outside = p[(p < 0) | (p > 1)]
    if outside.size:
        examples = ", ".join(repr(float(v)) for v in outside[:3]) + (", ..." if outside.size > 3 else "")
        raise ValueError(f"probabilities must be in [0, 1]; found {outside.size} value(s) outside: [{examples}]")
    return p, c


def _validate_weights(sample_weight: ArrayLike | None, keep: np.ndarray) -> np.ndarray:
    if sample_weight is None:
        return np.ones(int(keep.sum()))
    w = _as_1d(sample_weight, "sample_weight")
    if len(w) != len(keep):
        raise ValueError(f"sample_weight has length {len(w)}, expected {len(keep)} (one per answer)")
    if w.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must be numeric, got dtype {w.dtype}")
    w = w.astype(np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and non-negative")
    w = w[keep]
    if not w.sum() > 0:
        raise ValueError("sample_weight sums to 0 over the answers with a score")
    return w


# --------------------------------------------------------------------------
# The fitted map
# --------------------------------------------------------------------------


def _float_list(values: Any, field: str) -> list[float]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise ValueError(f"ConfidenceMap.{field} must be a list of numbers, got {values!r}")
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iuf":
        raise ValueError(f"ConfidenceMap.{field} must be a non-empty list of numbers, got {values!r}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"ConfidenceMap.{field} must contain finite numbers only")
    return arr.tolist()


def _finite_float(value: Any, field: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"ConfidenceMap.{field} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ConfidenceMap:
    """A fitted, non-increasing map from uncertainty to P(correct), stored as plain data.

    ``method="isotonic"``: the fitted points ``x`` (strictly increasing uncertainty) and ``y``
    (non-increasing probability); prediction interpolates linearly between them and clips to the
    end points outside ``[x[0], x[-1]]`` (scikit-learn's ``out_of_bounds="clip"``).
    ``method="platt"``: P = sigmoid(``intercept`` + ``coef`` * u) with ``coef <= 0``.
    ``n`` is the number of answers the map was fitted on.  Fields are validated on construction,
    so a map read back with :meth:`from_dict` is as trustworthy as a freshly fitted one.

    Examples
    --------
    >>> from lm_eval_semgrad.metrics import ConfidenceMap
    >>> m = ConfidenceMap("isotonic", n=4, x=[0.1, 0.5], y=[1.0, 0.5])
    >>> m.predict([0.0, 0.3, 0.9, float("nan")])
    array([1.  , 0.75, 0.5 ,  nan])
    >>> ConfidenceMap.from_dict(m.to_dict()) == m
    True
    """

    method: Method
    n: int
    x: list[float] | None = None
    y: list[float] | None = None
    coef: float | None = None
    intercept: float | None = None

    def __post_init__(self) -> None:
        _check_method(self.method)
        if not _is_int(self.n) or self.n < 1:
            raise ValueError(f"ConfidenceMap.n must be an integer >= 1, got {self.n!r}")
        object.__setattr__(self, "n", int(self.n))
        if self.method == "isotonic":
            self._post_init_isotonic()
        else:
            self._post_init_platt()

    def _post_init_isotonic(self) -> None:
        if self.coef is not None or self.intercept is not None:
            raise ValueError("an isotonic ConfidenceMap takes x and y, not coef/intercept")
        if self.x is None or self.y is None:
            raise ValueError("an isotonic ConfidenceMap needs both x and y")
        x, y = _float_list(self.x, "x"), _float_list(self.y, "y")
        if len(x) != len(y):
            raise ValueError(f"ConfidenceMap.x and .y differ in length ({len(x)} vs {len(y)})")
        if np.any(np.diff(x) <= 0):
            raise ValueError("ConfidenceMap.x must be strictly increasing")
        if np.any(np.diff(y) > 0) or min(y) < 0 or max(y) > 1:
            raise ValueError("ConfidenceMap.y must be non-increasing probabilities in [0, 1]")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    def _post_init_platt(self) -> None:
        if self.x is not None or self.y is not None:
            raise ValueError("a platt ConfidenceMap takes coef and intercept, not x/y")
        if self.coef is None or self.intercept is None:
            raise ValueError("a platt ConfidenceMap needs both coef and intercept")
        coef = _finite_float(self.coef, "coef")
        if coef > 0:
            raise ValueError(f"ConfidenceMap.coef must be <= 0 (non-increasing in uncertainty), got {coef!r}")
        object.__setattr__(self, "coef", coef)
        object.__setattr__(self, "intercept", _finite_float(self.intercept, "intercept"))

    def predict(self, uncertainty: ArrayLike) -> np.ndarray:
        """P(correct) for each score (same shape as the input); NaN scores give NaN, +-inf the limits."""
        u = np.asarray(uncertainty)
        if u.dtype.kind not in "biuf":
            raise ValueError(f"uncertainty must be numeric, got dtype {u.dtype}")
        u = u.astype(np.float64)
        if self.method == "isotonic":
            assert self.x is not None and self.y is not None  # checked in __post_init__
            x = np.asarray(self.x)
            return np.interp(np.clip(u, x[0], x[-1]), x, np.asarray(self.y))
        assert self.coef is not None and self.intercept is not None  # checked in __post_init__
        if self.coef == 0:  # avoid 0 * inf
            return np.where(np.isnan(u), np.nan, expit(self.intercept))
        return expit(self.intercept + self.coef * u)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with only the fields of this method."""
        if self.method == "isotonic":
            assert self.x is not None and self.y is not None  # checked in __post_init__
            return {"method": self.method, "n": self.n, "x": list(self.x), "y": list(self.y)}
        return {"method": self.method, "n": self.n, "coef": self.coef, "intercept": self.intercept}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfidenceMap:
        """Inverse of :meth:`to_dict`; unknown or missing keys are errors, values are validated."""
        if not isinstance(data, Mapping):
            raise ValueError(f"ConfidenceMap.from_dict needs a mapping, got {type(data).__name__}")
        method = data.get("method")
        _check_method(method)
        expected = {"method", "n"} | ({"x", "y"} if method == "isotonic" else {"coef", "intercept"})
        missing, unknown = expected - set(data), set(data) - expected
        if missing or unknown:
            raise ValueError(
                f"ConfidenceMap.from_dict({method!r}): missing keys {sorted(missing)}, "
                f"unexpected keys {sorted(map(str, unknown))}"
            )
        return cls(**{key: data[key] for key in expected})


# --------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------


def _pav_non_increasing(sums: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-increasing fit to ``sums / weights`` (pool adjacent violators).

    Blocks keep exact sums, so with 0/1 labels and integer weights every fitted value is one
    correctly rounded division."""
    block_sum: list[float] = []
    block_weight: list[float] = []
    block_len: list[int] = []
    for s, w in zip(sums.tolist(), weights.tolist()):
        length = 1
        while block_sum and block_sum[-1] / block_weight[-1] <= s / w:  # not decreasing: pool
            s += block_sum.pop()
            w += block_weight.pop()
            length += block_len.pop()
        block_sum.append(s)
        block_weight.append(w)
        block_len.append(length)
    return np.repeat(np.divide(block_sum, block_weight), block_len)


def _fit_isotonic(u: np.ndarray, c: np.ndarray, w: np.ndarray) -> ConfidenceMap:
    # As sklearn's IsotonicRegression(increasing=False): tied scores are pooled into one point
    # (weighted mean label), then PAV, then points inside runs of equal fitted values are dropped.
    xs, group = np.unique(u, return_inverse=True)
    fitted = _pav_non_increasing(np.bincount(group, weights=w * c), np.bincount(group, weights=w))
    keep = np.ones(len(xs), dtype=bool)
    keep[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
    return ConfidenceMap("isotonic", n=len(u), x=xs[keep].tolist(), y=fitted[keep].tolist())


def _fit_platt(u: np.ndarray, c: np.ndarray, w: np.ndarray) -> ConfidenceMap:
    if np.all(c == c[0]):
        word = "correct" if c[0] == 1 else "incorrect"
        raise ValueError(f"Platt scaling needs correct and incorrect answers; all {len(c)} answers are {word}")
    total = w.sum()
    mean = (w * u).sum() / total
    std = math.sqrt((w * (u - mean) ** 2).sum() / total) or 1.0  # constant score: slope stays 0
    design = np.column_stack([np.ones(len(u)), (u - mean) / std])
    penalty = np.array([0.0, PLATT_L2])
    base_rate = (w * c).sum() / total

    def objective(theta: np.ndarray) -> float:
        eta = design @ theta
        return float((w * (np.logaddexp(0.0, eta) - c * eta)).sum() + 0.5 * PLATT_L2 * theta[1] ** 2)

    # Newton-Raphson (IRLS) with step halving on the penalised negative log-likelihood; strictly
    # convex thanks to the penalty, so it converges from the intercept-only start.
    theta = np.array([logit(base_rate), 0.0])
    value = objective(theta)
    for _ in range(_NEWTON_MAX_ITER):
        p = expit(design @ theta)
        grad = design.T @ (w * (p - c)) + penalty * theta
        hess = (design * (w * p * (1.0 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while objective(theta - t * step) > value and t > 1e-12:
            t /= 2.0
        theta = theta - t * step
        value = objective(theta)
        if np.max(np.abs(t * step)) < _NEWTON_TOL:
            break
    alpha, beta = float(theta[0]), float(theta[1])
    if beta > 0:  # score ranks backwards: the best non-increasing map is the constant base rate
        alpha, beta = float(logit(base_rate)), 0.0
    return ConfidenceMap("platt", n=len(u), coef=beta / std, intercept=alpha - beta * mean / std)


_FITTERS = {"isotonic": _fit_isotonic, "platt": _fit_platt}


def fit_confidence_map(
    uncertainty: ArrayLike,
    correct: ArrayLike,
    *,
    method: Method = "isotonic",
    sample_weight: ArrayLike | None = None,
    nan_policy: NanPolicy = "raise",
) -> ConfidenceMap:
    """Fit a non-increasing map from uncertainty to P(correct) on labelled answers.

    ``"isotonic"``: weighted isotonic regression (pool adjacent violators), equal to
    scikit-learn's ``IsotonicRegression(increasing=False, out_of_bounds="clip")`` (tied scores are
    pooled; only exact ties, where sklearn also pools scores closer than 1e-15).  Answers with zero
    weight are ignored.  A single class gives the constant map 0 or 1.
    ``"platt"``: P = sigmoid(a + b * u), maximum likelihood by Newton/IRLS on the standardised
    score with a tiny L2 penalty :data:`PLATT_L2` on the slope (so perfectly separating scores
    still give a finite fit); ``b`` is constrained to ``<= 0`` (a backwards score gives the
    constant base rate).  Needs both classes (``ValueError`` otherwise).
    Scores must be finite; NaN scores follow ``nan_policy``.

    Examples
    --------
    >>> from lm_eval_semgrad.metrics import fit_confidence_map
    >>> m = fit_confidence_map([0.1, 0.2, 0.3, 0.4, 0.5], [1, 1, 1, 0, 1])
    >>> m.x, m.y  # 0.4 and 0.5 pooled to 0.5; 0.2 dropped inside a run of equal values
    ([0.1, 0.3, 0.4, 0.5], [1.0, 1.0, 0.5, 0.5])
    >>> m.predict([0.0, 0.35, 0.45])
    array([1.  , 0.75, 0.5 ])
    """
    _check_method(method)
    u, c, keep = _validate_keep(uncertainty, correct, nan_policy, stacklevel=2)
    w = _validate_weights(sample_weight, keep)
    _require_finite(u)
    used = w > 0
    return _FITTERS[method](u[used], c[used], w[used])


# --------------------------------------------------------------------------
# Cross-fitting
# --------------------------------------------------------------------------


def _fold_ids(c: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Stratified seeded fold of each answer: each class in a random order, then dealt round-robin
    (the count continues from one class to the next), so fold sizes and per-fold class counts each
    differ by at most one."""
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(c == label)) for label in (0.0, 1.0)])
    ids = np.empty(len(c), dtype=np.intp)
    ids[order] = np.arange(len(c)) % folds
    return ids


def _undefined_cross_fit_reason(c: np.ndarray, bad_folds: list[int]) -> str:
    n, n_correct = len(c), int(c.sum())
    if n_correct in (0, n):
        why = f"all {n} answers are {'correct' if n_correct else 'incorrect'}"
    else:
        minority = "correct" if n_correct < n - n_correct else "incorrect"
        count = min(n_correct, n - n_correct)
        why = (
            f"only {count} of {n} answers {'is' if count == 1 else 'are'} {minority}, so the training part of "
            f"fold(s) {bad_folds} has none"
        )
    return (
        f"cross-fitted probabilities are undefined because {why}; every fold's map needs correct "
        "and incorrect answers to train on; returning nan"
    )


def _cross_fit(
    u: np.ndarray, c: np.ndarray, method: Method, folds: int, seed: int, stacklevel: int
) -> np.ndarray:
    n = len(u)
    if n < 2 * folds:
        raise ValueError(f"cross-fitting with folds={folds} needs at least {2 * folds} answers (2 per fold), got {n}")
    _require_finite(u)
    ids = _fold_ids(c, folds, seed)
    n_correct, n_incorrect = c.sum(), n - c.sum()
    fold_correct = np.bincount(ids, weights=c, minlength=folds)
    fold_incorrect = np.bincount(ids, minlength=folds) - fold_correct
    bad = np.flatnonzero((n_correct - fold_correct == 0) | (n_incorrect - fold_incorrect == 0)).tolist()
    if bad:
        warnings.warn(_undefined_cross_fit_reason(c, bad), UndefinedMetricWarning, stacklevel=stacklevel + 1)
        return np.full(n, np.nan)
    p = np.empty(n)
    for fold in range(folds):
        test = ids == fold
        train = ~test
        p[test] = _FITTERS[method](u[train], c[train], np.ones(int(train.sum()))).predict(u[test])
    return p


def cross_fit_probabilities(
    uncertainty: ArrayLike,
    correct: ArrayLike,
    *,
    method: Method = "isotonic",
    folds: int = 5,
    seed: int = 0,
    nan_policy: NanPolicy = "raise",
) -> np.ndarray:
    """Out-of-fold P(correct) for every answer: honest probabilities from the labelled run itself.

    Answers are split into ``folds`` stratified folds (each class shuffled with ``seed``, then dealt round-robin); each
    fold's probabilities come from a map (:func:`fit_confidence_map`) fitted on the other folds,
    never on the answer itself.  Needs at least 2 answers per fold (``ValueError``) and finite
    scores.  If the training part of any fold lacks a class, all probabilities are NaN with an
    :class:`UndefinedMetricWarning`.  With ``nan_policy="omit"`` answers with a NaN score are left
    out of the fit and get NaN; the output always has one entry per input answer.

    Examples
    --------
    >>> import numpy as np
    >>> from lm_eval_semgrad.metrics import cross_fit_probabilities
    >>> u = np.arange(20) / 20
    >>> c = np.array([1, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0])
    >>> p = cross_fit_probabilities(u, c, folds=4)
    >>> p.shape, bool(p[0] >= p[-1])
    ((20,), True)
    """
    _check_method(method)
    _check_folds(folds)
    u, c, keep = _validate_keep(uncertainty, correct, nan_policy, stacklevel=2)
    p = np.full(len(keep), np.nan)
    p[keep] = _cross_fit(u, c, method, folds, seed, stacklevel=2)
    return p


# --------------------------------------------------------------------------
# Calibration and decision metrics
# --------------------------------------------------------------------------


def _equal_mass_bins(p: np.ndarray, c: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean probability, accuracy and count of each equal-mass bin (see :func:`ece`)."""
    n = len(p)
    k = min(bins, n)
    counts = np.full(k, n // k)
    counts[: n % k] += 1
    order = np.argsort(p, kind="stable")
    which = np.repeat(np.arange(k), counts)
    mean_p = np.bincount(which, weights=p[order], minlength=k) / counts
    accuracy = np.bincount(which, weights=c[order], minlength=k) / counts
    return mean_p, accuracy, counts


def reliability_curve(
    probabilities: ArrayLike, correct: ArrayLike, bins: int = 10, *, nan_policy: NanPolicy = "raise"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean predicted, observed accuracy, counts)`` per equal-mass bin, lowest probability first.

    The bins are exactly those of :func:`ece`, so a reliability plot shows what ECE sums up.

    Examples
    --------
    >>> from lm_eval_semgrad.metrics import reliability_curve
    >>> reliability_curve([0.9, 0.2, 0.6, 0.8], [1, 0, 0, 1], bins=2)
    (array([0.4 , 0.85]), array([0., 1.]), array([2, 2]))
    """
    _check_bins(bins)
    p, c = _validate_probs(probabilities, correct, nan_policy, stacklevel=2)
    return _equal_mass_bins(p, c, bins)


def ece(probabilities: ArrayLike, correct: ArrayLike, bins: int = 10, *, nan_policy: NanPolicy = "raise") -> float:
    """Expected calibration error with equal-mass bins: sum_b (n_b / n) |accuracy_b - mean p_b|.

    Equal-mass bins follow the data instead of leaving most fixed-width bins empty.  Answers are
    sorted by probability with a *stable* sort (tied probabilities keep their input order, so ties
    may straddle a bin edge) and cut like ``np.array_split(order, bins)``: every bin has
    ``n // bins`` answers and the first (lowest-probability) ``n % bins`` bins one more.  With
    ``bins > n`` each answer is its own bin.  0 = calibrated; defined for any valid input.

    Examples
    --------
    >>> from lm_eval_semgrad.metrics import ece
    >>> round(ece([0.9, 0.2, 0.6, 0.8], [1, 0, 0, 1], bins=2), 6)  # (2/4)|0 - 0.4| + (2/4)|1 - 0.85|
    0.275
    """
    _check_bins(bins)
    p, c = _validate_probs(probabilities, correct, nan_policy, stacklevel=2)
    mean_p, accuracy, counts = _equal_mass_bins(p, c, bins)
    return float((counts / len(p) * np.abs(accuracy - mean_p)).sum())


def brier(probabilities: ArrayLike, correct: ArrayLike, *, nan_policy: NanPolicy = "raise") -> float:
    """Brier score mean((p - c)^2) (lower is better; 0.25 for a constant 0.5).

    Examples
    --------
    >>> from lm_eval_semgrad.metrics import brier
    >>> round(brier([0.9, 0.2, 0.6, 0.8], [1, 0, 0, 1]), 6)
    0.1125
    """
    p, c = _validate_probs(probabilities, correct, nan_policy, stacklevel=2)
    return float(np.mean((p - c) ** 2))


def log_loss(
    probabilities: ArrayLike, correct: ArrayLike, *, eps: float = 1e-15, nan_policy: NanPolicy = "raise"
) -> float:
    """Mean negative log-likelihood of the labels; p is clipped to [eps, 1 - eps] first (like
    scikit-learn's former ``eps=1e-15``), so one confident mistake costs a lot but not infinity.

    Examples
    --------
    >>> from lm_eval_semgrad.metrics import log_loss
    >>> round(log_loss([0.9, 0.2, 0.6, 0.8], [1, 0, 0, 1]), 6)
    0.366985
    """
    if not isinstance(eps, numbers.Real) or not 0 <= eps < 0.5:
        raise ValueError(f"eps must be in [0, 0.5), got {eps!r}")
    p, c = _validate_probs(probabilities, correct, nan_policy, stacklevel=2)
    p = np.clip(p, eps, 1.0 - eps)
    with np.errstate(divide="ignore"):  # eps=0 with a certain mistake: inf is the honest answer
        return float(np.mean(np.where(c == 1, -np.log(p), -np.log1p(-p))))


def _n_covered(coverage: float, n: int) -> int:
    if not isinstance(coverage, numbers.Real) or isinstance(coverage, bool) or not 0 < coverage <= 1:
        raise ValueError(f"coverage must be a number in (0, 1], got {coverage!r}")
    # Rounding first keeps float noise from adding an answer (0.07 * 100 == 7.000000000000001).
    return max(1, math.ceil(round(coverage * n, 9)))


def selective_accuracy(
    uncertainty: ArrayLike, correct: ArrayLike, coverage: float, *, nan_policy: NanPolicy = "raise"
) -> float:
    """Accuracy on the ``ceil(coverage * n)`` most confident answers (at least one): what answering
    only a ``coverage`` fraction of the questions, abstaining on the rest, would score.

    Lowest uncertainty first, by a *stable* sort as in :func:`.aurc`: tied scores keep their input
    order, so with ties at the cut the result depends on it.  ``+-inf`` scores are ordered like
    any other.  ``coverage=1`` is plain accuracy.

    Examples
    --------
    >>> from lm_eval_semgrad.metrics import selective_accuracy
    >>> selective_accuracy([0.1, 0.9, 0.3, 0.5], [1, 0, 1, 0], coverage=0.5)
    1.0
    """
    u, c = _validate(uncertainty, correct, nan_policy, stacklevel=2)
    k = _n_covered(coverage, len(u))
    return float(c[np.argsort(u, kind="stable")[:k]].mean())


def calibration_metrics(
    uncertainty: ArrayLike,
    correct: ArrayLike,
    *,
    method: Method = "isotonic",
    folds: int = 5,
    seed: int = 0,
    bins: int = 10,
    n_resamples: int = 1000,
    bootstrap_seed: int = 1234,
    confidence: float = 0.95,
    nan_policy: NanPolicy = "omit",
) -> dict[str, BootstrapResult]:
    """Calibration of the cross-fitted probabilities and selective accuracy, with bootstrap CIs.

    Keys: ``ece``, ``brier``, ``log_loss`` (of :func:`cross_fit_probabilities`, computed once)
    and ``selective_accuracy_50/80/90`` (of the raw scores).  Intervals resample answers with
    :func:`.bootstrap_ci` (same ``bootstrap_seed``, hence the same resamples, for every metric);
    they hold the fitted probabilities fixed, so they omit the variability of the fit itself.
    ECE is biased upward by sampling noise, so its interval tends to sit above the point estimate.
    NaN scores are dropped with a warning by default, as in :func:`.evaluate_uncertainty`.  If
    cross-fitting is undefined (e.g. all answers correct) the probability metrics are NaN
    (one :class:`UndefinedMetricWarning`); selective accuracy is still reported.

    Examples
    --------
    >>> import numpy as np
    >>> from lm_eval_semgrad.metrics import calibration_metrics
    >>> rng = np.random.default_rng(0)
    >>> c = (rng.random(300) < 0.7).astype(int)
    >>> u = rng.random(300) + 0.5 * (1 - c)
    >>> res = calibration_metrics(u, c, n_resamples=200)
    >>> list(res)
    ['ece', 'brier', 'log_loss', 'selective_accuracy_50', 'selective_accuracy_80', 'selective_accuracy_90']
    >>> bool(res["selective_accuracy_50"].value > res["selective_accuracy_90"].value)
    True
    """
    _check_method(method)
    _check_folds(folds)
    _check_bins(bins)
    _check_params(n_resamples, confidence)
    u, c = _validate(uncertainty, correct, nan_policy, stacklevel=2)
    p = _cross_fit(u, c, method, folds, seed, stacklevel=2)
    boot = partial(bootstrap_ci, n_resamples=n_resamples, seed=bootstrap_seed, confidence=confidence)
    undefined = BootstrapResult(np.nan, np.nan, np.nan, np.nan, len(u), 0)
    out: dict[str, BootstrapResult] = {}
    for name, fn in (("ece", partial(ece, bins=bins)), ("brier", brier), ("log_loss", log_loss)):
        out[name] = undefined if np.isnan(p[0]) else boot(fn, p, c)  # p is all NaN or has none
    for percent in SELECTIVE_PERCENTS:
        out[f"selective_accuracy_{percent}"] = boot(partial(selective_accuracy, coverage=percent / 100), u, c)
    return out
