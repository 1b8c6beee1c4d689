"""Fit P(correct) maps on the logged answers of one run (a dev set), read as `report` reads runs.

The run is the latest one of one model x task under the given folders (`report.loading`'s rule);
each method's map is fitted on every answer with that score and a 0/1 label (the label `report`
uses: `uncertainty.correct`), answers without the score left out and counted. Runs of several
models (or settings) are refused, and so are several tasks unless `task` picks one: a map of mixed
runs would be calibrated for none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import methods as registry
from ..metrics import ConfidenceMap, fit_confidence_map
from ..metrics.confidence import Method
from ..report.loading import FilterSamples, Run, discover_runs, read_samples, select_runs
from .file_format import ConfidenceFile

#: fewer scored answers than this cannot give a usable map
MIN_ANSWERS = 10


class FitError(Exception):
    """Maps cannot be fitted on these runs; the message says why and what to pass."""


@dataclass(frozen=True)
class FittedMethod:
    """One method's map and how many of the run's rows it left out (no score, or no 0/1 label)."""

    method: str
    confidence_map: ConfidenceMap
    n_left_out: int


@dataclass(frozen=True)
class Fit:
    file: ConfidenceFile
    methods: tuple[FittedMethod, ...]


def fit_runs(
    paths: Sequence[str | Path], *, methods: Sequence[str] | None = None, confidence_method: Method = "isotonic",
    task: str | None = None, filter_name: str | None = None, warnings: list[str] | None = None,
) -> Fit:
    """The maps of `methods` (default: every registered score in the samples) on the run found under `paths`."""
    warnings = [] if warnings is None else warnings
    run, task_name = _one_run(paths, task, warnings)
    samples_path = run.samples_paths[task_name]
    by_filter = read_samples(samples_path, warnings)
    filter_name, samples = _one_filter(by_filter, filter_name, samples_path)
    chosen = _methods(samples, methods, samples_path)
    fitted = tuple(_fit_method(samples, method, confidence_method, samples_path) for method in chosen)
    confidence = ConfidenceFile(
        model=str(run.model_args.get("pretrained") or run.model_name), task=task_name,
        maps={entry.method: entry.confidence_map for entry in fitted}, filter=filter_name,
        correctness=samples.correctness, fitted_on=(str(samples_path),),
    )
    return Fit(confidence, fitted)


def _one_run(paths: Sequence[str | Path], task: str | None, warnings: list[str]) -> tuple[Run, str]:
    runs, _ = discover_runs(paths, warnings)
    pairs = [(run, name) for run, name in select_runs(runs) if name in run.samples_paths]
    where = ", ".join(map(str, paths))
    if not pairs:
        raise FitError(f"no lm-eval sample logs (samples_<task>_<timestamp>.jsonl) under {where}; run with --log_samples")
    if task is not None:
        tasks = sorted({name for _, name in pairs})
        pairs = [(run, name) for run, name in pairs if name == task]
        if not pairs:
            raise FitError(f"no sample log of task {task!r} under {where}; the tasks there are {', '.join(tasks)}")
    tasks = sorted({name for _, name in pairs})
    if len(tasks) > 1:
        raise FitError(
            f"the runs under {where} hold several tasks ({', '.join(tasks)}); a map is fitted on one task: pass --task"
        )
    models = sorted({run.label for run, _ in pairs})
    if len(pairs) > 1:
        raise FitError(
            f"the runs under {where} are of several models or settings ({'; '.join(models)}); a map is fitted on one "
            "model's scores: give the folder of one of them"
        )
    return pairs[0]


def _one_filter(
    by_filter: dict[str, FilterSamples], filter_name: str | None, path: Path
) -> tuple[str, FilterSamples]:
    if filter_name is not None:
        if filter_name not in by_filter:
            raise FitError(f"{path}: no filter {filter_name!r}; its filters are {', '.join(by_filter)}")
        return filter_name, by_filter[filter_name]
    if len(by_filter) > 1:
        raise FitError(
            f"{path}: the task has several filters ({', '.join(by_filter)}), whose answers are labelled differently; "
            "pass --filter"
        )
    (only,) = by_filter.items()
    return only


def _methods(samples: FilterSamples, methods: Sequence[str] | None, path: Path) -> list[str]:
    logged = [name for name in registry.available() if name in samples.scores]
    if methods is None:
        if not logged:
            raise FitError(f"{path}: no answer has uncertainty scores (a run of semgrad-hf or rescore logs them)")
        return logged
    unknown = [name for name in methods if name not in registry.available()]
    if unknown:
        raise FitError(f"unknown method(s) {', '.join(unknown)}; methods are {', '.join(registry.available())}")
    absent = [name for name in methods if name not in samples.scores]
    if absent:
        raise FitError(
            f"{path}: no {', '.join(absent)} scores in the sample log (it has {', '.join(logged) or 'none'})"
        )
    return list(methods)


def _fit_method(samples: FilterSamples, method: str, confidence_method: Method, path: Path) -> FittedMethod:
    scores, correct = samples.scores[method][samples.scored], samples.correct[samples.scored]
    has_score = ~np.isnan(scores)
    u, c = scores[has_score], correct[has_score]
    if len(u) < MIN_ANSWERS:
        raise FitError(
            f"{path}: {method}: only {len(u)} answer(s) with a score and a 0/1 label; a map needs at least "
            f"{MIN_ANSWERS} (fit on a larger dev run)"
        )
    if np.all(c == c[0]):
        raise FitError(
            f"{path}: {method}: all {len(u)} answers are {'correct' if c[0] == 1 else 'wrong'}, so the score cannot "
            "be mapped to a probability of being correct; fit on a run with both correct and wrong answers"
        )
    if not np.all(np.isfinite(u)):
        raise FitError(f"{path}: {method}: {int(np.isinf(u).sum())} infinite score(s); a map is fitted on finite scores")
    return FittedMethod(method, fit_confidence_map(u, c, method=confidence_method), samples.n_rows - len(u))
