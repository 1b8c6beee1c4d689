"""Functions the semgrad_* task YAMLs name with `!function utils.<name>`.

lm-eval imports this file by its path (it is not a package module); the logic lives in
`lm_eval_semgrad.data` (loading) and `lm_eval_semgrad.correctness` (scoring).
Every processed document has `question` (str) and `references` (list of str).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lm_eval_semgrad.correctness import score_answer
from lm_eval_semgrad.data import BEM_COLUMN, EQUIVALENCE_COLUMN, load_task_dataset


def load_docs(**kwargs: Any):
    """`custom_dataset`: packaged file, hub dataset, or the run's `<task>_data_files` override."""
    return load_task_dataset(**kwargs)


def _unique(texts: Iterable[Any]) -> list[str]:
    """Non-empty stripped strings, first occurrence kept, order preserved."""
    seen: dict[str, None] = {}
    for text in texts:
        if isinstance(text, str) and text.strip():
            seen.setdefault(text.strip(), None)
    return list(seen)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise TypeError(f"expected a string or a list of strings, got {type(value).__name__}")


def _explicit(doc: dict[str, Any]) -> dict[str, Any] | None:
    """Documents that already hold `question` and `references` (any local file may use this form)."""
    if "question" in doc and doc.get("references") is not None:
        return {"question": str(doc["question"]).strip(), "references": _unique(_as_list(doc["references"]))}
    return None


def _reference_row(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The SemGrad reference repository's files (its data/datasets/<task>/*.jsonl, every task):
    {"query": ..., "truthful answer": [...]}."""
    if "query" in doc and "truthful answer" in doc:
        return {"question": str(doc["query"]).strip(), "references": _unique(_as_list(doc["truthful answer"]))}
    return None


def _sciq(doc: dict[str, Any]) -> dict[str, Any]:
    explicit = _explicit(doc) or _reference_row(doc)
    if explicit is None:
        raise KeyError("query")
    return explicit


def _truthfulqa(doc: dict[str, Any]) -> dict[str, Any]:
    # truthful_qa "generation": best_answer first, then correct_answers (incorrect_answers unused)
    return _explicit(doc) or _reference_row(doc) or {
        "question": str(doc["question"]).strip(),
        "references": _unique([doc.get("best_answer"), *_as_list(doc.get("correct_answers"))]),
    }


def _triviaqa(doc: dict[str, Any]) -> dict[str, Any]:
    # trivia_qa unfiltered.nocontext (and rc.nocontext): answer.value, answer.aliases, answer.normalized_aliases
    explicit = _explicit(doc) or _reference_row(doc)
    if explicit:
        return explicit
    answer = doc["answer"]
    if not isinstance(answer, dict):
        raise TypeError(f"'answer' should be a mapping, got {type(answer).__name__}")
    return {
        "question": str(doc["question"]).strip(),
        "references": _unique(
            [answer.get("value"), *_as_list(answer.get("aliases")), *_as_list(answer.get("normalized_aliases"))]
        ),
    }


def _nq_open(doc: dict[str, Any]) -> dict[str, Any]:
    # nq_open: "answer" is a list of strings
    return _explicit(doc) or _reference_row(doc) or {
        "question": str(doc["question"]).strip(), "references": _unique(_as_list(doc["answer"]))
    }


_EXPECTED_COLUMNS = {
    "semgrad_sciq": "",  # its hub form is not read: the shipped file is the paper's own
    "semgrad_truthfulqa": "truthful_qa's 'question', 'best_answer' and 'correct_answers' (list)",
    "semgrad_triviaqa": "trivia_qa's 'question' and 'answer' ({'value', 'aliases', 'normalized_aliases'})",
    "semgrad_nq_open": "nq_open's 'question' and 'answer' (list)",
}


def _process(dataset, extract, task: str):
    def checked(doc: dict[str, Any]) -> dict[str, Any]:
        try:
            processed = extract(doc)
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(
                f"{task}: a document does not have the expected columns: {_EXPECTED_COLUMNS[task] or ''}"
                f"{', ' if _EXPECTED_COLUMNS[task] else ''}the reference repository's 'query' and 'truthful answer' "
                f"(list), or 'question' and 'references' (list); it has {sorted(doc)} ({error!r})"
            ) from error
        if not processed["references"]:
            raise ValueError(f"{task}: the document {processed['question']!r} has no reference answer")
        return processed

    return dataset.map(checked)


def process_sciq(dataset):
    return _process(dataset, _sciq, "semgrad_sciq")


def process_truthfulqa(dataset):
    return _process(dataset, _truthfulqa, "semgrad_truthfulqa")


def process_triviaqa(dataset):
    return _process(dataset, _triviaqa, "semgrad_triviaqa")


def process_nq_open(dataset):
    return _process(dataset, _nq_open, "semgrad_nq_open")


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """Per-sample contains, exact_match, f1 (+ equivalence, equivalence_score with an equivalence model;
    + bem, bem_score with a BEM model)."""
    answer = results[0] if results else ""
    return score_answer(
        answer, doc["references"], equivalence_model=doc.get(EQUIVALENCE_COLUMN) or None,
        bem_model=doc.get(BEM_COLUMN) or None, question=doc["question"],
    )
