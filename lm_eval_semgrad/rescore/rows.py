"""Reading JSONL inputs line by line, and the bad-row bookkeeping shared by both input formats."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: bootstrap resamples for the metrics' standard errors (the harness caps its own at 1000 too)
DEFAULT_BOOTSTRAP_ITERS = 1000


class RescoreError(Exception):
    """An input or output that cannot be used; the message names the file (and line)."""


@dataclass(frozen=True)
class BadRow:
    """A row that cannot be scored: where it is and why."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason}


class RowError(ValueError):
    """Raised by row parsers; turned into a BadRow with the file and line."""


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, row, None) for each JSON object line, (line number, None, reason) for a bad one.

    Blank lines are skipped. Invalid JSON anywhere (also a truncated last line) is a bad row: a
    source file is expected to be complete.
    """
    try:
        handle = open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise RescoreError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield lineno, None, f"not valid JSON ({exc.msg} at column {exc.colno}); a truncated or corrupt file?"
                continue
            if not isinstance(row, dict):
                yield lineno, None, f"expected a JSON object per line, found {type(row).__name__}"
                continue
            yield lineno, row, None


def first_row(path: Path) -> dict[str, Any] | None:
    """The first JSON-object line of a file (None when there is none); for format detection."""
    for _, row, _ in read_jsonl(path):
        if row is not None:
            return row
    return None
