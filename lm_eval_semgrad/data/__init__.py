"""Data files shipped with lm-eval-semgrad, and the dataset loader behind the `semgrad_*` tasks.

- `sciq/test.jsonl`: the paper's 1000 SciQ questions, `{"query", "truthful answer": [..]}`.
- `sciq/paraphrase.jsonl`: the same questions with `"paraphrases": [..]` (about 12 each).

`data_path("sciq/test.jsonl")` finds a file wherever the package is installed (it never depends on
the working directory).
"""

from __future__ import annotations

from pathlib import Path

from .loading import (
    BEM_COLUMN,
    BEM_MODEL_KEY,
    EQUIVALENCE_COLUMN,
    EQUIVALENCE_MODEL_KEY,
    MODEL_OF_METRIC,
    data_files_key,
    load_task_dataset,
    read_records,
)

DATA_DIR = Path(__file__).resolve().parent

__all__ = [
    "BEM_COLUMN",
    "BEM_MODEL_KEY",
    "DATA_DIR",
    "EQUIVALENCE_COLUMN",
    "EQUIVALENCE_MODEL_KEY",
    "MODEL_OF_METRIC",
    "data_files_key",
    "data_path",
    "load_task_dataset",
    "read_records",
]


def data_path(relative: str) -> Path:
    """Absolute path of a packaged data file, e.g. `data_path("sciq/test.jsonl")`."""
    path = DATA_DIR / relative
    if not path.is_file():
        raise FileNotFoundError(f"lm-eval-semgrad data file {relative!r} is missing from {DATA_DIR}; reinstall the package.")
    return path
