"""Per-request uncertainty records, keyed like lm-eval's request cache so resumed runs keep them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import MutableMapping, Sequence
from typing import Any

from lm_eval.api.model import hash_args

Record = dict[str, Any]  # {"scores": {name: float}, "response_ids": [...], "prompt_len": int}

_ATTR = "semgrad_scores"  # distinct from "generate_until", so cached answers and scores never collide


class ScoreStore:
    """Records of generated answers, one list per request (its repeats in generation order).

    Requests are keyed by their arguments, as `CachingLM` keys answers. With `--use_cache` the
    records are also written to the same SQLite cache, so a resumed run (whose cached answers never
    reach the model) finds the scores that were computed when the answers were generated.
    """

    def __init__(self) -> None:
        self._records: dict[str, list[Record]] = defaultdict(list)
        self.persistent: MutableMapping[str, Any] | None = None

    def add(self, request_args: Sequence[Any], record: Record) -> None:
        key = hash_args(_ATTR, request_args)
        self._records[key].append(record)
        if self.persistent is not None:
            self.persistent[key] = self._records[key]

    def get(self, request_args: Sequence[Any], repeat: int = 0) -> Record | None:
        """The record of the `repeat`-th generation for these arguments, or None if never scored."""
        key = hash_args(_ATTR, request_args)
        records = self._records.get(key)
        if not records and self.persistent is not None and key in self.persistent:
            records = self._records[key] = list(self.persistent[key])
        if records and repeat < len(records):
            return records[repeat]
        return None
