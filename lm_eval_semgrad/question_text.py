"""The question itself, as the baselines that quote it need it (P(True), M.I., the NLI texts).

The reference code quotes the dataset's raw question (`query`, stripped), not the chat prompt. A
sample knows its document; its question is the first string field of `QUESTION_FIELDS` there
(the semgrad tasks' documents have `question`), else the task's rendered text (`doc_to_text`),
else the prompt itself. What was used is recorded with the scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

QUESTION_FIELDS = ("question", "query", "problem", "input")


def question_of(doc: Any, fallback: str, fallback_source: str) -> tuple[str, str]:
    """(question text, where it came from) for a document; `fallback` when it has no question field."""
    if isinstance(doc, Mapping):
        for name in QUESTION_FIELDS:
            value = doc.get(name)
            if isinstance(value, str) and value.strip():
                return value.strip(), f"doc[{name!r}]"
    return fallback.strip(), fallback_source
