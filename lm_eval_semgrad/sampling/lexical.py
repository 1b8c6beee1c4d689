"""Lexical similarity with ROUGE-L, as LM-Polygraph's `LexicalSimilarity` estimator computes it.

LM-Polygraph (`src/lm_polygraph/estimators/lexical_similarity.py`) scores every unordered pair of
sampled texts i < j with `rouge_score.rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)`,
`scorer.score(texts[i], texts[j])["rougeL"].fmeasure`, and returns minus their mean. This module
returns `1 - mean` instead: the same ranking, with higher = more uncertain and values in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from rouge_score import rouge_scorer

from . import _checks

__all__ = ["lex_sim"]


@lru_cache(maxsize=1)
def _scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def lex_sim(texts: Sequence[str]) -> float:
    """`1 - mean` ROUGE-L F-measure over the pairs i < j of sampled texts (empty texts score 0). K < 2 raises."""
    _checks.sample_count(len(texts), 2, "lexical similarity")
    scorer = _scorer()
    pairs = [(texts[i], texts[j]) for i in range(len(texts)) for j in range(i + 1, len(texts))]
    return float(1 - np.mean([scorer.score(a, b)["rougeL"].fmeasure for a, b in pairs]))
