"""Self-Con (docs/method.md §3.4) and the graph scores Deg, EigV and Ecc (§3.5), from NLI entailment probabilities.

The code keeps these inputs as float32 (`torch.tensor` of Python floats), so the values are rounded
to float32 here too before the comparison or the Laplacian, and the Laplacian and its `eigh` run in
float32; the final reductions are done in float64. The code's own results are float32 roundings of
the same values (for example 0.4000000059604645 for Self-Con 0.4), which does not change a ranking.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _checks

__all__ = [
    "self_consistency",
    "similarity_matrix",
    "degree_uncertainty",
    "eigenvalue_uncertainty",
    "eccentricity_uncertainty",
]

EIGENVALUE_THRESHOLD = 0.9


def self_consistency(similarities: ArrayLike) -> float:
    """Self-Con (§3.4): `1 - #{k : s_k > 0.5} / K`, strict `>` after rounding `s_k` to float32.

    `s_k` is the mean of the two directions' P(entailment) between the greedy answer and sample k
    (texts `q.strip() + " " + x.strip()`). All samples agreeing gives 0.0. Any K >= 1 is accepted.
    """
    s = _checks.vector(similarities, "similarities")
    _checks.sample_count(s.size, 1, "Self-Con")
    _checks.in_unit_interval(s, "similarities")
    agreeing = int(np.count_nonzero(s.astype(np.float32) > np.float32(0.5)))
    return 1.0 - agreeing / s.size


def similarity_matrix(entailment: ArrayLike) -> np.ndarray:
    """The symmetric float32 matrix W of §3.5: diagonal set to 1, then `W = (E + E^T) / 2`.

    `entailment[i][j]` is P(entailment) for premise `q̂ + r_i`, hypothesis `q̂ + r_j`; its diagonal is
    ignored (it may be NaN). The mean is taken in float64 and then rounded to float32, as the code
    does (double NLI scores, stored as a list, re-read as float32).
    """
    e = _checks.square_matrix(entailment, "entailment").copy()
    _checks.sample_count(e.shape[0], 2, "the similarity matrix")
    np.fill_diagonal(e, 1.0)
    _checks.in_unit_interval(e, "entailment (off the diagonal)")
    return ((e + e.T) / 2).astype(np.float32)


def degree_uncertainty(w: ArrayLike) -> float:
    """Deg (§3.5, key `self_con_average_sim`): `1 - mean_{i,j} W_ij` over all K^2 entries, diagonal included."""
    w32 = _graph_matrix(w)
    return float(1.0 - w32.astype(np.float64).mean())


def eigenvalue_uncertainty(w: ArrayLike, threshold: float = EIGENVALUE_THRESHOLD) -> float:
    """EigV (§3.5, key `self_con_spectral_eigv`): `sum max(0, 1 - lambda)` over the eigenvalues < 0.9.

    lambda are the eigenvalues of the normalised Laplacian `L = D^-1/2 (D - W) D^-1/2`, D = diag(row sums).

    Unlike lm-polygraph, eigenvalues in [threshold, 1) are dropped. W = all ones gives 1, W = I gives K.
    """
    eigenvalues, _ = _kept_spectrum(_graph_matrix(w), threshold)
    return float(np.clip(1.0 - eigenvalues.astype(np.float64), 0.0, None).sum())


def eccentricity_uncertainty(w: ArrayLike, threshold: float = EIGENVALUE_THRESHOLD) -> float:
    """Ecc (§3.5, key `self_con_eccentricity`): spectral norm of the kept eigenvectors, centred over the samples.

    The kept eigenvectors (eigenvalue < threshold) are the columns of a K x m matrix X; the score is
    `||X - mean_rows(X)||_2`, the largest singular value (lm-polygraph uses a Frobenius norm instead).
    W = all ones gives 0 (up to float32 rounding), W = I gives 1.
    """
    _, vectors = _kept_spectrum(_graph_matrix(w), threshold)
    x = vectors.astype(np.float64)
    return float(np.linalg.norm(x - x.mean(axis=0, keepdims=True), 2))


def _graph_matrix(w: ArrayLike) -> np.ndarray:
    matrix = _checks.square_matrix(w, "W")
    _checks.sample_count(matrix.shape[0], 2, "the graph scores")
    _checks.in_unit_interval(matrix, "W")
    if not np.array_equal(matrix, matrix.T) or not np.all(np.diag(matrix) == 1):
        raise ValueError("W must be symmetric with a unit diagonal; build it with similarity_matrix()")
    return matrix.astype(np.float32)


def _kept_spectrum(w32: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues < threshold of `L = D^-1/2 (D - W) D^-1/2` and their eigenvectors (columns), in float32."""
    degree = w32.sum(axis=1)
    inv_sqrt = np.float32(1) / np.sqrt(degree)
    laplacian = inv_sqrt[:, None] * (np.diag(degree) - w32) * inv_sqrt[None, :]
    eigenvalues, eigenvectors = np.linalg.eigh(laplacian)
    keep = eigenvalues < np.float32(threshold)
    return eigenvalues[keep], eigenvectors[:, keep]
