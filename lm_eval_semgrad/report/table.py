"""Leaderboard rows: one per model x task x filter, with every uncertainty method's metrics and CIs.

Metrics are recomputed from the per-sample scores in the samples JSONL (so the report works on
sample files alone and covers every score `semgrad-hf` logged, not only the methods the run
reported). When a task has a results JSON but no samples file, the row takes the run's own
`{method}_{metric},{filter}` values and their stderr from the results JSON, without CIs.

A model x task x filter without any scored answer is never dropped silently: it becomes a
`MissingScores` entry with the reason (stock `hf` run, multiple-choice task, "scores": null, ...).
"""

from __future__ import annotations

import math
import re
import warnings as _warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import methods as registry
from ..metrics import HIGHER_IS_BETTER, METRICS, BootstrapResult, evaluate_uncertainty
from .confidence import ConfidenceResult, ConfidenceSettings, evaluate_confidence, unavailable
from .loading import FilterSamples, Run, discover_runs, read_samples, select_runs

__all__ = [
    "METRIC_NAMES",
    "METRIC_LABELS",
    "MethodResult",
    "Row",
    "MissingScores",
    "Report",
    "build_report",
    "evaluate_row",
]

METRIC_NAMES = ("auroc", "auprc", "aurc", "prr", "spearman")
METRIC_LABELS = {"auroc": "AUROC", "auprc": "AUPRC", "aurc": "AURC", "prr": "PRR", "spearman": "Spearman"}

_RESULT_KEY_RE = re.compile(
    r"^(?P<method>.+?)_(?P<metric>" + "|".join(METRIC_NAMES) + r")(?P<stderr>_stderr)?,(?P<filter>.*)$"
)


@dataclass
class MethodResult:
    """One method's metrics in one row; `n` = answers that have this method's score."""

    method: str
    n: int
    metrics: dict[str, BootstrapResult]
    uncertainty: np.ndarray | None = None  # the scored answers (samples source only), for plots
    correct: np.ndarray | None = None
    calibrated: ConfidenceResult | None = None  # with --confidence only

    def value(self, metric: str) -> float:
        result = self.metrics.get(metric)
        return math.nan if result is None else result.value


@dataclass
class Row:
    model: str
    task: str
    filter: str
    source: str  # "samples" or "results"
    directory: Path
    timestamp: str
    n: int | None  # answers in the row
    n_scored: int | None  # answers with scores and a correctness label
    accuracy: float | None
    accuracy_from: str  # how accuracy was obtained
    correctness: str | None
    methods: dict[str, MethodResult] = field(default_factory=dict)
    best: list[str] = field(default_factory=list)  # best method(s) by AUROC
    best_per_metric: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def n_missing(self) -> int | None:
        return None if self.n is None or self.n_scored is None else self.n - self.n_scored

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.task, self.filter)

    @property
    def has_ci(self) -> bool:
        return self.source == "samples"


@dataclass
class MissingScores:
    """A model x task (x filter) for which no uncertainty metric can be reported, and why."""

    model: str
    task: str
    filter: str
    reason: str
    path: Path | None


@dataclass
class Report:
    rows: list[Row]
    missing: list[MissingScores]
    warnings: list[str]
    methods: list[str]
    n_bootstrap: int
    seed: int
    confidence: float
    sources: list[str]
    calibrated: ConfidenceSettings | None = None  # --confidence: the cross-fitted map's settings


# --------------------------------------------------------------------------- metrics per row


def _point_only(u: np.ndarray, c: np.ndarray) -> dict[str, BootstrapResult]:
    out = {}
    for name in METRIC_NAMES:
        value = float(METRICS[name](u, c))
        out[name] = BootstrapResult(value, math.nan, math.nan, math.nan, len(u), 0)
    return out


def evaluate_row(
    uncertainty: np.ndarray, correct: np.ndarray, *, n_bootstrap: int, seed: int, confidence: float = 0.95
) -> tuple[dict[str, BootstrapResult], list[str]]:
    """Every metric with its bootstrap CI on clean arrays; also the metrics' warnings, as text."""
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        if n_bootstrap > 0:
            results = evaluate_uncertainty(
                uncertainty, correct, metrics=METRIC_NAMES, n_resamples=n_bootstrap, seed=seed,
                nan_policy="raise", confidence=confidence,
            )
        else:
            results = _point_only(uncertainty, correct)
    messages = list(dict.fromkeys(str(w.message) for w in caught))
    return results, messages


_UNDEFINED_RE = re.compile(r"^(?P<metric>\w+) is undefined because (?P<why>.+); returning nan$")


def _group_messages(by_message: dict[str, list[str]], all_methods: list[str]) -> list[str]:
    """One note per distinct reason instead of one per method x metric."""
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for message, methods in by_message.items():
        match = _UNDEFINED_RE.match(message)
        if match:
            grouped.setdefault((f"undefined because {match['why']}", tuple(methods)), []).append(match["metric"])
        else:
            grouped.setdefault((message, tuple(methods)), [])
    notes = []
    for (text, methods), metrics in grouped.items():
        who = "every method" if list(methods) == all_methods and len(methods) > 1 else ", ".join(methods)
        if metrics:
            notes.append(f"{', '.join(dict.fromkeys(metrics))} {text} ({who})")
        else:
            notes.append(f"{who}: {text}")
    return notes


def _mark_best(row: Row) -> None:
    for metric in METRIC_NAMES:
        values = {m: r.value(metric) for m, r in row.methods.items() if math.isfinite(r.value(metric))}
        if not values:
            row.best_per_metric[metric] = []
            continue
        target = max(values.values()) if HIGHER_IS_BETTER[metric] else min(values.values())
        row.best_per_metric[metric] = [m for m, v in values.items() if abs(v - target) <= 1e-12]
    row.best = row.best_per_metric.get("auroc", [])


def _ordered_methods(present: Iterable[str], wanted: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(present))
    if wanted:
        return [m for m in wanted if m in present]
    return registry.ordered(present)


# --------------------------------------------------------------------------- per source


def _task_config(run: Run, task: str) -> dict[str, Any]:
    configs = (run.results or {}).get("configs") or {}
    value = configs.get(task)
    return value if isinstance(value, dict) else {}


def _no_scores_reason(run: Run, task: str, samples: FilterSamples) -> str:
    n = samples.n_rows
    output_type = _task_config(run, task).get("output_type")
    model_type = ((run.results or {}).get("config") or {}).get("model")
    if samples.n_no_field == n:
        if output_type and output_type != "generate_until":
            return f"{output_type} task: semgrad-hf scores generative (generate_until) tasks only"
        if model_type and model_type != "semgrad-hf":
            return f"a `{model_type}` run, not semgrad-hf: its samples have no 'uncertainty' field"
        return "the samples have no 'uncertainty' field (not a semgrad-hf run?)"
    if samples.n_null_scores == n:
        return f'all {n} answers have "scores": null (none was scored)'
    if samples.n_bad_label == n:
        return f"none of the {n} answers has a 0/1 'uncertainty.correct' label"
    return (
        f"none of the {n} answers has usable scores ({samples.n_no_field} without 'uncertainty', "
        f"{samples.n_null_scores} with null scores, {samples.n_bad_label} without a label)"
    )


def _rows_from_samples(
    run: Run, task: str, path: Path, filters: dict[str, FilterSamples], methods: Sequence[str] | None,
    n_bootstrap: int, seed: int, confidence: float, missing: list[MissingScores],
    calibrate: ConfidenceSettings | None = None,
) -> list[Row]:
    rows = []
    for filter_name, samples in filters.items():
        if samples.n_scored == 0:
            missing.append(MissingScores(run.label, task, filter_name, _no_scores_reason(run, task, samples), path))
            continue
        labelled = ~np.isnan(samples.correct)
        row = Row(
            model=run.label, task=task, filter=filter_name, source="samples", directory=run.directory,
            timestamp=run.timestamp, n=samples.n_rows, n_scored=samples.n_scored,
            accuracy=float(np.mean(samples.correct[labelled])) if labelled.any() else None,
            accuracy_from="mean of uncertainty.correct",
            correctness=samples.correctness,
        )
        if row.n_missing:
            row.notes.append(
                f"{row.n_missing} of {row.n} answers have no uncertainty scores and are left out of the metrics"
            )
        by_message: dict[str, list[str]] = {}
        for method in _ordered_methods(samples.scores, methods):
            column = samples.scores[method]
            keep = samples.scored & ~np.isnan(column)
            u, c = column[keep], samples.correct[keep]
            if len(u) == 0:
                row.notes.append(f"{method}: no answer has this score")
                continue
            if len(u) < samples.n_scored:
                row.notes.append(f"{method}: {samples.n_scored - len(u)} scored answers lack this score")
            results, messages = evaluate_row(u, c, n_bootstrap=n_bootstrap, seed=seed, confidence=confidence)
            for message in messages:
                by_message.setdefault(message, []).append(method)
            calibrated = None if calibrate is None else evaluate_confidence(
                u, c, calibrate, n_bootstrap=n_bootstrap, seed=seed, confidence=confidence
            )
            row.methods[method] = MethodResult(method, len(u), results, uncertainty=u, correct=c, calibrated=calibrated)
        row.notes = list(dict.fromkeys(row.notes)) + _group_messages(by_message, list(row.methods))
        _mark_best(row)
        rows.append(row)
    return rows


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


_RESULTS_ONLY = "no per-answer scores (results JSON only): log samples with --log_samples to calibrate"


def _rows_from_results(
    run: Run, task: str, methods: Sequence[str] | None, missing: list[MissingScores], warnings: list[str],
    calibrate: ConfidenceSettings | None = None,
) -> list[Row]:
    task_results = run.task_results(task) or {}
    found: dict[str, dict[str, dict[str, dict[str, float]]]] = {}  # filter -> method -> metric -> {value, stderr}
    for key, value in task_results.items():
        match = _RESULT_KEY_RE.match(key)
        if match:
            slot = found.setdefault(match["filter"], {}).setdefault(match["method"], {}).setdefault(match["metric"], {})
            slot["stderr" if match["stderr"] else "value"] = _as_float(value)
    found = {
        f: {m: metrics for m, metrics in by_method.items() if "value" in metrics.get("auroc", {})}
        for f, by_method in found.items()
    }
    found = {f: by_method for f, by_method in found.items() if by_method}
    if not found:
        model_type = ((run.results or {}).get("config") or {}).get("model")
        output_type = _task_config(run, task).get("output_type")
        if output_type and output_type != "generate_until":
            why = f"{output_type} task: semgrad-hf scores generative (generate_until) tasks only"
        elif model_type and model_type != "semgrad-hf":
            why = f"a `{model_type}` run, not semgrad-hf"
        else:
            why = "no uncertainty metrics in the results JSON"
        missing.append(MissingScores(run.label, task, "*", f"{why}; no samples file (--log_samples)", run.results_path))
        return []

    n_samples = ((run.results or {}).get("n-samples") or {}).get(task) or {}
    n = n_samples.get("effective") if isinstance(n_samples, dict) else None
    metric_list = _task_config(run, task).get("metric_list") or []
    first = metric_list[0].get("metric") if metric_list and isinstance(metric_list[0], dict) else None
    warnings.append(
        f"{run.label} / {task}: no samples file, so the metrics are the run's own from {run.results_path} "
        "without confidence intervals (log samples with --log_samples to get CIs, every method and plots)"
    )
    rows = []
    for filter_name, by_method in found.items():
        accuracy = _as_float(task_results.get(f"{first},{filter_name}")) if isinstance(first, str) else math.nan
        row = Row(
            model=run.label, task=task, filter=filter_name, source="results", directory=run.directory,
            timestamp=run.timestamp, n=int(n) if isinstance(n, (int, float)) else None, n_scored=None,
            accuracy=None if math.isnan(accuracy) else accuracy,
            accuracy_from=f"{first} (results JSON)" if isinstance(first, str) else "unknown",
            correctness=None,
        )
        for method in _ordered_methods(by_method, methods):
            metrics = {}
            for metric in METRIC_NAMES:
                slot = by_method[method].get(metric, {})
                metrics[metric] = BootstrapResult(
                    slot.get("value", math.nan), math.nan, math.nan, slot.get("stderr", math.nan), row.n or 0, 0
                )
            calibrated = None if calibrate is None else unavailable(_RESULTS_ONLY, row.n or 0)
            row.methods[method] = MethodResult(method, row.n or 0, metrics, calibrated=calibrated)
        _mark_best(row)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- the report


def _is_group(run: Run, task: str) -> bool:
    groups = (run.results or {}).get("group_subtasks") or {}
    return bool(groups.get(task)) and task not in run.samples_paths


def build_report(
    paths: Sequence[str | Path],
    *,
    methods: Sequence[str] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 1234,
    confidence: float = 0.95,
    all_runs: bool = False,
    only_under: Sequence[str | Path] | None = None,
    calibrate: ConfidenceSettings | None = None,
) -> Report:
    """Discover the runs under `paths` and compute every row. Raises `ReportError` for unusable files.

    `only_under` keeps only runs (and failed sweep cells) inside those folders, e.g. the cells of
    the current sweep grid when the sweep folder also holds cells of models since removed.
    `calibrate` (--confidence) adds each method's cross-fitted P(correct) and calibration metrics.
    """
    if n_bootstrap != 0 and n_bootstrap < 2:
        raise ValueError(f"bootstrap resamples must be 0 (no CIs) or >= 2, got {n_bootstrap}")
    warnings: list[str] = []
    runs, failed = discover_runs(paths, warnings)
    if only_under is not None:
        keep = [Path(p).resolve() for p in only_under]
        runs = [r for r in runs if any(r.directory.is_relative_to(k) for k in keep)]
        failed = [c for c in failed if any(c.directory.resolve().is_relative_to(k) for k in keep)]
    rows: list[Row] = []
    missing: list[MissingScores] = []
    cache: dict[Path, dict[str, FilterSamples]] = {}
    for run, task in select_runs(runs, all_runs=all_runs):
        if _is_group(run, task):
            continue
        path = run.samples_paths.get(task)
        if path is not None:
            if path not in cache:
                cache[path] = read_samples(path, warnings)
            filters = cache[path]
            if not filters:
                missing.append(MissingScores(run.label, task, "*", "the samples file has no rows", path))
                continue
            rows.extend(
                _rows_from_samples(run, task, path, filters, methods, n_bootstrap, seed, confidence, missing, calibrate)
            )
        else:
            rows.extend(_rows_from_results(run, task, methods, missing, warnings, calibrate))
    for cell in failed:
        missing.append(MissingScores(cell.model, cell.task, "*", cell.reason, cell.directory))

    shown = _ordered_methods((m for row in rows for m in row.methods), methods)
    if methods:
        absent = [m for m in methods if m not in shown]
        if absent:
            warnings.append(f"method(s) {', '.join(absent)} not found in any scores")
    return Report(
        rows=rows, missing=missing, warnings=warnings, methods=shown, n_bootstrap=n_bootstrap, seed=seed,
        confidence=confidence, sources=[str(p) for p in paths], calibrated=calibrate,
    )

