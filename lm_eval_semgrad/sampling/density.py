"""Semantic density (docs/method.md §3.8): NLI distances of the diverse beams to the greedy answer, weighted by p_k."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from . import _checks

__all__ = ["semantic_distances", "semantic_density_score"]


def semantic_distances(forward: ArrayLike, backward: ArrayLike) -> np.ndarray:
    """The distances d_k of §3.8 step 2: `mean over both directions of p_contra + 0.5 * p_neutral`.

    `forward[k]` is the NLI distribution for premise `q̂ + g`, hypothesis `q̂ + r_k` (g the greedy
    answer, `q̂ + x = q.strip() + " " + x.strip()`); `backward[k]` the reverse direction. Both are
    K x 3 in the code's `distribution` order **[contradiction, entailment, neutral]**, which is not
    the model's own softmax order: deberta-v2-xlarge-mnli outputs [contradiction, neutral,
    entailment], so pass `softmax[:, [0, 2, 1]]`. Each d_k lies in [0, 1].
    """
    pair = [np.asarray(x, dtype=np.float64) for x in (forward, backward)]
    for name, dist in zip(("forward", "backward"), pair, strict=True):
        if dist.ndim != 2 or dist.shape[1] != 3:
            raise ValueError(f"{name} must be K x 3 NLI distributions [contradiction, entailment, neutral]")
        _checks.in_unit_interval(dist, name)
        if not np.allclose(dist.sum(axis=1), 1.0, atol=1e-4):
            raise ValueError(f"each row of {name} must be a probability distribution (softmax output) summing to 1")
    if pair[0].shape != pair[1].shape:
        raise ValueError(f"forward and backward must have the same shape, got {pair[0].shape} and {pair[1].shape}")
    _checks.sample_count(pair[0].shape[0], 1, "semantic density")
    distances = [dist[:, 0] + 0.5 * dist[:, 2] for dist in pair]
    return np.clip((distances[0] + distances[1]) / 2, 0.0, 1.0)  # a softmax's rounding can pass 1 by ~1e-16


def semantic_density_score(
    texts: Sequence[str], distances: ArrayLike, token_log_probs: Sequence[Sequence[float]]
) -> float:
    """The S.D. score `1 - SD` (§3.8 step 3), higher = more uncertain.

    `SD = sum_k (1 - d_k) p_k / sum_k p_k` over the **unique** texts (exact match, the first
    occurrence kept), with `p_k = exp(mean_t l_k,t)` from the teacher-forced tau = 0.1 log-probs
    (no EOS). As in the code: an empty log-prob list (an empty beam text) makes its `p_k` NaN and
    the score NaN; all `p_k` underflowing to 0 gives 0/0 = NaN. A log-prob of -inf is allowed (p_k = 0).
    Any K >= 1 is accepted.
    """
    d = _checks.vector(distances, "distances", len(texts))
    _checks.in_unit_interval(d, "distances")
    if len(token_log_probs) != len(texts):
        raise ValueError(f"token_log_probs must have one list per text ({len(texts)}), got {len(token_log_probs)}")
    _checks.sample_count(len(texts), 1, "semantic density")
    seen: set[str] = set()
    score = total = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        for text, distance, log_probs in zip(texts, d, token_log_probs, strict=True):
            if text in seen:
                continue
            seen.add(text)
            lp = np.asarray(log_probs, dtype=np.float64)
            if lp.ndim != 1 or np.any(np.isnan(lp)) or np.any(lp == np.inf):
                raise ValueError("token_log_probs must be flat lists of log-probs without NaN or +inf")
            p = np.exp(np.mean(lp)) if lp.size else np.nan
            score += (1 - distance) * p
            total += p
        return float(1 - np.float64(score) / total)
