"""Tests for lm_eval_semgrad.metrics.confidence (calibrated P(correct), calibration metrics)."""

from __future__ import annotations

import doctest
import json
import math
import warnings

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss

from lm_eval_semgrad.metrics import (
    PLATT_L2,
    BootstrapResult,
    ConfidenceMap,
    UndefinedMetricWarning,
    bootstrap_ci,
    brier,
    calibration_metrics,
    cross_fit_probabilities,
    ece,
    fit_confidence_map,
    log_loss,
    reliability_curve,
    selective_accuracy,
)
from lm_eval_semgrad.metrics import confidence as confidence_module

SEEDS = [0, 1, 2, 3, 4, 5, 6, 7]


def make_data(seed: int, n: int = 200, decimals: int | None = 1, shift: float = 0.4):
    """Informative but noisy uncertainty; rounding creates many ties (as in test_metrics)."""
    rng = np.random.default_rng(seed)
    c = (rng.random(n) < 0.6).astype(int)
    u = rng.random(n) + shift * (1 - c)
    if decimals is not None:
        u = np.round(u, decimals)
    return u, c


def logistic_data(seed: int, n: int = 300):
    """Labels drawn from a true logistic model in u, so the Platt MLE exists and is well defined."""
    rng = np.random.default_rng(seed)
    u = rng.normal(2.0, 1.5, n)
    c = (rng.random(n) < 1.0 / (1.0 + np.exp(-(1.5 - 0.8 * u)))).astype(int)
    return u, c


def unpenalised_logistic() -> LogisticRegression:
    # C=inf is LogisticRegression(penalty=None) (``penalty`` is deprecated since sklearn 1.8).
    return LogisticRegression(C=np.inf, tol=1e-12, max_iter=100_000)


def reference_ece(p, c, bins):
    """Loop version: stable sort by p, np.array_split into equal-count bins, skip empty bins."""
    p = np.asarray(p, dtype=float)
    c = np.asarray(c, dtype=float)
    total = 0.0
    for idx in np.array_split(np.argsort(p, kind="stable"), bins):
        if len(idx):
            total += len(idx) / len(p) * abs(c[idx].mean() - p[idx].mean())
    return total


def reference_selective_accuracy(u, c, coverage):
    """Loop version: repeatedly take the lowest remaining uncertainty (first one on ties)."""
    remaining = list(range(len(u)))
    k = max(1, math.ceil(round(coverage * len(u), 9)))
    taken = []
    for _ in range(k):
        best = min(remaining, key=lambda i: (u[i], i))
        remaining.remove(best)
        taken.append(c[best])
    return sum(taken) / k


# --------------------------------------------------------------------------
# Isotonic map vs scikit-learn
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n,decimals", [(200, 1), (37, 1), (500, None), (15, 0), (60, 2)])
def test_isotonic_matches_sklearn(seed, n, decimals):
    u, c = make_data(seed, n, decimals)
    m = fit_confidence_map(u, c, method="isotonic")
    ref = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(u, c)
    assert m.method == "isotonic" and m.n == n
    np.testing.assert_array_equal(m.x, ref.X_thresholds_)
    np.testing.assert_allclose(m.y, ref.y_thresholds_, rtol=0, atol=1e-12)
    grid = np.concatenate([u, np.linspace(u.min() - 1, u.max() + 1, 2001)])
    np.testing.assert_allclose(m.predict(grid), ref.predict(grid), rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_isotonic_weighted_matches_sklearn(seed):
    u, c = make_data(seed, 150, decimals=1)
    rng = np.random.default_rng(100 + seed)
    w = rng.random(150) * 3
    w[:10] = 0.0  # zero weights are dropped, as in sklearn (they may move the clip bounds)
    m = fit_confidence_map(u, c, sample_weight=w)
    ref = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(u, c, sample_weight=w)
    assert m.n == 140
    np.testing.assert_array_equal(m.x, ref.X_thresholds_)
    grid = np.linspace(-1, 3, 4001)
    np.testing.assert_allclose(m.predict(grid), ref.predict(grid), rtol=0, atol=1e-12)


def test_isotonic_ties_pool_labels():
    # Three answers at u=0.2 (labels 1, 0, 1) become one point with y=2/3; the decreasing fit
    # then has to pool it with u=0.1 (label 0): (0 + 2) / 4 = 0.5.
    u = [0.2, 0.1, 0.2, 0.2, 0.9]
    c = [1, 0, 0, 1, 0]
    m = fit_confidence_map(u, c)
    assert m.x == [0.1, 0.2, 0.9]
    assert m.y == [0.5, 0.5, 0.0]
    ref = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(u, c)
    np.testing.assert_allclose(m.predict(u), ref.predict(u), atol=1e-12)


def test_isotonic_degenerate_inputs():
    const = fit_confidence_map([0.3, 0.3, 0.3, 0.3], [1, 0, 1, 1])
    assert const.x == [0.3] and const.y == [0.75]
    np.testing.assert_array_equal(const.predict([-5.0, 0.3, 7.0]), [0.75, 0.75, 0.75])
    # A single class is a valid isotonic fit: the constant 1 (or 0).
    assert fit_confidence_map([0.1, 0.5, 0.2], [1, 1, 1]).predict([0.0, 9.0]).tolist() == [1.0, 1.0]
    assert fit_confidence_map([0.1, 0.5, 0.2], [0, 0, 0]).predict([0.3]).tolist() == [0.0]


def test_isotonic_is_non_increasing_even_for_backwards_scores():
    u, c = make_data(0, 200)
    m = fit_confidence_map(-u, c)  # score ranks backwards
    assert np.all(np.diff(m.predict(np.linspace(-2, 1, 500))) <= 0)


# --------------------------------------------------------------------------
# Platt map vs scikit-learn
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [40, 300, 2000])
def test_platt_matches_sklearn_unpenalised(seed, n):
    u, c = logistic_data(seed, n)
    m = fit_confidence_map(u, c, method="platt")
    ref = unpenalised_logistic().fit(u[:, None], c)
    assert ref.coef_[0, 0] < 0  # so the non-increasing constraint is inactive
    grid = np.concatenate([u, np.linspace(-5, 10, 301)])
    np.testing.assert_allclose(m.predict(grid), ref.predict_proba(grid[:, None])[:, 1], rtol=0, atol=1e-5)
    assert m.coef == pytest.approx(ref.coef_[0, 0], rel=1e-4)
    assert m.intercept == pytest.approx(ref.intercept_[0], rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_platt_weighted_matches_sklearn(seed):
    u, c = logistic_data(seed, 200)
    w = np.random.default_rng(seed).random(200) * 2
    m = fit_confidence_map(u, c, method="platt", sample_weight=w)
    ref = unpenalised_logistic().fit(u[:, None], c, sample_weight=w)
    np.testing.assert_allclose(m.predict(u), ref.predict_proba(u[:, None])[:, 1], rtol=0, atol=1e-5)


def test_platt_large_offset_scores_are_standardised():
    # Scores around 1e4 with spread 1e-2: without internal standardisation Newton breaks down.
    u, c = logistic_data(1, 300)
    m = fit_confidence_map(1e4 + u / 100, c, method="platt")
    ref = fit_confidence_map(u, c, method="platt")
    np.testing.assert_allclose(m.predict(1e4 + u / 100), ref.predict(u), atol=1e-6)


def test_platt_separable_scores_give_a_finite_fit():
    # The unpenalised MLE does not exist here; the tiny L2 penalty keeps it finite and stationary.
    u = np.linspace(0, 1, 20)
    c = (u < 0.5).astype(int)
    m = fit_confidence_map(u, c, method="platt")
    assert math.isfinite(m.coef) and m.coef < 0 and math.isfinite(m.intercept)
    p = m.predict(u)
    assert np.all(p[c == 1] > 0.99) and np.all(p[c == 0] < 0.01)
    # Stationarity of the penalised likelihood in standardised units.
    z = (u - u.mean()) / u.std()
    beta = m.coef * u.std()
    assert abs(np.sum(p - c)) < 1e-8
    assert abs(np.sum((p - c) * z) + PLATT_L2 * beta) < 1e-8


def test_platt_backwards_score_gives_base_rate():
    u, c = logistic_data(2, 300)
    m = fit_confidence_map(-u, c, method="platt")  # unconstrained slope would be > 0
    assert m.coef == 0.0
    np.testing.assert_allclose(m.predict([-10.0, 0.0, 10.0, np.inf]), c.mean(), atol=1e-12)


def test_platt_constant_score_gives_base_rate():
    m = fit_confidence_map([0.4] * 8, [1, 1, 1, 0, 1, 0, 1, 1], method="platt")
    assert m.coef == 0.0
    assert m.predict([0.4])[0] == pytest.approx(0.75, abs=1e-12)


@pytest.mark.parametrize("label,word", [(1, "correct"), (0, "incorrect")])
def test_platt_single_class_raises(label, word):
    with pytest.raises(ValueError, match=f"all 4 answers are {word}"):
        fit_confidence_map([0.1, 0.2, 0.3, 0.4], [label] * 4, method="platt")


# --------------------------------------------------------------------------
# ConfidenceMap: prediction and serialisation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_map_round_trips_through_json(method):
    u, c = logistic_data(3, 200)
    m = fit_confidence_map(u, c, method=method)
    data = json.loads(json.dumps(m.to_dict()))
    back = ConfidenceMap.from_dict(data)
    assert back == m
    grid = np.linspace(-3, 8, 50)
    np.testing.assert_array_equal(back.predict(grid), m.predict(grid))
    assert set(data) == ({"method", "n", "x", "y"} if method == "isotonic" else {"method", "n", "coef", "intercept"})
    assert all(type(v) is float for v in data.get("x", []) + data.get("y", []))


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_map_predict_nan_inf_and_shape(method):
    u, c = logistic_data(4, 200)
    m = fit_confidence_map(u, c, method=method)
    p = m.predict([np.nan, -np.inf, np.inf, 1.0])
    assert np.isnan(p[0]) and not np.isnan(p[1:]).any()
    assert p[1] >= p[3] >= p[2]
    assert m.predict(np.zeros((2, 3))).shape == (2, 3)
    with pytest.raises(ValueError, match="numeric"):
        m.predict(["a"])


def test_constant_platt_map_predicts_nan_for_nan():
    m = ConfidenceMap("platt", n=3, coef=0.0, intercept=0.0)
    np.testing.assert_array_equal(m.predict([np.nan, np.inf, 1.0]), [np.nan, 0.5, 0.5])


@pytest.mark.parametrize(
    "data,match",
    [
        ([1, 2], "mapping"),
        ({"method": "spline", "n": 3}, "method must be one of"),
        ({"method": "isotonic", "n": 3, "x": [0.1]}, r"missing keys \['y'\]"),
        ({"method": "platt", "n": 3, "coef": -1.0, "intercept": 0.0, "x": [1.0]}, r"unexpected keys \['x'\]"),
        ({"method": "isotonic", "n": 0, "x": [0.1], "y": [0.5]}, "n must be an integer >= 1"),
        ({"method": "isotonic", "n": True, "x": [0.1], "y": [0.5]}, "n must be an integer"),
        ({"method": "isotonic", "n": 2.5, "x": [0.1], "y": [0.5]}, "n must be an integer"),
        ({"method": "isotonic", "n": 3, "x": [0.2, 0.1], "y": [0.9, 0.5]}, "strictly increasing"),
        ({"method": "isotonic", "n": 3, "x": [0.1, 0.1], "y": [0.9, 0.5]}, "strictly increasing"),
        ({"method": "isotonic", "n": 3, "x": [0.1, 0.2], "y": [0.5, 0.9]}, "non-increasing"),
        ({"method": "isotonic", "n": 3, "x": [0.1, 0.2], "y": [1.5, 0.9]}, r"in \[0, 1\]"),
        ({"method": "isotonic", "n": 3, "x": [0.1, 0.2], "y": [0.5]}, "differ in length"),
        ({"method": "isotonic", "n": 3, "x": [], "y": []}, "non-empty"),
        ({"method": "isotonic", "n": 3, "x": "ab", "y": [0.5, 0.4]}, "list of numbers"),
        ({"method": "isotonic", "n": 3, "x": [0.1, float("nan")], "y": [0.5, 0.4]}, "finite"),
        ({"method": "isotonic", "n": 3, "x": None, "y": [0.5]}, "needs both x and y"),
        ({"method": "platt", "n": 3, "coef": 0.5, "intercept": 0.0}, "coef must be <= 0"),
        ({"method": "platt", "n": 3, "coef": float("inf"), "intercept": 0.0}, "finite number"),
        ({"method": "platt", "n": 3, "coef": -1.0, "intercept": "0"}, "finite number"),
        ({"method": "platt", "n": 3, "coef": None, "intercept": 0.0}, "needs both coef and intercept"),
    ],
)
def test_from_dict_validates(data, match):
    with pytest.raises(ValueError, match=match):
        ConfidenceMap.from_dict(data)


def test_constructor_rejects_mixed_fields():
    with pytest.raises(ValueError, match="not coef/intercept"):
        ConfidenceMap("isotonic", n=2, x=[0.0], y=[1.0], coef=-1.0)
    with pytest.raises(ValueError, match="not x/y"):
        ConfidenceMap("platt", n=2, coef=-1.0, intercept=0.0, x=[0.0])


def test_fit_validation():
    with pytest.raises(ValueError, match="method must be one of"):
        fit_confidence_map([0.1, 0.2], [0, 1], method="beta")
    with pytest.raises(ValueError, match="infinite"):
        fit_confidence_map([0.1, np.inf], [0, 1])
    with pytest.raises(ValueError, match="sample_weight has length 1"):
        fit_confidence_map([0.1, 0.2], [0, 1], sample_weight=[1.0])
    with pytest.raises(ValueError, match="non-negative"):
        fit_confidence_map([0.1, 0.2], [0, 1], sample_weight=[1.0, -1.0])
    with pytest.raises(ValueError, match="sums to 0"):
        fit_confidence_map([0.1, 0.2], [0, 1], sample_weight=[0.0, 0.0])
    with pytest.raises(ValueError, match=r"len\(uncertainty\)=3, len\(correct\)=2"):
        fit_confidence_map([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="binary"):
        fit_confidence_map([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="1 NaN"):
        fit_confidence_map([0.1, np.nan], [0, 1])


def test_fit_nan_omission_keeps_weights_aligned():
    u = [0.1, np.nan, 0.3, 0.2]
    c = [1, 0, 0, 1]
    w = [1.0, 5.0, 2.0, 3.0]
    with pytest.warns(UserWarning, match="dropping 1 sample"):
        m = fit_confidence_map(u, c, sample_weight=w, nan_policy="omit")
    assert m == fit_confidence_map([0.1, 0.3, 0.2], [1, 0, 1], sample_weight=[1.0, 2.0, 3.0])


# --------------------------------------------------------------------------
# Cross-fitting
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS[:4])
@pytest.mark.parametrize("n,folds", [(103, 5), (40, 3), (20, 10)])
def test_fold_ids_are_stratified_and_balanced(seed, n, folds):
    _, c = make_data(seed, n)
    ids = confidence_module._fold_ids(c.astype(float), folds, seed)
    sizes = np.bincount(ids, minlength=folds)
    assert sizes.max() - sizes.min() <= 1
    for label in (0, 1):
        per_fold = np.bincount(ids[c == label], minlength=folds)
        assert per_fold.max() - per_fold.min() <= 1
    np.testing.assert_array_equal(ids, confidence_module._fold_ids(c.astype(float), folds, seed))
    assert not np.array_equal(ids, confidence_module._fold_ids(c.astype(float), folds, seed + 1))


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_cross_fit_equals_out_of_fold_fits(method):
    u, c = make_data(1, 120, decimals=2)
    p = cross_fit_probabilities(u, c, method=method, folds=4, seed=3)
    ids = confidence_module._fold_ids(c.astype(float), 4, 3)
    for fold in range(4):
        test = ids == fold
        expected = fit_confidence_map(u[~test], c[~test], method=method).predict(u[test])
        np.testing.assert_array_equal(p[test], expected)
    in_sample = fit_confidence_map(u, c, method=method).predict(u)
    assert not np.allclose(p, in_sample)  # the test above would catch an in-sample fit


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_own_label_never_reaches_own_fold(method, monkeypatch):
    # Hold the fold assignment fixed (it depends on the labels, being stratified) and flip one
    # answer's label: no probability in its own fold may move, including its own; probabilities
    # in the other folds (whose maps trained on it) do.
    u, c = make_data(2, 100, decimals=None)
    ids = confidence_module._fold_ids(c.astype(float), 5, 0)
    monkeypatch.setattr(confidence_module, "_fold_ids", lambda *args: ids)
    before = cross_fit_probabilities(u, c, method=method, folds=5, seed=0)
    for i in (0, 17, 63):
        flipped = c.copy()
        flipped[i] = 1 - flipped[i]
        after = cross_fit_probabilities(u, flipped, method=method, folds=5, seed=0)
        own = ids == ids[i]
        np.testing.assert_array_equal(after[own], before[own])
        assert np.any(after[~own] != before[~own])


def test_cross_fit_is_seeded():
    u, c = make_data(3, 150)
    a = cross_fit_probabilities(u, c, seed=5)
    np.testing.assert_array_equal(a, cross_fit_probabilities(u, c, seed=5))
    assert not np.array_equal(a, cross_fit_probabilities(u, c, seed=6))
    assert np.all((a >= 0) & (a <= 1))


def test_cross_fit_too_few_answers():
    u = np.linspace(0, 1, 9)
    c = [1, 0] * 4 + [1]
    with pytest.raises(ValueError, match=r"folds=5 needs at least 10 answers \(2 per fold\), got 9"):
        cross_fit_probabilities(u, c, folds=5)
    assert not np.isnan(cross_fit_probabilities(np.linspace(0, 1, 10), [1, 0] * 5, folds=5)).any()


def test_cross_fit_bad_parameters():
    u, c = make_data(0, 50)
    for folds in (1, 2.5, True):
        with pytest.raises(ValueError, match="folds must be an integer >= 2"):
            cross_fit_probabilities(u, c, folds=folds)
    with pytest.raises(ValueError, match="method must be one of"):
        cross_fit_probabilities(u, c, method="beta")
    with pytest.raises(ValueError, match="infinite"):
        cross_fit_probabilities(np.where(np.arange(50) == 3, np.inf, u), c)
    with pytest.raises(ValueError, match=r"len\(uncertainty\)=50, len\(correct\)=49"):
        cross_fit_probabilities(u, c[:-1])


@pytest.mark.parametrize("method", ["isotonic", "platt"])
@pytest.mark.parametrize("label,word", [(1, "correct"), (0, "incorrect")])
def test_cross_fit_single_class_warns_and_returns_nan(method, label, word):
    with pytest.warns(UndefinedMetricWarning, match=f"all 12 answers are {word}"):
        p = cross_fit_probabilities(np.linspace(0, 1, 12), [label] * 12, method=method)
    assert p.shape == (12,) and np.isnan(p).all()


def test_cross_fit_single_minority_answer_warns():
    c = [1] * 11 + [0]
    with pytest.warns(UndefinedMetricWarning, match=r"only 1 of 12 answers is incorrect, so the training part of fold"):
        p = cross_fit_probabilities(np.linspace(0, 1, 12), c, folds=3)
    assert np.isnan(p).all()
    # Two minority answers land in different folds, so every training part has one.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not np.isnan(cross_fit_probabilities(np.linspace(0, 1, 12), [1] * 10 + [0, 0], folds=3)).any()


def test_cross_fit_nan_scores():
    u, c = make_data(4, 60)
    u = u.astype(float)
    u[[5, 20]] = np.nan
    with pytest.raises(ValueError, match=r"2 NaN.*nan_policy='omit'"):
        cross_fit_probabilities(u, c)
    with pytest.warns(UserWarning, match="dropping 2 sample"):
        p = cross_fit_probabilities(u, c, nan_policy="omit")
    keep = ~np.isnan(u)
    assert p.shape == (60,) and np.isnan(p[~keep]).all()
    np.testing.assert_array_equal(p[keep], cross_fit_probabilities(u[keep], c[keep]))


# --------------------------------------------------------------------------
# ECE / reliability curve
# --------------------------------------------------------------------------


def test_ece_hand_computed():
    # Sorted by p: 0.1(0) 0.3(0) 0.4(1) | 0.6(0) 0.7(1) | 0.85(1) 0.95(1)   (7 = 3 + 2 + 2: the
    # remainder goes to the lowest bin).
    # bin 1: |1/3 - 0.8/3| = 1/15, weight 3/7 -> 1/35
    # bin 2: |1/2 - 0.65| = 0.15, weight 2/7 -> 3/70
    # bin 3: |1 - 0.9|    = 0.1,  weight 2/7 -> 1/35
    # ECE = 2/70 + 3/70 + 2/70 = 0.1
    p = [0.95, 0.1, 0.4, 0.85, 0.3, 0.6, 0.7]
    c = [1, 0, 1, 1, 0, 0, 1]
    assert ece(p, c, bins=3) == pytest.approx(0.1, abs=1e-12)
    mean_p, acc, counts = reliability_curve(p, c, bins=3)
    np.testing.assert_allclose(mean_p, [0.8 / 3, 0.65, 0.9])
    np.testing.assert_allclose(acc, [1 / 3, 0.5, 1.0])
    np.testing.assert_array_equal(counts, [3, 2, 2])
    # One bin: |mean(c) - mean(p)| = |4/7 - 3.9/7| = 0.1/7
    assert ece(p, c, bins=1) == pytest.approx(0.1 / 7, abs=1e-12)


def test_ece_ties_follow_input_order():
    # Equal-count bins by a stable sort: the tied 0.5s are split (2 | 1 + the 0.9) by input order.
    p = [0.5, 0.5, 0.5, 0.9]
    assert ece(p, [1, 0, 0, 1], bins=2) == pytest.approx(0.5 * 0.0 + 0.5 * 0.2)
    assert ece(p, [0, 0, 1, 1], bins=2) == pytest.approx(0.5 * 0.5 + 0.5 * 0.3)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n,bins", [(200, 10), (37, 10), (15, 4), (5, 10), (1, 3)])
def test_ece_matches_loop_and_reliability_curve(seed, n, bins):
    rng = np.random.default_rng(seed)
    p = np.round(rng.random(n), 1)  # ties
    c = (rng.random(n) < p).astype(int)
    got = ece(p, c, bins=bins)
    assert got == pytest.approx(reference_ece(p, c, bins), abs=1e-12)
    mean_p, acc, counts = reliability_curve(p, c, bins=bins)
    assert len(counts) == min(bins, n) and counts.sum() == n and counts.min() >= 1
    assert np.all(np.diff(mean_p) >= 0)
    assert got == pytest.approx(np.sum(counts / n * np.abs(acc - mean_p)), abs=1e-12)


def test_ece_of_perfectly_calibrated_bins_is_zero():
    p = [0.25] * 4 + [0.75] * 4
    c = [1, 0, 0, 0, 1, 1, 1, 0]
    assert ece(p, c, bins=2) == 0.0
    assert ece(p, c, bins=8) == pytest.approx(np.mean(np.abs(np.array(c) - np.array(p))))


# --------------------------------------------------------------------------
# Brier / log loss
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_brier_and_log_loss_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.001, 0.999, 100)
    c = (rng.random(100) < p).astype(int)
    assert brier(p, c) == pytest.approx(brier_score_loss(c, p), abs=1e-12)
    assert log_loss(p, c) == pytest.approx(sk_log_loss(c, p), abs=1e-12)


def test_log_loss_clips_like_sklearn_eps():
    assert log_loss([0.0], [1]) == pytest.approx(-math.log(1e-15), rel=1e-12)
    assert log_loss([1.0], [0]) == pytest.approx(-math.log(1 - (1 - 1e-15)), rel=1e-12)  # 1 - eps, rounded
    assert log_loss([1.0, 0.0], [1, 0]) == pytest.approx(-math.log1p(-1e-15), rel=1e-9)
    assert log_loss([0.2, 0.0], [1, 0], eps=0.1) == pytest.approx(-(math.log(0.2) + math.log(0.9)) / 2)
    with np.errstate(all="raise"):
        assert log_loss([0.0, 0.5], [1, 1], eps=0.0) == math.inf
    for eps in (-1e-3, 0.5, "1e-15"):
        with pytest.raises(ValueError, match="eps"):
            log_loss([0.5], [1], eps=eps)


def test_probability_metrics_defined_for_single_class():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert brier([0.9, 0.7], [1, 1]) == pytest.approx((0.01 + 0.09) / 2)
        assert log_loss([0.9, 0.7], [1, 1]) == pytest.approx(-(math.log(0.9) + math.log(0.7)) / 2)
        assert ece([0.9, 0.7], [0, 0], bins=1) == pytest.approx(0.8)


P_FUNCS = [ece, brier, log_loss, reliability_curve]


@pytest.mark.parametrize("fn", P_FUNCS)
@pytest.mark.parametrize("bad", [1.2, -0.1, np.inf])
def test_probabilities_outside_unit_interval(fn, bad):
    with pytest.raises(ValueError, match=r"probabilities must be in \[0, 1\]; found 1 value"):
        fn([0.2, bad, 0.5], [1, 0, 1])


@pytest.mark.parametrize("fn", P_FUNCS)
def test_probability_input_validation(fn):
    with pytest.raises(ValueError, match=r"len\(probabilities\)=3, len\(correct\)=2"):
        fn([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="binary"):
        fn([0.1, 0.2], [0, 0.5])
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
    with pytest.raises(ValueError, match=r"probabilities contains 1 NaN.*nan_policy='omit'"):
        fn([0.1, np.nan, 0.3], [0, 1, 1])
    with pytest.warns(UserWarning, match="dropping 1 sample"):
        got = fn([0.1, np.nan, 0.3], [0, 1, 1], nan_policy="omit")
    expected = fn([0.1, 0.3], [0, 1])
    assert np.all(np.equal(got, expected)) if isinstance(got, float) else all(map(np.array_equal, got, expected))


@pytest.mark.parametrize("fn", [ece, reliability_curve])
def test_bins_validation(fn):
    for bins in (0, 2.5, True):
        with pytest.raises(ValueError, match="bins must be an integer >= 1"):
            fn([0.1, 0.2], [0, 1], bins=bins)


# --------------------------------------------------------------------------
# Selective accuracy
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("coverage", [0.1, 0.5, 0.8, 0.9, 1.0, 0.33])
def test_selective_accuracy_matches_loop(seed, coverage):
    u, c = make_data(seed, 57, decimals=1)  # many ties
    assert selective_accuracy(u, c, coverage) == pytest.approx(reference_selective_accuracy(u, c, coverage))


def test_selective_accuracy_rules():
    u = np.arange(10) / 10
    c = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 0])
    assert selective_accuracy(u, c, 0.7) == 1.0
    u100 = np.arange(100) / 100
    c100 = np.array([1] * 7 + [0] * 93)
    assert 0.07 * 100 > 7 and selective_accuracy(u100, c100, 0.07) == 1.0  # float noise: still 7 answers
    assert selective_accuracy(u, c, 0.71) == 7 / 8  # ceil(7.1) = 8
    assert selective_accuracy(u, c, 1e-9) == 1.0  # at least one answer
    assert selective_accuracy(u, c, 1.0) == c.mean()
    # Ties keep input order (stable sort, as AURC): u=[0.5, 0.2, 0.5], 2 of 3 answers = idx 1, 0.
    assert selective_accuracy([0.5, 0.2, 0.5], [0, 1, 1], 2 / 3) == 0.5
    assert selective_accuracy([0.5, 0.2, 0.5], [1, 1, 0], 2 / 3) == 1.0
    assert selective_accuracy([np.inf, 0.1, -np.inf], [0, 1, 0], 2 / 3) == 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert selective_accuracy([0.1, 0.2], [0, 0], 0.5) == 0.0


def test_selective_accuracy_validation():
    for coverage in (0, -0.5, 1.5, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match=r"coverage must be a number in \(0, 1\]"):
            selective_accuracy([0.1, 0.2], [0, 1], coverage)
    with pytest.raises(ValueError, match=r"len\(uncertainty\)=3"):
        selective_accuracy([0.1, 0.2, 0.3], [0, 1], 0.5)
    with pytest.raises(ValueError, match="1 NaN"):
        selective_accuracy([0.1, np.nan], [0, 1], 0.5)
    with pytest.warns(UserWarning, match="dropping 1 sample"):
        assert selective_accuracy([0.1, np.nan, 0.3], [1, 0, 0], 0.5, nan_policy="omit") == 1.0


# --------------------------------------------------------------------------
# calibration_metrics
# --------------------------------------------------------------------------

KEYS = ["ece", "brier", "log_loss", "selective_accuracy_50", "selective_accuracy_80", "selective_accuracy_90"]


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibration_metrics_consistent_with_parts(method):
    u, c = make_data(5, 300, decimals=2)
    res = calibration_metrics(u, c, method=method, folds=4, seed=2, bins=8, n_resamples=200, bootstrap_seed=9)
    assert list(res) == KEYS
    assert all(isinstance(r, BootstrapResult) and r.n == 300 for r in res.values())
    p = cross_fit_probabilities(u, c, method=method, folds=4, seed=2)
    assert res["ece"].value == ece(p, c, bins=8)
    assert res["brier"].value == brier(p, c)
    assert res["log_loss"].value == log_loss(p, c)
    assert res["brier"] == bootstrap_ci(brier, p, c, n_resamples=200, seed=9)
    for cov in (50, 80, 90):
        r = res[f"selective_accuracy_{cov}"]
        assert r.value == selective_accuracy(u, c, cov / 100)
        assert r.low <= r.value <= r.high and r.n_resamples_used == 200
    assert res["selective_accuracy_50"].value > res["selective_accuracy_90"].value  # informative score
    assert res["ece"].stderr > 0


def test_calibration_metrics_single_class_is_nan_not_a_crash():
    u = np.linspace(0, 1, 20)
    with pytest.warns(UndefinedMetricWarning, match="all 20 answers are correct"):
        res = calibration_metrics(u, np.ones(20, dtype=int), n_resamples=50)
    for key in ("ece", "brier", "log_loss"):
        assert np.isnan(res[key].value) and np.isnan(res[key].low) and res[key].n_resamples_used == 0
    assert res["selective_accuracy_80"].value == 1.0


def test_calibration_metrics_nan_scores_dropped_by_default():
    u, c = make_data(6, 200)
    u = u.astype(float)
    u[[0, 7]] = np.nan
    with pytest.warns(UserWarning, match="dropping 2 sample"):
        res = calibration_metrics(u, c, n_resamples=100)
    keep = ~np.isnan(u)
    assert res == calibration_metrics(u[keep], c[keep], n_resamples=100)
    with pytest.raises(ValueError, match="nan_policy='omit'"):
        calibration_metrics(u, c, nan_policy="raise")


def test_calibration_metrics_parameter_validation():
    u, c = make_data(0, 50)
    with pytest.raises(ValueError, match="n_resamples"):
        calibration_metrics(u, c, n_resamples=1)
    with pytest.raises(ValueError, match="bins"):
        calibration_metrics(u, c, bins=0)
    with pytest.raises(ValueError, match="needs at least 100 answers"):
        calibration_metrics(u, c, folds=50)


def test_cross_fitted_isotonic_is_roughly_calibrated():
    # Large sample from a known calibration curve: cross-fitted ECE must be small, and far smaller
    # than that of a deliberately miscalibrated map (probabilities squashed toward 0.5).
    rng = np.random.default_rng(0)
    u = rng.random(5000)
    c = (rng.random(5000) < 1 - u).astype(int)
    p = cross_fit_probabilities(u, c)
    assert ece(p, c) < 0.02
    assert ece(0.5 + 0.5 * (p - 0.5), c) > 0.1


def test_calibration_metrics_is_fast():
    import time

    u, c = make_data(0, 1000, decimals=None)
    t0 = time.perf_counter()
    calibration_metrics(u, c, n_resamples=1000)
    assert time.perf_counter() - t0 < 10.0  # ~0.5 s expected; loose for CI noise


def test_docstring_examples():
    result = doctest.testmod(confidence_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 9 and result.failed == 0
