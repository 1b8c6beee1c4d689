"""Answer correctness for free-form QA: is a generated answer right, given a list of references?

Pure Python at import (no torch); the optional embedding-based equivalence loads torch/transformers
only when it is used. Every score is the best value over the references.

- `exact_match`: normalised answer == a normalised reference (SQuAD normalisation, Unicode-folded).
- `contains`: a normalised reference occurs (as whole words) in the normalised answer, or the answer
  in a reference.
- `f1`: SQuAD token F1.
- `equivalence` / `equivalence_score`: cosine similarity of sentence embeddings (all-MiniLM-L6-v2
  style, mean pooling) >= 0.7, a stand-in for the paper's BEM; only when a model is given.
- `bem` / `bem_score`: the paper's label, a BEM-style classifier's score >= 0.7 (`bem.py`); only
  when a BEM model is given.

`score_answer` returns them all as one dict: the per-sample metrics of the semgrad_* tasks.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .bem import BEM_THRESHOLD, BEMClassifier, bem_score, load_bem
from .equivalence import EQUIVALENCE_THRESHOLD, SentenceEmbedder, equivalence_score, load_embedder
from .lexical import contains, exact_match, normalize_answer, normalized_references, token_f1

LEXICAL_METRICS = ("contains", "exact_match", "f1")
EQUIVALENCE_METRICS = ("equivalence", "equivalence_score")
BEM_METRICS = ("bem", "bem_score")

__all__ = [
    "BEMClassifier",
    "BEM_METRICS",
    "BEM_THRESHOLD",
    "EQUIVALENCE_METRICS",
    "EQUIVALENCE_THRESHOLD",
    "LEXICAL_METRICS",
    "SentenceEmbedder",
    "contains",
    "bem_score",
    "equivalence_score",
    "exact_match",
    "load_bem",
    "load_embedder",
    "normalize_answer",
    "normalized_references",
    "score_answer",
    "token_f1",
]


def score_answer(
    answer: str | None,
    references: str | Iterable[str] | None,
    equivalence_model: str | Path | SentenceEmbedder | None = None,
    equivalence_threshold: float = EQUIVALENCE_THRESHOLD,
    *,
    bem_model: str | Path | BEMClassifier | None = None,
    question: str | None = None,
) -> dict[str, Any]:
    """All correctness scores of one answer: contains, exact_match, f1 (+ equivalence, equivalence_score;
    + bem, bem_score).

    `equivalence` (0/1, score >= threshold) and `equivalence_score` (best cosine) are present only
    when `equivalence_model` (a folder path or a loaded `SentenceEmbedder`) is given; `bem` (0/1,
    score >= 0.7) and `bem_score` only when `bem_model` is, and BEM reads the `question` too.
    """
    references = [references] if isinstance(references, str) else list(references or [])
    scores: dict[str, Any] = {
        "contains": contains(answer, references),
        "exact_match": exact_match(answer, references),
        "f1": token_f1(answer, references),
    }
    if equivalence_model:
        similarity = equivalence_score(answer, references, equivalence_model)
        scores["equivalence"] = float(similarity >= equivalence_threshold)
        scores["equivalence_score"] = similarity
    if bem_model:
        if question is None:
            raise ValueError("BEM scores an answer given its question: pass question=...")
        score = bem_score(answer, references, question, bem_model)
        scores["bem"] = float(score >= BEM_THRESHOLD)
        scores["bem_score"] = score
    return scores
