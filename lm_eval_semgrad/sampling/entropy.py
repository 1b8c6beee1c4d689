"""LN-PE and PE (docs/method.md §3.1) and semantic entropy (§3.7), from per-sample token log-probs.

Token log-probs are the generation-time ones of the sampling distribution, EOS included (§3.0.3). The
semantic clusters come from a K x K matrix of argmax NLI classes (0 contradiction, 1 neutral,
2 entailment) on the texts `f"{q} {r_k}"` (premise row i, hypothesis column j).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from . import _checks

__all__ = [
    "ln_predictive_entropy",
    "predictive_entropy",
    "semantic_cluster_ids",
    "semantic_entropy",
    "discrete_semantic_entropy",
]


def ln_predictive_entropy(token_log_probs: Sequence[Sequence[float]]) -> float:
    """LN-PE (§3.1): minus the mean over samples of each sample's mean token log-prob.

    Every sample counts once, duplicates included. K < 2 raises (the reference code crashes at K=1).
    """
    arrays = _checks.token_log_probs(token_log_probs, "LN-PE")
    return float(-np.sum([np.mean(lp) for lp in arrays]) / len(arrays))


def predictive_entropy(token_log_probs: Sequence[Sequence[float]]) -> float:
    """PE (§3.1, key `predictive_entropy`): minus the mean over samples of each sample's summed token log-prob."""
    arrays = _checks.token_log_probs(token_log_probs, "PE")
    return float(-np.sum([np.sum(lp) for lp in arrays]) / len(arrays))


def semantic_cluster_ids(nli_classes: ArrayLike, strict: bool = False) -> list[int]:
    """Greedy semantic clustering of §3.7 steps 3-4 from the K x K argmax NLI classes.

    `nli_classes[i][j]` is the class for premise i, hypothesis j; the diagonal is never read (the
    code sets it to 2 and compares only j > i). Samples i < j are equivalent when
    `classes[i][j] * classes[j][i] >= 2` (>= 4 with `strict`). Each unassigned sample i opens a new
    cluster and claims every later j equivalent to it, overwriting an earlier assignment of j; so
    equivalence is not transitive and a later representative can steal a sample. Ids are 0, 1, ...
    in order of the representatives. K < 2 raises (the reference code crashes at K=1).
    """
    classes = _checks.square_matrix(nli_classes, "nli_classes")
    k = classes.shape[0]
    _checks.sample_count(k, 2, "semantic clustering")
    off_diagonal = classes[~np.eye(k, dtype=bool)]
    if not np.all(np.isin(off_diagonal, (0, 1, 2))):
        raise ValueError("nli_classes must hold argmax NLI classes 0 (contradiction), 1 (neutral) or 2 (entailment)")
    product = classes * classes.T
    threshold = 4 if strict else 2
    ids = [-1] * k
    next_id = 0
    for i in range(k):
        if ids[i] == -1:
            ids[i] = next_id
            for j in range(i + 1, k):
                if product[i, j] >= threshold:
                    ids[j] = next_id
            next_id += 1
    return ids


def semantic_entropy(
    token_log_probs: Sequence[Sequence[float]], cluster_ids: Sequence[int], length_normalised: bool = True
) -> float:
    """Semantic entropy, "rao" estimator (§3.7): `-sum_c p(c) log p(c)`.

    `lambda_k` is the mean token log-prob (key `semantic_entropy`) or, with `length_normalised=False`,
    the sum (key `semantic_entropy_no_ln`). `log p(c) = log sum_{k in c} exp(lambda_k - log sum_all
    exp(lambda))` is computed naively, as the code does, with every sample counted (duplicates too).
    The naive exponentials decide the degenerate cases (in practice only for the no-LN variant):
    a cluster whose normalised mass underflows to 0 gives `0 * log 0` = NaN, as in the code; when
    every `exp(lambda_k)` underflows, the code's arithmetic gives -inf (inf * inf), which its AUROC
    call would reject; this function returns NaN there (docs/method.md §3.7 calls it NaN). One cluster
    gives 0 up to about 1e-16 (possibly -0.0).
    """
    arrays = _checks.token_log_probs(token_log_probs, "semantic entropy")
    ids = _cluster_ids(cluster_ids, len(arrays))
    lam = np.array([np.mean(lp) if length_normalised else np.sum(lp) for lp in arrays])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_total = np.log(np.sum(np.exp(lam)))
        if np.isneginf(log_total):
            return float("nan")
        log_p = np.array([np.log(np.sum(np.exp(lam[ids == c] - log_total))) for c in np.unique(ids)])
        return float(-np.sum(np.exp(log_p) * log_p))


def discrete_semantic_entropy(cluster_ids: Sequence[int]) -> float:
    """Discrete (empirical) semantic entropy (§3.7, key `empirical_entropy`): `-sum_c (|c|/K) log(|c|/K)`.

    Uses only the cluster sizes; all K clusters distinct gives ln K, one cluster gives 0 (-0.0).
    """
    ids = _cluster_ids(cluster_ids, None)
    p = np.unique(ids, return_counts=True)[1] / ids.size
    return float(-np.sum(p * np.log(p)))


def _cluster_ids(cluster_ids: Sequence[int], k: int | None) -> np.ndarray:
    ids = np.asarray(cluster_ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError("cluster_ids must be a flat list of integer cluster ids, one per sample")
    _checks.sample_count(ids.size, 2, "semantic entropy")
    if k is not None and ids.size != k:
        raise ValueError(f"cluster_ids must have one id per sample ({k}), got {ids.size}")
    return ids
