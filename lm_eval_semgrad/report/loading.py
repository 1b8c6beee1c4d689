"""Find and read lm-eval output folders: `results_<timestamp>.json` and `samples_<task>_<timestamp>.jsonl`.

What counts as one run
    lm-eval writes every file of one invocation into OUT/<model_name_sanitized>/ with the same
    timestamp; a *run* is a (folder, timestamp) pair found at any depth under the given folders.
    Its model is identified by `config.model` + `config.model_args` from the results JSON (so the
    same checkpoint with another `semgrad_position` is another model); settings that do not change
    the answers or scores (batch sizes, device) are ignored. A `semgrad_cell.json` written by
    `lm-eval-semgrad sweep` in the run folder or a parent names the model instead.

Which runs are reported
    By default only the latest run (by timestamp) of each model x task; `all_runs=True` keeps every
    run and labels each with its timestamp.

Damaged files
    - results JSON that is not JSON, not an object, or has no "results" object: `ReportError`
      naming the file (the run cannot be attributed to a model safely).
    - an unparsable *last* line of a samples JSONL (an interrupted write): a warning naming
      file:line, the line is ignored; an unparsable line elsewhere, or a line that is not a JSON
      object: `ReportError` naming file:line.
    - sample rows without an "uncertainty" field, with "scores": null, or without a 0/1
      "correct": counted as answers without scores (reported, never silently dropped).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..sample_log import RESULTS_FILE_RE, SAMPLE_FIELD, SAMPLES_FILE_RE

__all__ = [
    "ReportError",
    "CELL_FILE",
    "Run",
    "FilterSamples",
    "FailedCell",
    "discover_runs",
    "select_runs",
    "read_results",
    "read_samples",
]

#: Metadata file a sweep writes into each cell folder.
CELL_FILE = "semgrad_cell.json"

#: model_args that do not change answers or scores, left out of a model's identity.
_IRRELEVANT_ARGS = {"semgrad_batch_size", "batch_size", "max_batch_size", "device"}



class ReportError(Exception):
    """A file that cannot be used; the message names it (and the line, for JSONL)."""


@dataclass
class FilterSamples:
    """The answers of one task x filter as read from a samples file.

    `correct[i]` is NaN when the row has no usable label; `scores[m][i]` is NaN when answer i has no
    score for method m (unscored answer, or the method was not computed).
    """

    n_rows: int
    correct: np.ndarray
    scores: dict[str, np.ndarray]
    scored: np.ndarray  # bool per row: has a scores dict and a 0/1 label
    n_no_field: int  # rows without an "uncertainty" field at all
    n_null_scores: int  # rows whose uncertainty.scores is null
    n_bad_label: int  # rows with scores but no usable "correct"
    correctness: str | None  # the labelling rule recorded by semgrad-hf, e.g. "contains >= 0.5"

    @property
    def n_scored(self) -> int:
        return int(self.scored.sum())


@dataclass
class Run:
    """One lm-eval invocation: the files in `directory` sharing `timestamp`."""

    directory: Path
    timestamp: str
    results_path: Path | None = None
    samples_paths: dict[str, Path] = field(default_factory=dict)
    results: dict[str, Any] | None = None
    model_key: str = ""
    model_name: str = ""
    model_args: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    cell: dict[str, Any] | None = None

    @property
    def tasks(self) -> list[str]:
        names = set(self.samples_paths)
        if self.results is not None:
            names.update(self.results.get("results", {}))
        return sorted(names)

    def task_results(self, task: str) -> dict[str, Any] | None:
        if self.results is None:
            return None
        value = self.results.get("results", {}).get(task)
        return value if isinstance(value, dict) else None


@dataclass
class FailedCell:
    """A sweep cell that ended with an error and left no results file."""

    directory: Path
    model: str
    task: str
    returncode: Any
    log: Path | None
    status: str = "failed"
    message: str | None = None

    @property
    def reason(self) -> str:
        text = f"sweep cell {self.status}"
        if self.returncode is not None:
            text += f" (exit code {self.returncode})"
        if self.message:
            text += f": {self.message}"
        if self.log is not None:
            text += f"; log: {self.log}"
        return text


# --------------------------------------------------------------------------- reading files


def read_results(path: Path) -> dict[str, Any]:
    """Parse an lm-eval results JSON; `ReportError` naming the file when it is unusable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{path}: cannot read results file: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "is this a complete lm-eval results file?"
        ) from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object, found {type(data).__name__}")
    if not isinstance(data.get("results"), dict):
        raise ReportError(f"{path}: no \"results\" object; is this an lm-eval results file?")
    return data


def _finite_or_nan(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)  # +-inf kept: only the order matters to the metrics


def _label(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return float(value)
    return math.nan


def _read_jsonl(path: Path, warnings: list[str]) -> list[tuple[int, dict[str, Any]]]:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ReportError(f"{path}: cannot read samples file: {exc.strerror or exc}") from None
    lines = text.splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    rows: list[tuple[int, dict[str, Any]]] = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        lineno = index + 1
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if index == last:
                warnings.append(
                    f"{path}:{lineno}: last line is not complete JSON ({exc.msg}); an interrupted run? "
                    "The line is ignored."
                )
                continue
            raise ReportError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise ReportError(f"{path}:{lineno}: expected a JSON object per line, found {type(row).__name__}")
        rows.append((lineno, row))
    return rows


def _line_list(lines: Sequence[int], limit: int = 5) -> str:
    shown = ", ".join(str(n) for n in lines[:limit])
    return shown + (f", ... ({len(lines)} in all)" if len(lines) > limit else "")


def read_samples(path: Path, warnings: list[str]) -> dict[str, FilterSamples]:
    """Rows of a samples JSONL grouped by filter (in file order of first appearance)."""
    grouped: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for lineno, row in _read_jsonl(path, warnings):
        grouped.setdefault(str(row.get("filter", "none")), []).append((lineno, row))

    out: dict[str, FilterSamples] = {}
    for filter_name, rows in grouped.items():
        n = len(rows)
        correct = np.full(n, np.nan)
        scored = np.zeros(n, dtype=bool)
        columns: dict[str, np.ndarray] = {}
        no_field = null_scores = 0
        bad_label: list[int] = []
        bad_field: list[int] = []
        rules: dict[str, None] = {}
        for i, (lineno, row) in enumerate(rows):
            info = row.get(SAMPLE_FIELD)
            if info is None:
                no_field += 1
                continue
            if not isinstance(info, dict):
                bad_field.append(lineno)
                continue
            correct[i] = _label(info.get("correct"))
            if isinstance(info.get("correctness"), str):
                rules.setdefault(info["correctness"], None)
            scores = info.get("scores")
            if scores is None:
                null_scores += 1
                continue
            if not isinstance(scores, dict):
                bad_field.append(lineno)
                continue
            if math.isnan(correct[i]):
                bad_label.append(lineno)
                continue
            scored[i] = True
            for method, value in scores.items():
                column = columns.get(method)
                if column is None:
                    column = columns[method] = np.full(n, np.nan)
                column[i] = _finite_or_nan(value)
        if bad_field:
            warnings.append(
                f"{path}: filter {filter_name!r}: 'uncertainty' (or its 'scores') is not an object on line(s) "
                f"{_line_list(bad_field)}; counted as answers without scores"
            )
        if bad_label:
            warnings.append(
                f"{path}: filter {filter_name!r}: no 0/1 'uncertainty.correct' on line(s) {_line_list(bad_label)}; "
                "counted as answers without scores"
            )
        if 0 < no_field < n:
            warnings.append(
                f"{path}: filter {filter_name!r}: {no_field} of {n} rows have no 'uncertainty' field; "
                "counted as answers without scores"
            )
        out[filter_name] = FilterSamples(
            n_rows=n,
            correct=correct,
            scores=columns,
            scored=scored,
            n_no_field=no_field + len(bad_field),
            n_null_scores=null_scores,
            n_bad_label=len(bad_label),
            correctness=" / ".join(rules) or None,
        )
    return out


# --------------------------------------------------------------------------- discovery


def _model_args_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str) and value.strip():
        out: dict[str, Any] = {}
        for part in value.split(","):
            if part.strip():
                key, _, val = part.partition("=")
                out[key.strip()] = val.strip()
        return out
    return {}


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or bool(re.match(r"^[A-Za-z]:[\\/]", name))


def _short_model_name(name: str) -> str:
    name = name.rstrip("/\\")
    return re.split(r"[\\/]", name)[-1] if _looks_like_path(name) else name


def _find_cell(directory: Path, roots: Sequence[Path]) -> dict[str, Any] | None:
    """The sweep metadata of the cell holding `directory`, looking upwards but not above a root."""
    current = directory
    for _ in range(4):
        candidate = current / CELL_FILE
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                return None
            return data if isinstance(data, dict) else None
        if any(current == root for root in roots) or current.parent == current:
            return None
        current = current.parent
    return None


def _identify(run: Run, roots: Sequence[Path]) -> None:
    config = (run.results or {}).get("config") or {}
    args = _model_args_dict(config.get("model_args"))
    run.model_args = args
    name = (run.results or {}).get("model_name") or args.get("pretrained") or run.directory.name
    run.model_name = str(name)
    relevant = {key: args[key] for key in sorted(args) if key not in _IRRELEVANT_ARGS}
    source = config.get("model") or "?"
    if run.results is None:  # samples only: the folder is all we know
        run.model_key = f"dir:{run.directory}"
    else:
        run.model_key = json.dumps([source, run.model_name, relevant], sort_keys=True, default=str)
    run.cell = _find_cell(run.directory, roots)
    if run.cell and isinstance(run.cell.get("model"), str):
        run.label = run.cell["model"]
        run.model_key = f"cell:{run.cell['model']}|{run.model_key}"
        return
    label = _short_model_name(run.model_name)
    extras = [f"{key}={relevant[key]}" for key in relevant if key.startswith("semgrad_")]
    if source not in ("semgrad-hf", "?"):
        extras.insert(0, f"model={source}")
    run.label = f"{label} [{', '.join(extras)}]" if extras else label


def discover_runs(paths: Iterable[str | Path], warnings: list[str]) -> tuple[list[Run], list[FailedCell]]:
    """Every run under `paths` (folders searched at any depth, or results/samples files given directly)."""
    roots: list[Path] = []
    files: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            roots.append(path.resolve())
            files.update(p.resolve() for p in path.rglob("results_*.json"))
            files.update(p.resolve() for p in path.rglob("samples_*.jsonl"))
        elif path.is_file():
            roots.append(path.resolve().parent)
            files.add(path.resolve())
        else:
            raise ReportError(f"{path}: no such file or folder")

    runs: dict[tuple[Path, str], Run] = {}
    for path in sorted(files):
        match = RESULTS_FILE_RE.match(path.name)
        if match:
            run = runs.setdefault((path.parent, match["ts"]), Run(path.parent, match["ts"]))
            run.results_path = path
            continue
        match = SAMPLES_FILE_RE.match(path.name)
        if match:
            run = runs.setdefault((path.parent, match["ts"]), Run(path.parent, match["ts"]))
            run.samples_paths[match["task"]] = path
        else:
            warnings.append(f"{path}: name does not look like lm-eval output (samples_<task>_<timestamp>.jsonl); ignored")

    found = sorted(runs.values(), key=lambda r: (str(r.directory), r.timestamp))
    for run in found:
        if run.results_path is not None:
            run.results = read_results(run.results_path)
        elif run.samples_paths:
            warnings.append(
                f"{run.directory}: samples from {run.timestamp} have no results_{run.timestamp}.json; "
                "the model is named after the folder"
            )
        _identify(run, roots)

    failed: list[FailedCell] = []
    for root in roots:
        for cell_file in sorted(root.rglob(CELL_FILE)):
            try:
                cell = json.loads(cell_file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                warnings.append(f"{cell_file}: unreadable sweep metadata; ignored")
                continue
            if not isinstance(cell, dict) or cell.get("status") == "finished":
                continue
            if any(run.directory.is_relative_to(cell_file.parent) for run in found if run.results_path):
                continue
            log = cell_file.parent / str(cell.get("log", "lm_eval.log"))
            failed.append(
                FailedCell(
                    directory=cell_file.parent,
                    model=str(cell.get("model", "?")),
                    task=str(cell.get("task", "?")),
                    returncode=cell.get("returncode"),
                    log=log if log.is_file() else None,
                    status=str(cell.get("status", "failed")),
                    message=cell.get("message") if isinstance(cell.get("message"), str) else None,
                )
            )
    return found, failed


def select_runs(runs: Sequence[Run], all_runs: bool = False) -> list[tuple[Run, str]]:
    """(run, task) pairs to report: the latest run per model x task, or every one with `all_runs`."""
    if all_runs:
        counts: dict[str, int] = {}
        for run in runs:
            counts[run.model_key] = counts.get(run.model_key, 0) + 1
        pairs = [(run, task) for run in runs for task in run.tasks]
    else:
        latest: dict[tuple[str, str], Run] = {}
        for run in runs:
            for task in run.tasks:
                key = (run.model_key, task)
                if key not in latest or run.timestamp > latest[key].timestamp:
                    latest[key] = run
        pairs = [(run, task) for (_, task), run in latest.items()]
    _disambiguate_labels([run for run, _ in pairs])
    if all_runs:
        for run, _ in pairs:
            if counts[run.model_key] > 1 and not run.label.endswith(run.timestamp):
                run.label = f"{run.label} @ {run.timestamp}"
    return sorted(pairs, key=lambda pair: (pair[0].label, pair[1], pair[0].timestamp))


def _disambiguate_labels(runs: Sequence[Run]) -> None:
    """Distinct models must not share a label: fall back to the full name and arguments.

    A run reported for several tasks occurs once per task in `runs`: each is labelled once.
    """
    runs = list({id(run): run for run in runs}.values())
    by_label: dict[str, set[str]] = {}
    for run in runs:
        by_label.setdefault(run.label, set()).add(run.model_key)
    for run in runs:
        if len(by_label[run.label]) > 1:
            args = ",".join(f"{k}={v}" for k, v in sorted(run.model_args.items()) if k not in _IRRELEVANT_ARGS)
            run.label = f"{run.model_name} [{args}]" if args else f"{run.model_name} ({run.directory})"
    # still ambiguous (e.g. samples-only folders with one name): add the folder
    by_label = {}
    for run in runs:
        by_label.setdefault(run.label, set()).add(run.model_key)
    for run in runs:
        if len(by_label[run.label]) > 1:
            run.label = f"{run.label} ({run.directory})"
