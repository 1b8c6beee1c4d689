"""Scored answers kept in lm-eval's request cache (`--use_cache`), so that a resumed run keeps its scores.

A resumed run's cached answers never reach the model, so their scores must come from the cache
too. Records are stored under the request's arguments (as `CachingLM` keys answers), one list per
request holding every answer generated for it, each with the answer text and the `fingerprint` of
everything that changes a score (model, revision, dtype, semantic position and layers, plugin
version). A cached answer takes the record whose text is that answer's and whose fingerprint is
the run's; a record made with other settings is never reused (`find` returns it as stale, so its
exact token ids can be scored again), and one of this run's settings whose sampling baselines an
interrupted run never computed keeps its grad-pass scores (`find`: unsampled).
"""

from __future__ import annotations

from collections.abc import Collection, MutableMapping, Sequence
from typing import Any, Literal

from lm_eval.api.model import hash_args

from ..sample_log import Record

CachedState = Literal["complete", "unsampled", "stale", "none"]

_ATTR = "semgrad_scores"  # distinct from "generate_until", so cached answers and scores never collide


class ScoreStore:
    """Records of generated answers in a persistent mapping (the request cache's SQLite dict)."""

    def __init__(self, fingerprint: dict[str, Any]) -> None:
        self.fingerprint = fingerprint
        self.persistent: MutableMapping[str, Any] | None = None

    def save(self, request_args: Sequence[Any], record: Record) -> None:
        """Keep `record` for a resumed run (nothing to do without --use_cache)."""
        if self.persistent is None:
            return
        key = hash_args(_ATTR, request_args)
        stored = [r for r in self._stored(key) if not (r.get("response") == record["response"] and self._current(r))]
        self.persistent[key] = [*stored, {**record, "fingerprint": self.fingerprint}]

    def find(
        self, request_args: Sequence[Any], response: str, methods: Collection[str], optional: Collection[str] = ()
    ) -> tuple[Record | None, CachedState]:
        """The best record of this answer and what it still needs.

        "complete": made with this run's settings, `methods` scored and `optional` scored or missing
        with a reason. "unsampled": this run's settings and `methods` scored, `optional` not yet (a
        run interrupted in its sampling stage): only the sampling baselines are left to compute.
        "stale": made otherwise, its token ids can be scored again. "none": no record (None).
        """
        if self.persistent is None:
            return None, "none"
        matching = [r for r in self._stored(hash_args(_ATTR, request_args)) if r.get("response") == response]
        unsampled = None
        for record in matching:
            scored = set(record.get("scores") or {})
            if self._current(record) and set(methods) <= scored:
                if set(optional) <= scored | set(record.get("missing") or {}):
                    return _without_fingerprint(record), "complete"
                unsampled = unsampled or record
        if unsampled is not None:
            return _without_fingerprint(unsampled), "unsampled"
        stale = next((r for r in matching if r.get("prompt_ids") and r.get("response_ids")), None)
        return (None, "none") if stale is None else (_without_fingerprint(stale), "stale")

    def _stored(self, key: str) -> list[dict[str, Any]]:
        assert self.persistent is not None
        value = self.persistent.get(key)
        return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []

    def _current(self, record: dict[str, Any]) -> bool:
        return record.get("fingerprint") == self.fingerprint


def _without_fingerprint(record: dict[str, Any]) -> Record:
    return {key: value for key, value in record.items() if key != "fingerprint"}  # type: ignore[return-value]
