"""Resumable output files: rows appended and flushed per batch, rewritten in input order at the end.

Resume
    Rerunning with the same output path keeps every complete row already written (a half-written
    last line is dropped) whose input row is unchanged and whose ids match, and scores only the
    rest. A hidden state file next to the output (`.<name>.rescore-state.json`) records what the
    scores depend on (model, dtype, position, layers, prompt encoding); rerunning with other
    settings is refused unless `overwrite` is set, so rows of two configurations never mix.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from .rows import RescoreError

logger = logging.getLogger(__name__)


def state_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.rescore-state.json")


def dumps(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, default=str)


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)


class OutputFile:
    """One output JSONL: `previous_rows` from an earlier run, `append` per batch, `finalize` in order."""

    def __init__(self, path: Path, fingerprint: dict[str, Any], *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.overwrite = overwrite
        self._handle: TextIO | None = None

    def previous_rows(self, resume_key: Callable[[dict[str, Any]], Any]) -> dict[Any, dict[str, Any]]:
        """Complete rows of an earlier run at this path, by resume key (empty when starting fresh)."""
        state_file = state_path(self.path)
        if self.overwrite or not self.path.exists():
            return {}
        if state_file.exists():
            try:
                previous = json.loads(state_file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                previous = None
            if previous != self.fingerprint:
                changed = sorted(
                    key for key in set(self.fingerprint) | set(previous or {})
                    if (previous or {}).get(key) != self.fingerprint.get(key)
                )
                raise RescoreError(
                    f"{self.path} was written by a rescore with other settings ({', '.join(changed) or 'unreadable state'}); "
                    "pass --overwrite to start it again, or choose another --output_path"
                )
        rows: dict[Any, dict[str, Any]] = {}
        dropped = 0
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    dropped += 1  # the half-written line of an interrupted run
                    continue
                key = resume_key(row) if isinstance(row, dict) else None
                if key is not None:
                    rows[key] = row
        if dropped:
            logger.warning("%s: %d incomplete line(s) from an interrupted run are scored again", self.path, dropped)
        return rows

    def start(self, kept_rows: Iterable[dict[str, Any]]) -> None:
        """Begin writing: the output holds exactly `kept_rows`, then appended rows follow."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(state_path(self.path), self.fingerprint)
        self._rewrite(kept_rows)
        self._handle = open(self.path, "a", encoding="utf-8")

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        assert self._handle is not None, "start() first"
        for row in rows:
            self._handle.write(dumps(row) + "\n")
        self._handle.flush()

    def finalize(self, rows: Iterable[dict[str, Any]]) -> None:
        """Replace the output by `rows` (all of them, in input order), atomically."""
        self.close()
        self._rewrite(rows)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _rewrite(self, rows: Iterable[dict[str, Any]]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(dumps(row) + "\n")
        os.replace(tmp, self.path)
