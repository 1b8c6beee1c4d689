"""INSIDE / EigenScore (docs/method.md §3.6): log-determinant of the samples' regularised covariance."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _checks

__all__ = ["inside_score", "inside_hidden_state_index"]

ALPHA = 0.001


def inside_score(embeddings: ArrayLike) -> float:
    """INSIDE (§3.6): `ln det(np.cov(Z) + 0.001 I_K) / K` for the K x D embedding matrix Z (rows = samples).

    `np.cov` treats the rows as variables: each row is centred by its own mean over the D features
    and the K x K matrix is divided by D - 1. The determinant is `np.linalg.det` as in the code (it
    can under- or overflow for large K; not at K=10). K identical rows give
    `(ln(K c + 0.001) + (K - 1) ln 0.001) / K` with c the row's feature variance.
    Needs K >= 2 samples and D >= 2 features (np.cov divides by D - 1).
    """
    z = np.asarray(embeddings, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"embeddings must be a K x D matrix (one row per sample), got shape {z.shape}")
    _checks.sample_count(z.shape[0], 2, "INSIDE")
    if z.shape[1] < 2:
        raise ValueError(f"embeddings need at least 2 features per sample (np.cov divides by D - 1), got {z.shape[1]}")
    if not np.all(np.isfinite(z)):
        raise ValueError("embeddings contain NaN or inf; pass the finite hidden states")
    k = z.shape[0]
    covariance = np.cov(z) + ALPHA * np.eye(k)
    return float(np.log(np.linalg.det(covariance)) / k)


def inside_hidden_state_index(num_hidden_states: int, num_tokens: int) -> tuple[int, int]:
    """Which hidden state INSIDE embeds (§3.6): `(layer, step) = ((L+1 - 1) // 2, T - 1)`.

    `num_hidden_states` is L+1 (index 0 is the embedding output); `num_tokens` is T, the sample's
    generated tokens including the EOS that stopped it. `step` indexes `generate`'s per-step hidden
    states: step 0 is the prompt's last position, step s >= 1 the input position of generated token
    s-1. With EOS this is the last token before EOS (the position that emits EOS); without EOS
    (T = max_new_tokens) it is the second-to-last generated token; an EOS-only answer gives the last
    prompt token. Both cases use the same formula, so no EOS flag is needed. In one teacher-forced
    pass over `prompt + response` the same state sits at sequence position `prompt_len + step - 1`.
    """
    if num_hidden_states < 2:
        raise ValueError(f"num_hidden_states is L+1 (embeddings plus L layers), at least 2; got {num_hidden_states}")
    if num_tokens < 1:
        raise ValueError(f"num_tokens counts the generated tokens including EOS, at least 1; got {num_tokens}")
    return (num_hidden_states - 1) // 2, num_tokens - 1
