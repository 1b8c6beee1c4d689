"""Uncertainty metrics of rescored rows, computed exactly as in semgrad-hf runs, and the results JSON."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import methods as registry
from ..metrics import HIGHER_IS_BETTER, METRICS, ConfidenceMap
from ..sample_metrics import (
    CONFIDENCE_METRICS,
    UncertaintyAggregation,
    UncertaintySample,
    confidence_aggregations,
    confidence_higher_is_better,
)
from ..version import __version__
from .engine import Item
from .formats import json_key
from .output import write_json_atomic
from .rows import DEFAULT_BOOTSTRAP_ITERS  # noqa: F401  (re-exported)

RESCORE_MODEL = "semgrad-rescore"


def uncertainty_samples(items: Iterable[Item]) -> list[UncertaintySample]:
    """Labelled items as the harness aggregations see them (first answer's scores; None = unscored)."""
    samples = []
    for item in items:
        if item.correct is None:
            continue
        scores = item.scores[0] if item.scores else None
        record = None if scores is None else {"scores": scores}
        samples.append(UncertaintySample(record=record, correct=int(item.correct), label=item.correctness or ""))
    return samples


def metric_values(
    samples: Sequence[UncertaintySample], methods: Sequence[str], bootstrap_iters: int, suffix: str = "",
    confidence_maps: Mapping[str, ConfidenceMap] | None = None,
) -> dict[str, Any]:
    """{"{method}_{metric}{suffix}": value, "{method}_{metric}_stderr{suffix}": stderr}, as lm-eval writes them.

    The same `UncertaintyAggregation` (and, for `confidence_maps`, `ConfidenceAggregation`) objects
    semgrad-hf hands to lm-eval, so rescored and inline runs of the same scores give the same
    numbers. stderr is "N/A" when not computable or when `bootstrap_iters` is 0.
    """
    warned: set[tuple[str, ...]] = set()  # why a value is NaN is said once, not once per method and metric
    aggregations = {
        f"{method}_{metric}": UncertaintyAggregation(method, metric, warned) for method in methods for metric in METRICS
    }
    aggregations.update(confidence_aggregations(confidence_maps or {}, warned))
    out: dict[str, Any] = {}
    for key, aggregation in aggregations.items():
        if samples:
            value = aggregation(samples)
            stderr = aggregation.stderr(samples, bootstrap_iters) if bootstrap_iters > 0 else "N/A"
        else:
            value, stderr = math.nan, "N/A"
        out[f"{key}{suffix}"] = value
        out[f"{key}_stderr{suffix}"] = stderr
    return out


def higher_is_better(methods: Sequence[str], confidence_methods: Sequence[str] = ()) -> dict[str, bool]:
    return {
        **{f"{method}_{metric}": HIGHER_IS_BETTER[metric] for method in methods for metric in METRICS},
        **confidence_higher_is_better(confidence_methods),
    }


def file_counts(items: Sequence[Item], bad_rows: int, kept: int, scored_now: int) -> dict[str, int]:
    """Per-file bookkeeping stored in the summary: nothing is dropped silently."""
    return {
        "rows": len(items) + bad_rows,
        "scored_rows": sum(1 for item in items if item.scores and item.scores[0] is not None),
        "unscored_rows": sum(1 for item in items if not item.scores or item.scores[0] is None),
        "unlabelled_rows": sum(1 for item in items if item.correct is None),
        "bad_rows": bad_rows,
        "kept_from_previous_run": kept,
        "grad_pass_samples": scored_now,
        "roundtrip_mismatches": sum(1 for item in items if not item.roundtrip),
    }


def add_counts(total: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        total[key] = total.get(key, 0) + value


def is_uncertainty_key(key: str) -> bool:
    """Whether a results key ("semgrad_auroc,none", "g_nll_ece_stderr,none") is an uncertainty or calibration metric."""
    name = key.split(",", 1)[0].removesuffix("_stderr")
    metrics = (*METRICS, *CONFIDENCE_METRICS)
    return any(name == f"{method}_{metric}" for method in registry.available() for metric in metrics)


def write_results_file(path: Path, loaded: Any, members: Sequence[tuple[Any, Any]], batch_size: int, bootstrap_iters: int) -> None:
    """One run's `results_<timestamp>.json` in lm-eval's layout: the tasks' own metrics from the source run
    (copied), the uncertainty metrics of the rescored rows, and how they were made under `config`/`rescore`."""
    methods = loaded.settings.methods
    confidence = loaded.confidence
    data: dict[str, Any] = {
        "results": {}, "group_subtasks": {}, "configs": {}, "versions": {}, "n-shot": {},
        "higher_is_better": {}, "n-samples": {},
    }
    summary: dict[str, Any] = {}
    for source, outcome in members:
        task = source.task
        original = (source.results or {}).get("results", {}).get(task) or {}
        # the task's own metrics; uncertainty metrics of an inline semgrad-hf run are replaced by ours
        entry: dict[str, Any] = {"name": task, "alias": task}
        entry.update({k: v for k, v in original.items() if not is_uncertainty_key(k)})
        entry["sample_len"] = len({json_key(item.source.get("doc_id")) for item in outcome.items})
        for group, values in outcome.metrics.items():
            entry.update({f"{key},{group}": value for key, value in values.items()})
        data["results"][task] = entry
        for section in ("configs", "versions", "n-shot", "n-samples"):
            value = ((source.results or {}).get(section) or {}).get(task)
            if value is not None:
                data[section][task] = value
        source_hib = ((source.results or {}).get("higher_is_better") or {}).get(task) or {}
        data["higher_is_better"][task] = {
            **{k: v for k, v in source_hib.items() if not is_uncertainty_key(k)},
            **higher_is_better(methods, () if confidence is None else confidence.methods),
        }
        summary[task] = {
            **outcome.counts,
            "source": str(source.path),
            "source_results": None if source.results_path is None else str(source.results_path),
            "bad_row_list": [bad.as_dict() for bad in outcome.bad_rows],
        }
    first_results = next((s.results for s, _ in members if s.results), None) or {}
    pretrained = str(loaded.args.get("pretrained"))
    data["config"] = {
        "model": RESCORE_MODEL,
        "model_args": dict(loaded.args),
        "batch_size": batch_size,
        "device": str(loaded.model.device) if loaded.loaded else "none (the model was not loaded: nothing to score)",
        "bootstrap_iters": bootstrap_iters,
        "source_files": [str(s.path) for s, _ in members],
        "source_model": (first_results.get("config") or {}).get("model"),
        "source_model_args": (first_results.get("config") or {}).get("model_args"),
        "semgrad": {
            **loaded.semantic.as_record(), "methods": list(methods),
            "confidence": None if confidence is None else confidence.as_record(), "version": __version__,
        },
    }
    data["rescore"] = {
        **loaded.semantic.as_record(),
        "tasks": summary,
        "roundtrip_mismatches": sum(o.counts["roundtrip_mismatches"] for _, o in members),
        "bad_rows": sum(o.counts["bad_rows"] for _, o in members),
    }
    data.update(
        model_name=pretrained,
        model_name_sanitized=re.sub(r"[\"<>:/|\\?*\[\]]+", "__", pretrained),
        date=time.time(),
        lm_eval_version=_version("lm_eval"),
        transformers_version=_version("transformers"),
    )
    for key in ("max_length", "chat_template", "chat_template_sha", "system_instruction", "fewshot_as_multiturn"):
        if key in first_results:
            data[key] = first_results[key]
    write_json_atomic(path, data)


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
