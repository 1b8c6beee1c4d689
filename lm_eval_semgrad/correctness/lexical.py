"""Lexical answer-correctness scores: normalised exact match, containment and token F1.

Every score compares one generated answer with a list of references and returns the best value
over the references (a question is answered correctly when the answer matches *any* reference).

Normalisation (SQuAD's `normalize_answer`, extended to Unicode):

1. `str.casefold()` (a stronger `lower()`: "Straße" -> "strasse").
2. Unicode NFKD, then every combining mark is dropped: compatibility characters are folded
   (full-width letters, ligatures such as "ﬁ", superscripts, non-breaking spaces) and accents are
   removed ("Beyoncé" -> "beyonce", "Ångström" -> "angstrom"). References and model answers often
   disagree on accents only; the benchmarks here are English, where folding them loses nothing.
   (For scripts whose vowel signs are combining marks, e.g. Devanagari, this would be too
   aggressive: do not use these scores for such languages.)
3. Punctuation is deleted, as in SQuAD ("U.S." -> "us", "1,000" -> "1000"): ASCII punctuation
   (`string.punctuation`, which also holds symbols such as `$` and `^`) and every Unicode
   punctuation character (categories P*: curly quotes, dashes, CJK full stops, ...).
4. The articles "a", "an", "the" are removed as whole words.
5. Whitespace (any Unicode space) is collapsed to single spaces and stripped.

Empty strings never match: an answer or reference that is empty after normalisation (for example
"The." or "") scores 0 against everything, also against another empty string.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable

__all__ = ["normalize_answer", "exact_match", "contains", "token_f1", "normalized_references"]

_ASCII_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def _is_punctuation(char: str) -> bool:
    return char in _ASCII_PUNCTUATION or unicodedata.category(char).startswith("P")


def normalize_answer(text: str | None) -> str:
    """SQuAD-style normalisation with Unicode folding (see the module docstring)."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKD", str(text).casefold())
    text = "".join(char for char in text if not unicodedata.combining(char) and not _is_punctuation(char))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def normalized_references(references: str | Iterable[str] | None) -> list[str]:
    """The references, normalised, without the ones that are empty after normalisation."""
    if references is None:
        return []
    if isinstance(references, str):
        references = [references]
    normalized = (normalize_answer(reference) for reference in references if isinstance(reference, str))
    return [reference for reference in normalized if reference]


def exact_match(answer: str | None, references: str | Iterable[str] | None) -> float:
    """1.0 when the normalised answer equals some normalised reference, else 0.0."""
    normalized = normalize_answer(answer)
    if not normalized:
        return 0.0
    return float(any(normalized == reference for reference in normalized_references(references)))


def contains(answer: str | None, references: str | Iterable[str] | None) -> float:
    """1.0 when the normalised answer contains a normalised reference, or a reference contains the answer.

    Containment is on whole words: "mitochondria" is not found in "mitochondrial", "ion" not in
    "cation", but "darwin" is found in "charles darwin". Both directions count, so a short answer
    ("nothing") that appears word for word inside a sentence-long reference ("nothing happens")
    matches too.
    """
    normalized = normalize_answer(answer)
    if not normalized:
        return 0.0
    padded_answer = f" {normalized} "
    for reference in normalized_references(references):
        if f" {reference} " in padded_answer or padded_answer in f" {reference} ":
            return 1.0
    return 0.0


def _f1(answer_tokens: list[str], reference_tokens: list[str]) -> float:
    common = Counter(answer_tokens) & Counter(reference_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(answer_tokens)
    recall = overlap / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(answer: str | None, references: str | Iterable[str] | None) -> float:
    """SQuAD token F1 between the normalised answer and each reference; the best one (0.0 if empty)."""
    answer_tokens = normalize_answer(answer).split()
    if not answer_tokens:
        return 0.0
    return max((_f1(answer_tokens, reference.split()) for reference in normalized_references(references)), default=0.0)
