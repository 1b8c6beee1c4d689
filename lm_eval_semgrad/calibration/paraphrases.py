"""Questions with paraphrases for the Semantic Preservation Score.

The default file, `lm_eval_semgrad/data/sciq/paraphrase.jsonl`, holds the paper's 1000 SciQ
questions, each with about 12 paraphrases; it comes from the SemGrad reference repository
(github.com/mingdali6717/SemGrad, MIT licence). One JSON object per line:
`{"query": str, "paraphrases": [str, ...], ...}` (`"question"` is accepted for `"query"`; other
fields such as `"truthful answer"` are ignored).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_PARAPHRASES = "sciq/paraphrase.jsonl"

__all__ = ["DEFAULT_PARAPHRASES", "ParaphraseItem", "as_items", "default_paraphrase_path", "read_paraphrases", "select"]


@dataclass(frozen=True)
class ParaphraseItem:
    question: str
    paraphrases: tuple[str, ...]


def default_paraphrase_path() -> Path:
    from lm_eval_semgrad.data import data_path

    return data_path(DEFAULT_PARAPHRASES)


def _item_from_record(record: Any, where: str) -> ParaphraseItem:
    if not isinstance(record, Mapping):
        raise ValueError(f"{where}: expected a JSON object with 'query' and 'paraphrases', got {type(record).__name__}")
    question = record.get("query", record.get("question"))
    if question is None:
        raise ValueError(f"{where}: missing field 'query' (the question text); fields present: {sorted(record)}")
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"{where}: 'query' must be a non-empty string, got {question!r}")
    if "paraphrases" not in record:
        raise ValueError(f"{where}: missing field 'paraphrases' (a list of strings); fields present: {sorted(record)}")
    paraphrases = record["paraphrases"]
    if not isinstance(paraphrases, (list, tuple)) or not all(isinstance(p, str) for p in paraphrases):
        raise ValueError(f"{where}: 'paraphrases' must be a list of strings, got {paraphrases!r:.200}")
    kept = tuple(p.strip() for p in paraphrases if p.strip())
    if not kept:
        raise ValueError(f"{where}: 'paraphrases' is empty; every question needs at least one paraphrase")
    return ParaphraseItem(question.strip(), kept)


def read_paraphrases(path: str | Path | None = None) -> list[ParaphraseItem]:
    """Every question of a paraphrase JSONL file (default: the packaged SciQ file), in file order."""
    path = default_paraphrase_path() if path is None else Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"paraphrase file {str(path)!r} not found")
    items = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not valid JSON ({error.msg})") from None
            items.append(_item_from_record(record, f"{path}, line {number}"))
    if len(items) < 2:
        raise ValueError(f"{path}: {len(items)} question(s); the SPS compares questions with each other and needs at least 2")
    return items


def as_items(data: Iterable[Any]) -> list[ParaphraseItem]:
    """ParaphraseItems from items, `{"query"/"question", "paraphrases"}` mappings or `(question, [paraphrases])`."""
    items = []
    for index, entry in enumerate(data):
        if isinstance(entry, ParaphraseItem):
            items.append(entry)
        elif isinstance(entry, Mapping):
            items.append(_item_from_record(entry, f"item {index}"))
        elif isinstance(entry, Sequence) and not isinstance(entry, str) and len(entry) == 2:
            items.append(_item_from_record({"query": entry[0], "paraphrases": list(entry[1])}, f"item {index}"))
        else:
            raise ValueError(f"item {index}: expected (question, [paraphrases]) or a mapping, got {entry!r:.200}")
    return items


def select(
    items: Sequence[ParaphraseItem], limit: int | None, paraphrases_per_question: int | None, seed: int | None = None
) -> list[ParaphraseItem]:
    """The first `limit` questions (or `limit` drawn with `seed`, kept in file order), each with its
    first `paraphrases_per_question` paraphrases."""
    if limit is not None and limit < 2:
        raise ValueError(f"limit={limit}: the SPS needs at least 2 questions")
    if paraphrases_per_question is not None and paraphrases_per_question < 1:
        raise ValueError(f"paraphrases_per_question={paraphrases_per_question}: must be at least 1")
    indices = list(range(len(items)))
    if limit is not None and limit < len(items):
        indices = sorted(random.Random(seed).sample(indices, limit)) if seed is not None else indices[:limit]
    return [
        ParaphraseItem(items[i].question, items[i].paraphrases[:paraphrases_per_question]) for i in indices
    ]
