"""Tests for lm_eval_semgrad.metrics (uncertainty-quality metrics + bootstrap)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score

from lm_eval_semgrad.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    BootstrapResult,
    UndefinedMetricWarning,
    auprc,
    aurc,
    auroc,
    bootstrap_ci,
    evaluate_uncertainty,
    prr,
    spearman,
)

SEEDS = [0, 1, 2, 3, 4, 5, 6, 7]
UNDEFINED_WHEN_SINGLE_CLASS = [auroc, auprc, prr, spearman]


def make_data(seed: int, n: int = 200, decimals: int | None = 1):
    """Informative but noisy uncertainty; rounding creates many ties."""
    rng = np.random.default_rng(seed)
    c = (rng.random(n) < 0.6).astype(int)
    u = rng.random(n) + 0.4 * (1 - c)
    if decimals is not None:
        u = np.round(u, decimals)
    return u, c


def reference_prr(u, c) -> float:
    """Straightforward loop version of LM-Polygraph's PRR (pred_rej_area.py +
    normalize_metric), with a stable sort for deterministic ties."""
    q = np.asarray(c, dtype=float)
    q = (q - q.min()) / (q.max() - q.min())
    n = len(q)

    def area(scores):
        order = np.argsort(scores, kind="stable")  # least uncertain first
        total = 0.0
        for j in range(n):  # reject the j most uncertain
            kept = q[order][: n - j]
            total += kept.mean()
        return total / n

    raw = area(np.asarray(u, dtype=float))
    oracle = area(-q)
    random = q.mean()
    return (raw - random) / (oracle - random)


# --------------------------------------------------------------------------
# Agreement with sklearn / scipy / reference implementation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n,decimals", [(200, 1), (37, 1), (500, None), (15, 0)])
def test_auroc_matches_sklearn(seed, n, decimals):
    u, c = make_data(seed, n, decimals)
    if len(set(c)) < 2:
        pytest.skip("single class draw")
    assert auroc(u, c) == pytest.approx(roc_auc_score(1 - c, u), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n,decimals", [(200, 1), (37, 1), (500, None), (15, 0)])
def test_auprc_matches_sklearn_with_ties(seed, n, decimals):
    u, c = make_data(seed, n, decimals)
    if len(set(c)) < 2:
        pytest.skip("single class draw")
    assert auprc(u, c) == pytest.approx(average_precision_score(1 - c, u), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n,decimals", [(200, 1), (37, 1), (500, None)])
def test_spearman_matches_scipy(seed, n, decimals):
    u, c = make_data(seed, n, decimals)
    assert spearman(u, c) == pytest.approx(spearmanr(u, 1 - c).statistic, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n,decimals", [(60, 1), (25, None), (40, 0)])
def test_prr_matches_reference_loop(seed, n, decimals):
    u, c = make_data(seed, n, decimals)
    if len(set(c)) < 2:
        pytest.skip("single class draw")
    assert prr(u, c) == pytest.approx(reference_prr(u, c), abs=1e-12)


def test_all_ties_auroc_is_half():
    u = np.zeros(10)
    c = np.array([0, 1] * 5)
    assert auroc(u, c) == pytest.approx(0.5)
    assert auprc(u, c) == pytest.approx(average_precision_score(1 - c, u))


def test_perfect_and_inverse_separation():
    c = np.array([1, 1, 1, 0, 0])
    u_good = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    assert auroc(u_good, c) == 1.0
    assert auprc(u_good, c) == 1.0
    assert aurc(-u_good, c) > aurc(u_good, c)
    assert auroc(-u_good, c) == 0.0


# --------------------------------------------------------------------------
# Hand-computed AURC / PRR
# --------------------------------------------------------------------------


def test_aurc_hand_computed():
    # Sorted by u ascending: 0.1(c=1), 0.35(c=1), 0.4(c=0), 0.8(c=0)
    # errors 0,0,1,1 -> risk_k = 0/1, 0/2, 1/3, 2/4
    # AURC = (0 + 0 + 1/3 + 1/2) / 4 = (5/6)/4 = 5/24
    u = [0.1, 0.4, 0.35, 0.8]
    c = [1, 0, 1, 0]
    assert aurc(u, c) == pytest.approx(5 / 24)


def test_aurc_ties_use_stable_sort():
    # u = [0.5, 0.2, 0.5]; stable ascending order is idx 1, 0, 2.
    # c = [0, 1, 1]: errors 0,1,0 -> risks 0, 1/2, 1/3 -> AURC = (5/6)/3 = 5/18
    assert aurc([0.5, 0.2, 0.5], [0, 1, 1]) == pytest.approx(5 / 18)
    # c = [1, 1, 0]: errors 0,0,1 -> risks 0, 0, 1/3 -> AURC = 1/9
    assert aurc([0.5, 0.2, 0.5], [1, 1, 0]) == pytest.approx(1 / 9)


def test_aurc_defined_for_single_class():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert aurc([0.3, 0.1, 0.2], [1, 1, 1]) == 0.0
        assert aurc([0.3, 0.1, 0.2], [0, 0, 0]) == 1.0


def test_prr_hand_computed():
    # u already ascending, q = c = [1, 0, 1, 0] (min-max normalisation is identity)
    # kept means for k = 4..1 kept (first k): k=1: 1, k=2: 1/2, k=3: 2/3, k=4: 2/4
    # raw = (1 + 1/2 + 2/3 + 1/2)/4 = (8/3)/4 = 2/3
    # oracle order 1,1,0,0: 1, 1, 2/3, 1/2 -> (19/6)/4 = 19/24
    # random = mean(q) = 1/2
    # PRR = (2/3 - 1/2) / (19/24 - 1/2) = (1/6) / (7/24) = 4/7
    u = [0.1, 0.2, 0.3, 0.4]
    c = [1, 0, 1, 0]
    assert prr(u, c) == pytest.approx(4 / 7)
    assert reference_prr(u, c) == pytest.approx(4 / 7)
    # and for binary quality raw == 1 - AURC: AURC = (0 + 1/2 + 1/3 + 1/2)/4 = 1/3
    assert aurc(u, c) == pytest.approx(1 / 3)


@pytest.mark.parametrize("seed", SEEDS)
def test_prr_oracle_reversed_random(seed):
    _, c = make_data(seed, n=80)
    q = c.astype(float)
    assert prr(-q, c) == pytest.approx(1.0)  # oracle ordering
    assert prr(q, c) < 0  # most confident are the wrong ones
    # With noise added to the oracle scores ties are broken, still oracle.
    rng = np.random.default_rng(seed)
    assert prr(-q + 0.01 * rng.random(len(q)), c) == pytest.approx(1.0)


def test_prr_random_is_zero_on_average():
    _, c = make_data(0, n=100)
    rng = np.random.default_rng(42)
    vals = [prr(rng.permutation(100).astype(float), c) for _ in range(1000)]
    assert abs(np.mean(vals)) < 0.03


# --------------------------------------------------------------------------
# Degenerate inputs
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fn", UNDEFINED_WHEN_SINGLE_CLASS)
@pytest.mark.parametrize("label,word", [(1, "correct"), (0, "incorrect")])
def test_single_class_returns_nan_with_warning(fn, label, word):
    with pytest.warns(UndefinedMetricWarning, match=f"all 4 answers are {word}"):
        out = fn([0.1, 0.5, 0.2, 0.9], [label] * 4)
    assert isinstance(out, float) and np.isnan(out)


def test_spearman_constant_uncertainty_is_nan():
    with pytest.warns(UndefinedMetricWarning, match="constant"):
        assert np.isnan(spearman([0.3, 0.3, 0.3], [1, 0, 1]))


def test_nan_scores_raise_by_default():
    u = [0.1, np.nan, 0.3, np.nan, 0.5]
    c = [1, 0, 1, 0, 0]
    for fn in METRICS.values():
        with pytest.raises(ValueError, match=r"2 NaN.*nan_policy='omit'"):
            fn(u, c)


def test_nan_scores_omitted_with_warning():
    u = [0.1, np.nan, 0.3, 0.9, 0.5]
    c = [1, 0, 1, 0, 0]
    for name, fn in METRICS.items():
        with pytest.warns(UserWarning, match="dropping 1 sample"):
            got = fn(u, c, nan_policy="omit")
        assert got == pytest.approx(fn([0.1, 0.3, 0.9, 0.5], [1, 1, 0, 0])), name


def test_all_nan_scores_raise_even_when_omitting():
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="all uncertainty values are NaN"):
        auroc([np.nan, np.nan], [0, 1], nan_policy="omit")


def test_bad_nan_policy():
    with pytest.raises(ValueError, match="nan_policy"):
        auroc([0.1, 0.2], [0, 1], nan_policy="propagate")


# --------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fn", list(METRICS.values()))
def test_mismatched_lengths(fn):
    with pytest.raises(ValueError, match=r"len\(uncertainty\)=3, len\(correct\)=2"):
        fn([0.1, 0.2, 0.3], [0, 1])


@pytest.mark.parametrize("fn", list(METRICS.values()))
def test_non_binary_correct(fn):
    with pytest.raises(ValueError, match=r"binary.*0\.5.*2"):
        fn([0.1, 0.2, 0.3, 0.4], [0, 0.5, 1, 2])


def test_non_binary_correct_nan_and_strings():
    with pytest.raises(ValueError, match="nan"):
        auroc([0.1, 0.2], [0, np.nan])
    with pytest.raises(ValueError, match="'yes'"):
        auroc([0.1, 0.2], ["yes", "no"])


def test_empty_input():
    with pytest.raises(ValueError, match="empty"):
        auroc([], [])


def test_non_1d_and_non_numeric():
    with pytest.raises(ValueError, match="1-D"):
        auroc(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="numeric"):
        auroc(["a", "b"], [0, 1])


def test_accepts_array_likes():
    u = [0.9, 0.1, 0.4, 0.3]
    expected = auroc(np.array(u), np.array([0, 1, 1, 0]))
    assert auroc(tuple(u), [False, True, True, False]) == expected
    assert auroc(np.array(u)[:, None], np.array([0, 1, 1, 0])[:, None]) == expected
    assert auroc(u, np.array([0.0, 1.0, 1.0, 0.0])) == expected


def test_infinite_scores_are_ordered_not_rejected():
    # Unlike sklearn we accept +-inf (e.g. -log p with p == 0): only the order matters.
    u = np.array([np.inf, 0.1, -np.inf, np.inf, 0.5, 0.2])
    finite = np.array([1e9, 0.1, -1e9, 1e9, 0.5, 0.2])
    c = np.array([0, 1, 1, 0, 1, 0])
    for name, fn in METRICS.items():
        assert fn(u, c) == pytest.approx(fn(finite, c)), name


def test_registries():
    assert set(METRICS) == {"auroc", "auprc", "aurc", "prr", "spearman"}
    assert set(HIGHER_IS_BETTER) == set(METRICS)
    assert HIGHER_IS_BETTER["aurc"] is False
    assert all(HIGHER_IS_BETTER[k] for k in METRICS if k != "aurc")


# --------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(METRICS))
def test_bootstrap_basic_properties(name):
    u, c = make_data(3, n=400)
    fn = METRICS[name]
    r1 = bootstrap_ci(fn, u, c, n_resamples=500, seed=7)
    r2 = bootstrap_ci(fn, u, c, n_resamples=500, seed=7)
    r3 = bootstrap_ci(fn, u, c, n_resamples=500, seed=8)
    assert isinstance(r1, BootstrapResult)
    assert r1 == r2  # deterministic given the seed
    assert r1 != r3
    assert r1.value == pytest.approx(fn(u, c))
    assert r1.low <= r1.value <= r1.high
    assert r1.stderr > 0
    assert r1.n == 400 and r1.n_resamples_used == 500


def test_bootstrap_accepts_metric_name_and_is_frozen():
    u, c = make_data(1, n=100)
    r = bootstrap_ci("auroc", u, c, n_resamples=200)
    assert r == bootstrap_ci(auroc, u, c, n_resamples=200)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.value = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci("nope", u, c)


@pytest.mark.parametrize("name", list(METRICS))
def test_bootstrap_vectorised_equals_loop(name):
    # A wrapping lambda is not recognised as built-in, so it takes the loop
    # path; same seed -> same resamples -> identical results.
    u, c = make_data(5, n=60)
    fn = METRICS[name]
    fast = bootstrap_ci(fn, u, c, n_resamples=200, seed=3)
    slow = bootstrap_ci(lambda a, b: fn(a, b), u, c, n_resamples=200, seed=3)
    assert fast.n_resamples_used == slow.n_resamples_used
    for field in ("value", "low", "high", "stderr"):
        assert getattr(fast, field) == pytest.approx(getattr(slow, field), abs=1e-12)


def test_bootstrap_skips_single_class_resamples():
    # 1 incorrect in 10: P(resample has no incorrect) = 0.9**10 ~ 0.35
    u = np.linspace(0, 1, 10)
    c = np.array([1] * 9 + [0])
    r = bootstrap_ci(auroc, u, c, n_resamples=1000, seed=0)
    assert 550 < r.n_resamples_used < 750
    assert r.value == 1.0 and r.high == 1.0


def test_bootstrap_too_few_valid_resamples_gives_nan():
    u, c = make_data(0, n=50)
    c[0] = 0

    def picky(a, b):  # defined only if the first resampled item is incorrect
        return float("nan") if b[0] == 1 else auroc(a, b)

    with pytest.warns(UndefinedMetricWarning, match="bootstrap resamples"):
        r = bootstrap_ci(picky, u, c, n_resamples=200)
    assert r.value == pytest.approx(auroc(u, c))
    assert np.isnan(r.low) and np.isnan(r.high) and np.isnan(r.stderr)
    assert r.n_resamples_used < 100


def test_bootstrap_undefined_point_estimate():
    with pytest.warns(UndefinedMetricWarning):
        r = bootstrap_ci(auroc, [0.1, 0.2, 0.3], [1, 1, 1])
    assert np.isnan(r.value) and np.isnan(r.low) and r.n_resamples_used == 0


def test_bootstrap_param_validation():
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci(auroc, [0.1, 0.2], [0, 1], n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(auroc, [0.1, 0.2], [0, 1], confidence=1.5)


def test_bootstrap_confidence_width():
    u, c = make_data(2, n=300)
    wide = bootstrap_ci(auroc, u, c, confidence=0.99)
    narrow = bootstrap_ci(auroc, u, c, confidence=0.5)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_evaluate_uncertainty():
    u, c = make_data(4, n=300)
    u = u.astype(float)
    u[[3, 10]] = np.nan
    with pytest.warns(UserWarning, match="dropping 2 sample"):
        res = evaluate_uncertainty(u, c, n_resamples=200, seed=1)
    assert list(res) == ["auroc", "auprc", "aurc", "prr", "spearman"]
    keep = ~np.isnan(u)
    for name, r in res.items():
        assert r.n == 298
        assert r.value == pytest.approx(METRICS[name](u[keep], c[keep]))
        assert r == bootstrap_ci(name, u[keep], c[keep], n_resamples=200, seed=1)

    sub = evaluate_uncertainty(u[keep], c[keep], metrics=["aurc"], n_resamples=50)
    assert list(sub) == ["aurc"]
    with pytest.raises(ValueError, match="nan_policy='omit'"):
        evaluate_uncertainty(u, c, nan_policy="raise")
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_uncertainty(u[keep], c[keep], metrics=["auroc", "brier"])


def test_bootstrap_is_fast():
    import time

    u, c = make_data(0, n=1000)
    t0 = time.perf_counter()
    evaluate_uncertainty(u, c, n_resamples=1000)
    assert time.perf_counter() - t0 < 5.0  # ~0.5 s expected; loose for CI noise
