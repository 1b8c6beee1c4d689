"""SAR (docs/method.md §3.10): token relevance texts, token-SAR, sentence-SAR and SAR, in float64."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from . import _checks

__all__ = ["token_removal_texts", "token_sar", "sentence_sar", "sar"]

TEMPERATURE = 0.001


def token_removal_texts(ids: Sequence[int], decode: Callable[[list[int]], str]) -> tuple[str, list[str]]:
    """`full` and every `removed_t` of §3.10, one per token position t (the EOS position included).

    `decode` must be `tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)`.
    When token t decodes (alone) to a text starting with a space, `removed_t = decode(ids[:t]) + " "
    + decode(ids[t+1:])`; otherwise `removed_t = decode(ids[:t] + ids[t+1:])`. The caller scores
    `imp_t = 1 - CE(q.strip() + " " + full.strip(), q.strip() + " " + removed_t.strip())`.
    """
    ids = list(ids)
    removed = []
    for t in range(len(ids)):
        before, after = ids[:t], ids[t + 1 :]
        if decode([ids[t]]).startswith(" "):
            removed.append(decode(before) + " " + decode(after))
        else:
            removed.append(decode(before + after))
    return decode(ids), removed


def token_sar(token_log_probs: Sequence[Sequence[float]], importances: Sequence[Sequence[float]]) -> float:
    """token-SAR (§3.10, key `token_sar`): `-mean_k tau_k`, `tau_k = sum_t (imp_t / sum imp) l_t`.

    A sample whose importances sum to 0 gives NaN (0/0), as in the code. K < 2 raises.
    """
    return float(-np.mean(_shifted_log_likelihoods(token_log_probs, importances)))


def sentence_sar(token_log_probs: Sequence[Sequence[float]], similarity: ArrayLike) -> float:
    """sentence-SAR (§3.10, key `sentence_sar`): `cal` of the sequence log-likelihoods `sum_t l_k,t`."""
    arrays = _checks.token_log_probs(token_log_probs, "sentence-SAR")
    return _cal(np.array([lp.sum() for lp in arrays]), similarity)


def sar(
    token_log_probs: Sequence[Sequence[float]], importances: Sequence[Sequence[float]], similarity: ArrayLike
) -> float:
    """SAR (§3.10, key `sar`, Table 1): `cal` of the token-shifted log-likelihoods tau_k.

    `cal(x) = mean_i -ln(exp(x_i) + (1/t) sum_{j != i} S_ij exp(x_j))` with t = 0.001; `S` is the
    K x K sentence similarity (symmetrised cross-encoder scores, unit diagonal), row i weighting the
    others. Values are usually negative; only their order matters. NaN when some importances sum to 0.
    """
    return _cal(_shifted_log_likelihoods(token_log_probs, importances), similarity)


def _shifted_log_likelihoods(
    token_log_probs: Sequence[Sequence[float]], importances: Sequence[Sequence[float]]
) -> np.ndarray:
    arrays = _checks.token_log_probs(token_log_probs, "SAR")
    if len(importances) != len(arrays):
        raise ValueError(f"importances must have one list per sample ({len(arrays)}), got {len(importances)}")
    taus = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for k, (lp, imp) in enumerate(zip(arrays, importances, strict=True)):
            weights = _checks.vector(imp, f"importances of sample {k}", lp.size)
            if np.any(weights < 0):
                raise ValueError(f"importances of sample {k} must be non-negative (1 - cross-encoder similarity)")
            taus.append(np.sum(weights / weights.sum() * lp))
    return np.array(taus)


def _cal(log_likelihoods: np.ndarray, similarity: ArrayLike) -> float:
    k = log_likelihoods.size
    s = _checks.square_matrix(similarity, "similarity", k)
    _checks.in_unit_interval(s, "similarity")
    if not np.all(np.diag(s) == 1):
        raise ValueError("similarity must have a unit diagonal (S_ii = 1, as the code builds it)")
    weights = np.full((k, k), 1 / TEMPERATURE)
    np.fill_diagonal(weights, 1.0)
    return float(np.mean(-np.log((s * weights * np.exp(log_likelihoods)[None, :]).sum(axis=1))))
