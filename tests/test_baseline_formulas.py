"""The sampling/NLI baselines' post-processing formulas (lm_eval_semgrad.sampling) against docs/method.md §3.

Three kinds of checks: the worked numbers of docs/method.md §3.13, an independent computation of
each formula written here from its definition (loops, scipy), and the degenerate cases of each section.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import scipy.linalg
from scipy.special import logsumexp

from lm_eval_semgrad.sampling.density import semantic_density_score, semantic_distances
from lm_eval_semgrad.sampling.entropy import (
    discrete_semantic_entropy,
    ln_predictive_entropy,
    predictive_entropy,
    semantic_cluster_ids,
    semantic_entropy,
)
from lm_eval_semgrad.sampling.graph import (
    degree_uncertainty,
    eccentricity_uncertainty,
    eigenvalue_uncertainty,
    self_consistency,
    similarity_matrix,
)
from lm_eval_semgrad.sampling.inside import inside_hidden_state_index, inside_score
from lm_eval_semgrad.sampling.lexical import lex_sim
from lm_eval_semgrad.sampling.mutual_information import (
    f1_clusters,
    mi_score,
    mu1,
    mu2_pairs,
    mu2_prompt,
    squad_f1,
    squad_normalize,
)
from lm_eval_semgrad.sampling.p_true import p_true_prompt
from lm_eval_semgrad.sampling.sar import sar, sentence_sar, token_removal_texts, token_sar

SEEDS = range(6)


def random_log_probs(rng: np.random.Generator, k: int, scale: float = 1.0) -> list[list[float]]:
    return [list(-scale * rng.exponential(size=rng.integers(1, 8))) for _ in range(k)]


# ============================================================================ §3.1 LN-PE and PE

A1_LOG_PROBS = [[-0.1, -0.2, -0.05], [-0.3, -0.1], [-1.2, -0.7, -0.4, -0.2], [-2.0, -0.9], [-0.2, -0.15, -0.1]]
A1_IDS = [0, 0, 1, 2, 0]


def test_a1_predictive_entropies():
    assert ln_predictive_entropy(A1_LOG_PROBS) == pytest.approx(0.508333333, abs=5e-10)
    assert predictive_entropy(A1_LOG_PROBS) == pytest.approx(1.32, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_predictive_entropies_match_direct_sums(seed):
    lps = random_log_probs(np.random.default_rng(seed), 10)
    ln_pe = -math.fsum(math.fsum(lp) / len(lp) for lp in lps) / len(lps)
    pe = -math.fsum(math.fsum(lp) for lp in lps) / len(lps)
    assert ln_predictive_entropy(lps) == pytest.approx(ln_pe, abs=1e-12)
    assert predictive_entropy(lps) == pytest.approx(pe, abs=1e-12)


def test_predictive_entropy_of_forced_tokens_is_zero():
    assert ln_predictive_entropy([[0.0, 0.0], [0.0]]) == 0.0
    assert predictive_entropy([[0.0, 0.0], [0.0]]) == 0.0


@pytest.mark.parametrize(
    ("log_probs", "message"),
    [
        ([[-0.1]], "at least 2"),
        ([[-0.1], []], "EOS"),
        ([[-0.1], [float("nan")]], "non-finite"),
        ([[-0.1], [[-1.0]]], "flat"),
    ],
)
def test_predictive_entropy_rejects_bad_input(log_probs, message):
    with pytest.raises(ValueError, match=message):
        ln_predictive_entropy(log_probs)


# ============================================================================ §3.7 semantic clustering


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        ([[2, 2, 1], [2, 2, 2], [1, 2, 2]], [0, 0, 1]),  # chain: no transitivity
        ([[2, 0, 2], [0, 2, 2], [2, 2, 2]], [0, 1, 1]),  # overwrite: 2 is taken by representative 1
        ([[2, 2, 1], [1, 2, 1], [1, 1, 2]], [0, 0, 1]),  # (entail, neutral) is equivalent
    ],
)
def test_b4_clustering(classes, expected):
    assert semantic_cluster_ids(classes) == expected


@pytest.mark.parametrize(
    ("ij", "ji", "equivalent", "strict_equivalent"),
    [
        (2, 2, True, True),
        (2, 1, True, False),
        (1, 2, True, False),
        (1, 1, False, False),
        (2, 0, False, False),
        (0, 2, False, False),
        (0, 0, False, False),
        (1, 0, False, False),
    ],
)
def test_clustering_pair_rule(ij, ji, equivalent, strict_equivalent):
    classes = [[2, ij], [ji, 2]]
    assert semantic_cluster_ids(classes) == ([0, 0] if equivalent else [0, 1])
    assert semantic_cluster_ids(classes, strict=True) == ([0, 0] if strict_equivalent else [0, 1])


def reference_clusters(classes: np.ndarray, threshold: int) -> list[int]:
    """Representatives are the samples no earlier representative is equivalent to; every other sample
    ends in the cluster of the *last* earlier representative equivalent to it (later ones overwrite)."""
    representatives: list[int] = []
    ids = []
    for i in range(len(classes)):
        claiming = [n for n, r in enumerate(representatives) if classes[r][i] * classes[i][r] >= threshold]
        if claiming:
            ids.append(claiming[-1])
        else:
            representatives.append(i)
            ids.append(len(representatives) - 1)
    return ids


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("strict", [False, True])
def test_clustering_matches_representative_rule(seed, strict):
    rng = np.random.default_rng(seed)
    for _ in range(50):
        k = int(rng.integers(2, 11))
        classes = rng.choice([0, 1, 2], size=(k, k), p=[0.2, 0.3, 0.5])
        np.fill_diagonal(classes, 2)
        assert semantic_cluster_ids(classes, strict=strict) == reference_clusters(classes, 4 if strict else 2)


def test_clustering_ignores_the_diagonal_and_identical_samples_form_one_cluster():
    classes = np.full((4, 4), 2)
    np.fill_diagonal(classes, 0)
    assert semantic_cluster_ids(classes) == [0, 0, 0, 0]


@pytest.mark.parametrize(
    ("classes", "message"),
    [([[2]], "at least 2"), ([[2, 3], [2, 2]], "argmax NLI classes"), ([[2, 2, 2], [2, 2, 2]], "square")],
)
def test_clustering_rejects_bad_input(classes, message):
    with pytest.raises(ValueError, match=message):
        semantic_cluster_ids(classes)


# ============================================================================ §3.7 semantic entropy


def test_a1_semantic_entropies():
    assert semantic_entropy(A1_LOG_PROBS, A1_IDS) == pytest.approx(0.681676130, abs=5e-10)
    assert semantic_entropy(A1_LOG_PROBS, A1_IDS, length_normalised=False) == pytest.approx(0.280198578, abs=5e-10)
    assert discrete_semantic_entropy(A1_IDS) == pytest.approx(0.950270539, abs=5e-10)


def test_a1_one_cluster_gives_zero():
    ones = [0] * len(A1_LOG_PROBS)
    assert semantic_entropy(A1_LOG_PROBS, ones) == 0.0
    assert semantic_entropy(A1_LOG_PROBS, ones, length_normalised=False) == 0.0
    assert discrete_semantic_entropy(ones) == 0.0


def reference_semantic_entropy(lps, ids, length_normalised):
    lam = np.array([np.mean(lp) if length_normalised else np.sum(lp) for lp in lps])
    log_total = logsumexp(lam)
    log_p = [logsumexp(lam[np.asarray(ids) == c]) - log_total for c in sorted(set(ids))]
    return -sum(math.exp(lp) * lp for lp in log_p)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("length_normalised", [True, False])
def test_semantic_entropy_matches_stable_logsumexp(seed, length_normalised):
    rng = np.random.default_rng(seed)
    lps = random_log_probs(rng, 10)
    ids = semantic_cluster_ids(np.where(rng.random((10, 10)) < 0.6, 2, 1))
    expected = reference_semantic_entropy(lps, ids, length_normalised)
    assert semantic_entropy(lps, ids, length_normalised) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_discrete_semantic_entropy_matches_counts(seed):
    ids = list(np.random.default_rng(seed).integers(0, 4, size=10))
    counts = Counter(ids)
    expected = -sum(n / 10 * math.log(n / 10) for n in counts.values())
    assert discrete_semantic_entropy(ids) == pytest.approx(expected, abs=1e-12)


def test_discrete_semantic_entropy_of_distinct_samples_is_log_k():
    assert discrete_semantic_entropy(list(range(10))) == pytest.approx(math.log(10), abs=1e-12)


def test_semantic_entropy_no_ln_underflow_is_nan():
    # A cluster whose normalised mass underflows: 0 * log 0 in the code's naive arithmetic.
    assert math.isnan(semantic_entropy([[-800.0], [-5.0]], [0, 1], length_normalised=False))
    # Every exp(lambda) underflows: the code's arithmetic gives -inf; returned as NaN (docs/method.md §3.7; §6.14).
    assert math.isnan(semantic_entropy([[-800.0], [-900.0]], [0, 1], length_normalised=False))
    # Sums of -800 vs -5 underflow, means of -4 vs -5 do not: the length-normalised variant is finite.
    long_and_short = [[-4.0] * 200, [-5.0]]
    assert math.isnan(semantic_entropy(long_and_short, [0, 1], length_normalised=False))
    assert math.isfinite(semantic_entropy(long_and_short, [0, 1]))


def test_semantic_entropy_accepts_empty_answer_texts_and_rejects_bad_ids():
    with pytest.raises(ValueError, match="one id per sample"):
        semantic_entropy(A1_LOG_PROBS, [0, 1])
    with pytest.raises(ValueError, match="integer"):
        semantic_entropy(A1_LOG_PROBS, [0.0, 1.0, 0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="at least 2"):
        discrete_semantic_entropy([0])


# ============================================================================ §3.4 Self-Con


def test_b3_self_consistency_is_strict():
    assert self_consistency([0.97, 0.51, 0.5, 0.1, 0.88]) == pytest.approx(0.4, abs=1e-12)


def test_self_consistency_compares_in_float32():
    assert self_consistency([0.5 + 1e-9, 0.9]) == 0.5  # rounds to 0.5 in float32: not counted
    assert self_consistency([0.5 + 1e-7, 0.9]) == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_self_consistency_matches_count(seed):
    s = np.random.default_rng(seed).random(10)
    assert self_consistency(s) == pytest.approx(1 - sum(1 for x in s if x > 0.5) / 10, abs=1e-15)


def test_self_consistency_degenerate_and_invalid():
    assert self_consistency([0.99] * 10) == 0.0
    assert self_consistency([0.1] * 10) == 1.0
    with pytest.raises(ValueError, match="at least 1"):
        self_consistency([])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        self_consistency([1.2])
    with pytest.raises(ValueError, match="NaN"):
        self_consistency([float("nan")])


# ============================================================================ §3.5 Deg, EigV, Ecc

B2_W = [[1, 0.95, 0.9, 0.05], [0.95, 1, 0.85, 0.1], [0.9, 0.85, 1, 0.02], [0.05, 0.1, 0.02, 1]]


def reference_spectrum(w: np.ndarray, threshold: float = 0.9):
    """float64 spectrum of the normalised Laplacian of the float32-rounded W (scipy), kept part only."""
    w = np.asarray(w, dtype=np.float32).astype(np.float64)
    d = w.sum(axis=1)
    laplacian = np.eye(len(w)) - w / np.sqrt(np.outer(d, d))
    values, vectors = scipy.linalg.eigh(laplacian)
    keep = values < threshold
    return values, values[keep], vectors[:, keep]


def reference_graph_scores(w):
    w32 = np.asarray(w, dtype=np.float32)
    k = len(w32)
    deg = 1 - sum(float(w32[i, j]) for i in range(k) for j in range(k)) / k**2
    _, kept, vectors = reference_spectrum(w)
    eigv = sum(max(0.0, 1 - lam) for lam in kept)
    centred = vectors - vectors.mean(axis=0)
    ecc = scipy.linalg.svdvals(centred).max()
    frobenius = math.sqrt(sum(np.linalg.norm(centred[:, c]) ** 2 for c in range(centred.shape[1])))
    return deg, eigv, ecc, frobenius


def graph_scores(w):
    return degree_uncertainty(w), eigenvalue_uncertainty(w), eccentricity_uncertainty(w)


def test_b2_graph_scores():
    deg, eigv, ecc = graph_scores(B2_W)
    assert deg == pytest.approx(0.39125, abs=5e-8)  # float32 entries
    assert eigv == pytest.approx(1.836200, abs=1e-6)  # float32 eigh; exact for the float32 W: 1.8362005
    assert ecc == pytest.approx(1.0, abs=5e-7)
    assert reference_graph_scores(B2_W)[3] == pytest.approx(1.000119, abs=5e-7)  # lm-polygraph's Frobenius norm


@pytest.mark.parametrize(
    ("w", "expected", "frobenius"),
    [(np.ones((4, 4)), (0.0, 1.0, 0.0), 0.0), (np.eye(4), (0.75, 4.0, 1.0), math.sqrt(3))],
)
def test_b2_degenerate_graphs(w, expected, frobenius):
    assert graph_scores(w) == pytest.approx(expected, abs=1e-6)
    assert reference_graph_scores(w)[3] == pytest.approx(frobenius, abs=1e-6)


def test_graph_scores_for_k10_extremes():
    assert graph_scores(np.eye(10)) == pytest.approx((0.9, 10.0, 1.0), abs=1e-6)
    assert graph_scores(np.ones((10, 10))) == pytest.approx((0.0, 1.0, 0.0), abs=1e-6)


@pytest.mark.parametrize("seed", range(20))
def test_graph_scores_match_scipy_spectrum(seed):
    rng = np.random.default_rng(seed)
    while True:  # redraw when an eigenvalue sits at the threshold, where float32 and float64 may disagree
        w = similarity_matrix(rng.beta(0.5, 0.5, size=(10, 10)))
        if np.min(np.abs(reference_spectrum(w)[0] - 0.9)) > 1e-4:
            break
    deg, eigv, ecc, _ = reference_graph_scores(w)
    assert degree_uncertainty(w) == pytest.approx(deg, abs=1e-12)
    assert eigenvalue_uncertainty(w) == pytest.approx(eigv, abs=1e-5)  # float32 eigh
    assert eccentricity_uncertainty(w) == pytest.approx(ecc, abs=1e-5)


def test_similarity_matrix_symmetrises_in_float32_and_ignores_the_diagonal():
    rng = np.random.default_rng(7)
    e = rng.random((5, 5))
    e[np.diag_indices(5)] = np.nan
    w = similarity_matrix(e)
    assert w.dtype == np.float32
    for i in range(5):
        for j in range(5):
            assert w[i, j] == np.float32(1.0 if i == j else (e[i, j] + e[j, i]) / 2)


@pytest.mark.parametrize(
    ("w", "message"),
    [
        (np.ones((1, 1)), "at least 2"),
        (np.ones((2, 3)), "square"),
        ([[1, 0.2], [0.3, 1]], "symmetric"),
        ([[0.9, 0.2], [0.2, 1]], "unit diagonal"),
        ([[1, 1.5], [1.5, 1]], r"\[0, 1\]"),
        ([[1, np.nan], [np.nan, 1]], r"\[0, 1\]"),
    ],
)
def test_graph_scores_reject_bad_matrices(w, message):
    with pytest.raises(ValueError, match=message):
        eigenvalue_uncertainty(w)


# ============================================================================ §3.6 INSIDE


def test_a4_inside():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(10, 16))
    assert inside_score(h) == pytest.approx(-0.536044577, abs=5e-10)
    identical = np.tile(rng.normal(size=16), (10, 1))  # the next draw, repeated ten times
    assert inside_score(identical) == pytest.approx(-6.021765611, abs=5e-10)


def reference_inside(z: np.ndarray) -> float:
    k, dim = z.shape
    centred = [row - sum(row) / dim for row in z]
    cov = np.array([[float(np.dot(a, b)) / (dim - 1) for b in centred] for a in centred])
    sign, logdet = np.linalg.slogdet(cov + 0.001 * np.eye(k))
    assert sign > 0
    return logdet / k


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(10, 16), (10, 4096), (5, 3)])
def test_inside_matches_slogdet(seed, shape):
    z = np.random.default_rng(seed).normal(scale=3.0, size=shape)
    assert inside_score(z) == pytest.approx(reference_inside(z), abs=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_inside_identical_samples_closed_form(seed):
    row = np.random.default_rng(seed).normal(size=32)
    c = np.var(row, ddof=1)
    expected = (math.log(10 * c + 0.001) + 9 * math.log(0.001)) / 10
    assert inside_score(np.tile(row, (10, 1))) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("z", "message"),
    [
        (np.ones((1, 8)), "at least 2"),
        (np.ones((4, 1)), "2 features"),
        (np.ones(8), "K x D"),
        (np.full((3, 4), np.inf), "NaN or inf"),
    ],
)
def test_inside_rejects_bad_input(z, message):
    with pytest.raises(ValueError, match=message):
        inside_score(z)


@pytest.mark.parametrize(("hidden", "layer"), [(33, 16), (37, 18), (41, 20)])
def test_inside_index_rule(hidden, layer):
    assert inside_hidden_state_index(hidden, 5) == (layer, 4)  # 4 tokens + EOS: the state that emits EOS
    assert inside_hidden_state_index(hidden, 150) == (layer, 149)  # no EOS at max_new_tokens: second-to-last token
    assert inside_hidden_state_index(hidden, 1) == (layer, 0)  # EOS only: the last prompt token


def test_inside_index_rule_rejects_bad_counts():
    with pytest.raises(ValueError, match="EOS"):
        inside_hidden_state_index(33, 0)
    with pytest.raises(ValueError, match="L\\+1"):
        inside_hidden_state_index(1, 3)


# ============================================================================ §3.8 semantic density

A3_TEXTS = ["Paris", "Paris", "Lyon", "It is Paris"]
A3_D = [0.05, 0.05, 0.9, 0.2]
A3_LP = [[-0.01, -0.02], [-0.01, -0.02], [-5, -1], [-0.5, -0.1, -0.3]]


def test_a3_semantic_density():
    assert semantic_density_score(A3_TEXTS, A3_D, A3_LP) == pytest.approx(0.136411135, abs=5e-10)


def reference_density(texts, d, lps):
    first = {}
    for idx, text in enumerate(texts):
        first.setdefault(text, idx)
    p = {i: math.exp(sum(lps[i]) / len(lps[i])) for i in first.values()}
    return 1 - sum((1 - d[i]) * p[i] for i in p) / sum(p.values())


@pytest.mark.parametrize("seed", SEEDS)
def test_semantic_density_matches_unique_weighted_mean(seed):
    rng = np.random.default_rng(seed)
    texts = [str(t) for t in rng.integers(0, 5, size=10)]
    d = rng.random(10)
    lps = random_log_probs(rng, 10)
    assert semantic_density_score(texts, d, lps) == pytest.approx(reference_density(texts, d, lps), abs=1e-12)


def test_semantic_density_keeps_the_first_duplicate():
    # The second "Paris" has other numbers; only the first occurrence counts.
    first = semantic_density_score(["Paris", "Lyon", "Paris"], [0.1, 0.8, 0.9], [[-0.1], [-1.0], [-0.01]])
    assert first == pytest.approx(reference_density(["Paris", "Lyon"], [0.1, 0.8], [[-0.1], [-1.0]]), abs=1e-12)


def test_semantic_density_degenerate_cases():
    assert semantic_density_score(["g"] * 10, [0.03] * 10, [[-0.2]] * 10) == pytest.approx(0.03, abs=1e-12)
    assert math.isnan(semantic_density_score(["", "a"], [0.1, 0.2], [[], [-1.0]]))  # empty beam text
    assert math.isnan(semantic_density_score(["a", "b"], [0.1, 0.2], [[-1e4], [-1e4]]))  # all p_k underflow
    assert semantic_density_score(["a", "b"], [0.1, 0.6], [[-np.inf], [-1.0]]) == pytest.approx(0.6, abs=1e-12)


@pytest.mark.parametrize(
    ("texts", "d", "lps", "message"),
    [
        (["a", "b"], [0.1], [[-1.0], [-1.0]], "one value per sample"),
        (["a", "b"], [0.1, 1.2], [[-1.0], [-1.0]], r"\[0, 1\]"),
        (["a", "b"], [0.1, 0.2], [[-1.0]], "one list per text"),
        (["a", "b"], [0.1, 0.2], [[-1.0], [np.nan]], "NaN"),
        ([], [], [], "at least 1"),
    ],
)
def test_semantic_density_rejects_bad_input(texts, d, lps, message):
    with pytest.raises(ValueError, match=message):
        semantic_density_score(texts, d, lps)


@pytest.mark.parametrize("seed", SEEDS)
def test_semantic_distances_from_model_order_softmax(seed):
    rng = np.random.default_rng(seed)
    model_order = [rng.dirichlet(np.ones(3), size=10) for _ in range(2)]  # [contradiction, neutral, entailment]
    expected = [0.5 * sum(direction[k, 0] + 0.5 * direction[k, 1] for direction in model_order) for k in range(10)]
    code_order = [direction[:, [0, 2, 1]] for direction in model_order]  # [contradiction, entailment, neutral]
    np.testing.assert_allclose(semantic_distances(*code_order), expected, rtol=0, atol=1e-15)


def test_a_certain_contradiction_rounded_past_one_is_distance_one_and_scores():
    """float32 softmax output: contradiction rounds to 1.0 and neutral keeps 1e-14, so the formula gives 1 + 5e-15."""
    certain = [[1.0, 0.0, 1e-14], [0.2, 0.5, 0.3]]
    distances = semantic_distances(certain, certain)
    assert distances[0] == 1.0 and distances[1] == pytest.approx(0.35, abs=1e-15)
    # S.D. = 1 - sum_k (1 - d_k) p_k / sum_k p_k, p_k = exp(mean log-prob)
    p = np.exp([-0.5, -1.0])
    assert semantic_density_score(["a", "b"], distances, [[-0.5], [-1.0]]) == pytest.approx(1 - 0.65 * p[1] / p.sum())


def test_semantic_distances_reject_bad_distributions():
    good = [[0.2, 0.5, 0.3]]
    with pytest.raises(ValueError, match="K x 3"):
        semantic_distances([[0.5, 0.5]], [[0.5, 0.5]])
    with pytest.raises(ValueError, match="summing to 1"):
        semantic_distances([[0.2, 0.2, 0.2]], good)
    with pytest.raises(ValueError, match="same shape"):
        semantic_distances(good, good * 2)


# ============================================================================ §3.9 M.I.

A2_RESPONSES = ["Paris", "paris.", "Lyon", "The city of Paris", "Marseille"]
A2_LOG_PROBS = [[-0.2], [-1.0], [-2.0], [-3.0], [-2.5]]
A2_MU2 = [[0.6, 0.05, 0.02], [0.3, 0.4, 0.05], [0.2, 0.1, 0.3]]


def test_a2_mu1_and_mi():
    m = mu1(A2_RESPONSES, A2_LOG_PROBS)
    assert list(m) == ["Paris", "Lyon", "Marseille"]
    assert list(m.values()) == pytest.approx([0.850448715, 0.093089593, 0.056461692], abs=5e-10)
    assert f1_clusters(A2_RESPONSES)["Paris"] == ["Paris", "paris.", "The city of Paris"]
    assert mi_score(list(m.values()), A2_MU2) == pytest.approx(0.113188099, abs=5e-10)


def test_a2_f1_values():
    assert squad_f1("paris.", "Paris") == 1.0
    assert squad_f1("The city of Paris", "Paris") == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("  The U.S. Army!  ", "us army"),
        ("an apple, a day", "apple day"),
        ("Beyoncé", "beyoncé"),
        ("the", ""),
        ("", ""),
    ],
)
def test_squad_normalize(text, normalised):
    assert squad_normalize(text) == normalised


def test_squad_f1_empty_strings_score_zero():
    assert squad_f1("", "") == 0.0
    assert squad_f1("", "Paris") == 0.0
    assert squad_f1("The", "a") == 0.0
    assert squad_f1("x y z", "x y u v") == pytest.approx(2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4))
    assert squad_f1("a b c", "a b d e") == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))  # "a" is an article
    assert squad_f1("x x y", "x y y") == pytest.approx(2 / 3)  # multiset overlap


def test_f1_clusters_first_representative_wins_and_duplicates_merge():
    clusters = f1_clusters(["red apple", "green pear", "red pear", "red pear", "", "", "blue"])
    expected = {"red apple": ["red apple", "red pear"], "green pear": ["green pear"], "": [""], "blue": ["blue"]}
    assert clusters == expected


def test_f1_clusters_threshold_is_strict_above_a_quarter():
    assert squad_f1("x u v", "x y z") == pytest.approx(1 / 3)
    assert list(f1_clusters(["x y z", "x u v"])) == ["x y z"]  # F1 1/3 > 0.25 joins
    assert squad_f1("x u v", "x b c d e") == 0.25
    assert list(f1_clusters(["x b c d e", "x u v"])) == ["x b c d e", "x u v"]  # F1 exactly 0.25 does not


def test_mu1_later_duplicate_overwrites():
    m = mu1(["A", "B", "A"], [[-1.0], [-1.5], [-3.0]])
    p_a, p_b = math.exp(-3.0), math.exp(-1.5)
    assert m == pytest.approx({"A": p_a / (p_a + p_b), "B": p_b / (p_a + p_b)}, abs=1e-15)


def test_mu1_all_underflow_is_nan_and_single_cluster_mi_is_zero():
    m = mu1(["Paris", "paris"], [[-800.0], [-900.0]])
    assert list(m) == ["Paris"] and math.isnan(m["Paris"])
    assert mi_score(list(m.values()), None) == 0.0
    assert mi_score([1.0], [[0.3]]) == 0.0


def reference_mi(m1, raw):
    c = len(m1)
    mu2 = [[raw[i][j] / sum(raw[i]) for j in range(c)] for i in range(c)]
    marginal = [sum(m1[i] * mu2[i][j] for i in range(c)) for j in range(c)]
    return sum(
        m1[i] * sum(mu2[i][j] * math.log(mu2[i][j] / marginal[j]) for j in range(c) if mu2[i][j] > 0) for i in range(c)
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_mi_matches_kl_of_joint_and_product(seed):
    rng = np.random.default_rng(seed)
    c = int(rng.integers(2, 8))
    m1 = rng.dirichlet(np.ones(c))
    raw = rng.random((c, c)) ** 3
    raw[0, 1] = 0.0  # a zero entry is clamped (contributes 0), its column is not all zero
    assert mi_score(m1, raw) == pytest.approx(reference_mi(m1, raw), abs=1e-12)


def test_mi_independent_rows_give_zero():
    assert mi_score([0.5, 0.3, 0.2], [[0.2, 0.4, 0.1]] * 3) == pytest.approx(0.0, abs=1e-15)


def test_mi_zero_rows_columns_or_mu1_are_nan_not_errors():
    assert math.isnan(mi_score([0.7, 0.3], [[0.0, 0.0], [0.4, 0.1]]))  # every raw mu2 of a row underflowed
    assert math.isnan(mi_score([0.7, 0.3], [[0.2, 0.0], [0.4, 0.0]]))  # a2 underflowed under every a1
    assert math.isnan(mi_score([1.0, 0.0], [[0.2, 0.1], [0.4, 0.1]]))  # mu1 of a cluster underflowed
    assert math.isnan(mi_score([float("nan")] * 2, [[0.2, 0.1], [0.4, 0.1]]))


@pytest.mark.parametrize(
    ("m1", "raw", "message"),
    [
        ([], None, "non-empty"),
        ([0.5, 0.5], [[0.1, 0.2]], "square"),
        ([0.5, 0.5], [[0.1, -0.2], [0.1, 0.1]], "non-negative"),
        ([0.5, 0.5], [[0.1, np.nan], [0.1, 0.1]], "finite"),
        ([-0.5, 1.5], [[0.1, 0.1], [0.1, 0.1]], "probabilities"),
        ([0.5, 0.5], [[0.1] * 3] * 3, "2 x 2"),
    ],
)
def test_mi_rejects_bad_input(m1, raw, message):
    with pytest.raises(ValueError, match=message):
        mi_score(m1, raw)


def test_mu1_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        mu1(["Paris"], [[-0.1]])
    with pytest.raises(ValueError, match="one entry per sample"):
        mu1(["Paris", "Lyon"], [[-0.1], [-0.2], [-0.3]])


def test_mu2_prompt_exact_text():
    expected = (
        "Consider the following question: Q: What is the capital of France?\nOne answer to question Q is Paris.\n"
        "Please directly provide an answer to the following question with one or few words:\n"
        "What is the capital of France?"
    )
    assert mu2_prompt("What is the capital of France?", "Paris") == expected
    assert mu2_prompt("What is the capital of France?", "Paris.") == expected  # one trailing '.' is dropped
    assert "is Paris..\n" in mu2_prompt("q", "Paris..")  # only one
    assert "is {x}.\n" in mu2_prompt("q", "{x}")  # braces in answers stay literal


def test_mu2_pairs_row_major_and_degenerate_cases():
    pairs = mu2_pairs("q", ["A", "B"])
    assert pairs == [(mu2_prompt("q", a1), a2) for a1 in ("A", "B") for a2 in ("A", "B")]
    assert pairs[1] == (mu2_prompt("q", "A"), "B")
    assert mu2_pairs("q", [""]) == []  # one cluster: nothing is scored
    with pytest.raises(ValueError, match="empty answer"):
        mu2_pairs("q", ["Paris", ""])


# ============================================================================ §3.10 SAR

B1_LP = [[-0.1, -0.5, -0.05], [-0.3, -0.2], [-1.5, -0.4, -0.1]]
B1_IMP = [[0.8, 0.1, 0.01], [0.5, 0.02], [0.9, 0.3, 0.01]]
B1_S = [[1, 0.9, 0.2], [0.9, 1, 0.1], [0.2, 0.1, 1]]


def test_b1_sar_family():
    assert sar(B1_LP, B1_IMP, B1_S) == pytest.approx(-6.267583722, abs=5e-10)
    assert sentence_sar(B1_LP, B1_S) == pytest.approx(-5.880296039, abs=5e-10)
    assert token_sar(B1_LP, B1_IMP) == pytest.approx(0.551754306, abs=5e-10)


def brute_force_cal(x, s, t=0.001):
    k = len(x)
    total = 0.0
    for i in range(k):
        inner = math.exp(x[i])
        for j in range(k):
            if j != i:
                inner += s[i][j] * math.exp(x[j]) / t
        total += -math.log(inner)
    return total / k


def brute_force_taus(lps, imps):
    return [
        sum(w / sum(imp) * lp for w, lp in zip(imp, lps_k, strict=True)) for lps_k, imp in zip(lps, imps, strict=True)
    ]


@pytest.mark.parametrize("seed", SEEDS)
def test_sar_family_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    lps = random_log_probs(rng, 5)
    imps = [list(rng.random(len(lp))) for lp in lps]
    s = rng.random((5, 5))
    s = (s + s.T) / 2
    np.fill_diagonal(s, 1.0)
    taus = brute_force_taus(lps, imps)
    assert token_sar(lps, imps) == pytest.approx(-sum(taus) / 5, abs=1e-12)
    assert sar(lps, imps, s) == pytest.approx(brute_force_cal(taus, s), abs=1e-12)
    assert sentence_sar(lps, s) == pytest.approx(brute_force_cal([sum(lp) for lp in lps], s), abs=1e-12)


def test_sar_uses_row_i_of_a_non_symmetric_similarity():
    s = [[1, 0.9, 0.1], [0.2, 1, 0.3], [0.5, 0.4, 1]]
    assert sentence_sar(B1_LP, s) == pytest.approx(brute_force_cal([sum(lp) for lp in B1_LP], s), abs=1e-12)


def test_sar_zero_importance_sum_is_nan():
    imps = [[0.0, 0.0, 0.0], [0.5, 0.02], [0.9, 0.3, 0.01]]
    assert math.isnan(token_sar(B1_LP, imps))
    assert math.isnan(sar(B1_LP, imps, B1_S))
    assert math.isfinite(sentence_sar(B1_LP, B1_S))


@pytest.mark.parametrize(
    ("lps", "imps", "s", "message"),
    [
        ([[-0.1]], [[0.5]], [[1]], "at least 2"),
        (B1_LP, B1_IMP[:2], B1_S, "one list per sample"),
        (B1_LP, [[0.8, 0.1], [0.5, 0.02], [0.9, 0.3, 0.01]], B1_S, "one value per sample"),
        (B1_LP, [[0.8, -0.1, 0.01], [0.5, 0.02], [0.9, 0.3, 0.01]], B1_S, "non-negative"),
        (B1_LP, B1_IMP, [[1, 0.9], [0.9, 1]], "3 x 3"),
        (B1_LP, B1_IMP, [[0.5, 0.9, 0.2], [0.9, 1, 0.1], [0.2, 0.1, 1]], "unit diagonal"),
        (B1_LP, B1_IMP, [[1, 0.9, 2.0], [0.9, 1, 0.1], [0.2, 0.1, 1]], r"\[0, 1\]"),
    ],
)
def test_sar_rejects_bad_input(lps, imps, s, message):
    with pytest.raises(ValueError, match=message):
        sar(lps, imps, s)


PIECES = {0: "Paris", 1: " is", 2: " big", 3: "!", 4: ""}  # 4 is EOS: skipped as a special token


def fake_decode(ids: list[int]) -> str:
    return "".join(PIECES[i] for i in ids)


def test_token_removal_texts_leading_space_rule():
    full, removed = token_removal_texts([0, 1, 2, 3, 4], fake_decode)
    assert full == "Paris is big!"
    assert removed == [
        " is big!",  # "Paris" has no leading space: decode of the rest
        "Paris" + " " + " big!",  # " is" starts with a space: both halves decoded apart, joined by a space
        "Paris is" + " " + "!",
        "Paris is big",
        "Paris is big!",  # EOS: removing it changes nothing
    ]


def test_token_removal_texts_decodes_each_removed_token_alone():
    calls = []

    def decode(ids):
        calls.append(list(ids))
        return fake_decode(ids)

    token_removal_texts([0, 1], decode)
    assert [0] in calls and [1] in calls and [] in calls


# ============================================================================ §3.3 P(True)

REFERENCE_FEW_SHOT = (
    "Question: Who was the third president of the United States?\nPossible answer: James Monroe\nIs the possible "
    "answer:\nA) True\nB) False\nThe possible answer is: False\n\nQuestion: Calculate 33 + 4\nPossible answer: 37\nIs "
    "the possible answer:\nA) True\nB) False\nThe possible answer is: True\n\nQuestion: Fill in the blank in the "
    "sentence 'I went to the grocery and then to the pharmacy. I was disappointed that they didn't have any vegetarian "
    "sausage at the _____.'\nPossible answer: grocery\nIs the possible answer:\nA) True\nB) False\nThe possible answer "
    "is: True\n\nQuestion: Name a celebrated civil rights leader.\nPossible answer: Martin Luther King\n"
    "Is the possible "
    "answer:\nA) True\nB) False\nThe possible answer is: True\n\nQuestion: Calculate 33 * 849\nPossible answer: 28347"
    "\nIs the possible answer:\nA) True\nB) False\nThe possible answer is: False\n\nQuestion: Fill in the blank in the "
    "sentence 'I shot the _____ and it went swish. We walked away the winners of that battle!'\nPossible answer: gun\n"
    "Is the possible answer:\nA) True\nB) False\nThe possible answer is: False\n\n"
)  # p_true_score.py:20 (few_shot_demons), as text


def test_p_true_prompt_matches_reference_text():
    expected = REFERENCE_FEW_SHOT + (
        "Question: Who wrote Hamlet?\nPossible answer: William Shakespeare\n"
        "Is the possible answer:\nA) True\nB) False\nThe possible answer is:"
    )
    assert p_true_prompt("Who wrote Hamlet?", "William Shakespeare") == expected


def test_a5_p_true_prompt_tail():
    tail = (
        "The possible answer is: False\n\nQuestion: Who wrote Hamlet?\nPossible answer: William Shakespeare\n"
        "Is the possible answer:\nA) True\nB) False\nThe possible answer is:"
    )
    assert p_true_prompt("Who wrote Hamlet?", "William Shakespeare").endswith(tail)


def test_p_true_prompt_keeps_the_answer_unstripped_and_empty_answers():
    assert "\nPossible answer: \nIs the possible answer:" in p_true_prompt("q", "")
    assert "\nPossible answer:  Paris \n" in p_true_prompt("q", " Paris ")
    assert p_true_prompt("q", "a").count("Question: ") == 7


# ============================================================================ lexical similarity (LM-Polygraph)


def lcs_length(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def rouge_l_f(a: str, b: str) -> float:
    ta, tb = a.lower().split(), b.lower().split()
    lcs = lcs_length(ta, tb)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(tb), lcs / len(ta)
    return 2 * p * r / (p + r)


@pytest.mark.parametrize("seed", SEEDS)
def test_lex_sim_matches_pairwise_lcs(seed):
    rng = np.random.default_rng(seed)
    words = ["red", "big", "cat", "dog", "sun", "sky", "one"]  # no stemming changes these
    texts = [" ".join(rng.choice(words, size=rng.integers(1, 6))) for _ in range(6)]
    sims = [rouge_l_f(texts[i], texts[j]) for i in range(6) for j in range(i + 1, 6)]
    assert lex_sim(texts) == pytest.approx(1 - sum(sims) / len(sims), abs=1e-12)


def test_lex_sim_degenerate_cases():
    assert lex_sim(["Paris"] * 5) == 0.0
    assert lex_sim(["cats", "Cat."]) == 0.0  # lower-cased, punctuation dropped, Porter-stemmed
    assert lex_sim(["", ""]) == 1.0  # empty texts score 0
    assert lex_sim(["Paris", "Lyon"]) == 1.0
    with pytest.raises(ValueError, match="at least 2"):
        lex_sim(["Paris"])
