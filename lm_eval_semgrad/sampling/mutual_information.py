"""M.I. by iterative prompting (docs/method.md §3.9): SQuAD-F1 clusters, mu1, the mu2 prompts and the MI score.

The F1 here is the reference code's plain SQuAD one (`statistic_method.py:15-44`: `str.lower`, ASCII
punctuation only), not the Unicode-folding one of `lm_eval_semgrad.correctness`.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from . import _checks

__all__ = ["squad_normalize", "squad_f1", "f1_clusters", "mu1", "mu2_prompt", "mu2_pairs", "mi_score"]

F1_THRESHOLD = 0.25
MIN_LOG_VALUE = 1e-100
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)
_MU2_TEMPLATE = (
    "Consider the following question: Q: {q}\nOne answer to question Q is {a1}.\n"
    "Please directly provide an answer to the following question with one or few words:\n{q}"
)


def squad_normalize(text: str) -> str:
    """SQuAD normalisation as `statistic_method.py`: strip, lower, drop ASCII punctuation, articles, extra spaces."""
    text = "".join(ch for ch in text.strip().lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 of the normalised strings (§3.9 step 3); 0.0 when no token is shared (so "" scores 0 always)."""
    prediction_tokens = squad_normalize(prediction).split()
    reference_tokens = squad_normalize(reference).split()
    same = sum((Counter(prediction_tokens) & Counter(reference_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(prediction_tokens)
    recall = same / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_clusters(answers: Sequence[str], threshold: float = F1_THRESHOLD) -> dict[str, list[str]]:
    """Greedy F1 clustering of §3.9 step 3: representative -> its unique member strings, in first-seen order.

    Exact duplicates are merged first. Each answer joins the **first** representative with
    `squad_f1(answer, representative) > threshold`, otherwise it founds a cluster (an empty answer
    always does).
    """
    clusters: dict[str, list[str]] = {}
    for answer in dict.fromkeys(answers):
        representative = next((rep for rep in clusters if squad_f1(answer, rep) > threshold), None)
        if representative is None:
            clusters[answer] = [answer]
        else:
            clusters[representative].append(answer)
    return clusters


def mu1(answers: Sequence[str], token_log_probs: Sequence[Sequence[float]]) -> dict[str, float]:
    """mu1 (§3.9): each F1 cluster's share of the sequence probabilities `P_k = exp(sum_t l_k,t)`.

    The log-probs are the generation-time ones, EOS included. Exact duplicate strings count once;
    with the code's `{r: P}` a later duplicate overwrites the earlier value (the same number for
    the same text). Normalised by the sum over the unique strings; keyed by the representatives.
    If every `P_k` underflows to 0, every value is NaN (0/0), as in the code. K < 2 raises.
    """
    arrays = _checks.token_log_probs(token_log_probs, "mu1")
    if len(answers) != len(arrays):
        raise ValueError(
            f"answers and token_log_probs must have one entry per sample, got {len(answers)} and {len(arrays)}"
        )
    probability = {answer: np.exp(np.sum(lp)) for answer, lp in zip(answers, arrays, strict=True)}
    total = sum(probability.values())
    with np.errstate(invalid="ignore"):
        return {
            rep: float(np.float64(sum(probability[m] for m in members)) / total)
            for rep, members in f1_clusters(answers).items()
        }


def mu2_prompt(question: str, first_answer: str) -> str:
    """The user message of the mu2 pass (§3.9), before the chat template; a1 loses one trailing '.'.

    The caller wraps it with the chat template (one user turn, no system message), tokenises with
    `add_special_tokens=True`, appends a2 tokenised with `add_special_tokens=False` (a trailing EOS
    removed) and takes `exp(sum of full-softmax log-probs of a2)` at T = 1 as the raw mu2(a2|a1).
    """
    return _MU2_TEMPLATE.format(q=question, a1=first_answer[:-1] if first_answer.endswith(".") else first_answer)


def mu2_pairs(question: str, representatives: Sequence[str]) -> list[tuple[str, str]]:
    """The (mu2 prompt, a2) pairs to score, row-major over ordered representative pairs (a1, a2), a1 == a2 included.

    One representative needs no pair (M.I. is 0.0 then), so the list is empty. With several, an empty
    representative raises: the code crashes there (IndexError on the empty tokenisation of a2).
    """
    if len(representatives) < 2:
        return []
    if "" in representatives:
        raise ValueError(
            "an empty answer is a cluster representative; the reference code crashes scoring it as a2 "
            "(IndexError, mi_score_utils.py:75); drop the question or score M.I. as missing"
        )
    return [(mu2_prompt(question, a1), a2) for a1 in representatives for a2 in representatives]


def mi_score(mu1_values: Sequence[float], mu2_raw: ArrayLike | None) -> float:
    """M.I. (§3.9): `sum_{a1,a2} J ln(max(J / (mu1(a1) m(a2)), 1e-100))` with `J = mu1(a1) mu2(a2|a1)`.

    `mu1_values` are mu1 in representative order; `mu2_raw[i][j]` is the raw mu2(rep_j | rep_i),
    row-normalised here; `m(a2) = sum_a3 mu1(a3) mu2(a2|a3)`. One cluster gives 0.0 (mu2_raw may be
    None). As in the code's float64 arithmetic, 0/0 propagates as NaN rather than raising: an
    all-zero mu2 row (every raw mu2 underflowed), an all-zero column, a zero or NaN mu1 value.
    """
    m1 = np.asarray(mu1_values, dtype=np.float64)
    if m1.ndim != 1 or m1.size == 0:
        raise ValueError("mu1_values must be a non-empty flat list, one value per cluster")
    if m1.size == 1:
        return 0.0
    if np.any(m1 < 0) or np.any(np.isinf(m1)):
        raise ValueError("mu1_values must be probabilities (NaN is passed through, as mu1 gives it on underflow)")
    if mu2_raw is None:
        raise ValueError(f"mu2_raw is None but there are {m1.size} clusters; pass their raw mu2 matrix")
    raw = _checks.square_matrix(mu2_raw, "mu2_raw", m1.size)
    if not np.all(np.isfinite(raw)) or np.any(raw < 0):
        raise ValueError("mu2_raw must hold finite, non-negative conditional probabilities exp(sum of log-probs)")
    with np.errstate(invalid="ignore", divide="ignore"):
        m2 = raw / raw.sum(axis=1, keepdims=True)
        joint = m1[:, None] * m2
        product = m1[:, None] * (m1 @ m2)[None, :]
        return float(np.sum(joint * np.log(np.maximum(joint / product, MIN_LOG_VALUE))))
