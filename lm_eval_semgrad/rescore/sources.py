"""Input files of `rescore`: lm-eval samples files (and the results JSON beside each), or plain JSONL."""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..logs import get_logger
from ..sample_log import RESULTS_FILE_RE, SAMPLES_FILE_RE, primary_metric
from .rows import RescoreError, first_row

logger = get_logger(__name__)


@dataclass
class SampleSource:
    """One lm-eval samples file and what sits beside it."""

    path: Path
    task: str
    timestamp: str
    results_path: Path | None
    results: dict[str, Any] | None

    @property
    def primary_metric(self) -> str | None:
        """The first metric of the task's metric_list in the results JSON beside the samples file."""
        config = ((self.results or {}).get("configs") or {}).get(self.task) or {}
        return primary_metric(config.get("metric_list"))

    @property
    def model_args(self) -> dict[str, Any]:
        """The model args of the run that wrote the file (from its results JSON)."""
        args = ((self.results or {}).get("config") or {}).get("model_args")
        if isinstance(args, str):
            from lm_eval.utils import simple_parse_args_string

            return simple_parse_args_string(args)
        return dict(args) if isinstance(args, dict) else {}


def find_sample_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files given, plus every samples_*.jsonl under folders given (sorted, de-duplicated)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            matches = sorted(path.rglob("samples_*.jsonl"))
            if not matches:
                raise RescoreError(f"{path}: no samples_*.jsonl files in this folder")
            found.extend(matches)
        elif path.is_file():
            if RESULTS_FILE_RE.match(path.name):
                raise RescoreError(
                    f"{path} is an lm-eval results file; rescore reads the samples files beside it "
                    "(samples_<task>_<timestamp>.jsonl, written with --log_samples): pass those, or their folder"
                )
            found.append(path)
        else:
            raise RescoreError(f"{path}: no such file or folder")
    return list(dict.fromkeys(p.resolve() for p in found))


def is_plain_jsonl(path: Path) -> bool:
    """Auto-detection: a file whose first row has "response" and no lm-eval "doc_id" is plain JSONL."""
    if SAMPLES_FILE_RE.match(path.name):
        return False
    row = first_row(path)
    return row is not None and "response" in row and "doc_id" not in row


def describe_source(path: Path) -> SampleSource:
    match = SAMPLES_FILE_RE.match(path.name)
    if match:
        task, timestamp = match["task"], match["ts"]
    else:  # renamed file: the task from the name, a stable stand-in timestamp from its modification time
        task = re.sub(r"^samples_", "", path.stem)
        timestamp = datetime.fromtimestamp(path.stat().st_mtime).isoformat().replace(":", "-")
    results_path = path.with_name(f"results_{timestamp}.json")
    candidates = [results_path] if results_path.is_file() else []
    candidates += sorted(Path(p) for p in glob.glob(str(path.parent / "results_*.json")) if Path(p) != results_path)[::-1]
    for candidate in candidates:
        data = _read_json(candidate)
        if isinstance(data, dict) and task in (data.get("configs") or {}):
            return SampleSource(path, task, timestamp, candidate, data)
    return SampleSource(path, task, timestamp, None, None)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        logger.warning("%s: unreadable results JSON; ignored", path)
        return None
