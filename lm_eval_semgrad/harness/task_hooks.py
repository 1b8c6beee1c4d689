"""Give one lm-eval task the uncertainty metrics: `{method}_{auroc,auprc,aurc,prr,spearman}` per filter
(and, with `semgrad_confidence`, the calibration metrics of the saved maps: `{method}_ece`, ...).

lm-eval computes per-sample values in `process_results(doc, results)` and reduces them with the
task's `aggregation()`. This module wraps both on the task *instance*, for one run: every sample
gets an `UncertaintySample` (its scores and its correctness label) under each uncertainty metric
key, and each key's aggregation computes that metric over all samples of the task.
`process_results` is told neither the document nor the filter it scores, so `doc_iterator` is
wrapped to remember the document id it last handed out and which filter pass it serves (the
evaluator walks the filters in order, one `doc_iterator` call each, and the documents in lock-step).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..confidence.applied import ConfidenceSetup
from ..data import MODEL_OF_METRIC
from ..hf.options import SemGradSettings
from ..metrics import HIGHER_IS_BETTER, METRICS
from ..sample_log import correctness_labeller, primary_metric
from ..sample_metrics import (
    UncertaintyAggregation,
    UncertaintySample,
    confidence_aggregations,
    confidence_higher_is_better,
    confidence_metric_keys,
    metric_key,
    uncertainty_metric_keys,
)


def attach_uncertainty_metrics(task: Any, settings: SemGradSettings, confidence: ConfidenceSetup | None = None) -> None:
    """Wrap `task`'s doc_iterator, process_results, aggregation and higher_is_better (this instance only)."""
    original_doc_iterator = task.doc_iterator
    original_process_results = task.process_results
    original_aggregation = task.aggregation
    original_higher_is_better = task.higher_is_better
    task_name = task.config.task
    listed = [primary_metric([entry]) for entry in getattr(task.config, "metric_list", None) or []]
    if settings.correctness_metric is not None and listed and settings.correctness_metric not in listed:
        raise ValueError(
            f"semgrad_correctness={settings.correctness_metric}: task {task_name!r} has no such metric; its "
            f"metrics are {', '.join(map(str, listed))}. Pass one of them (METRIC[:THRESHOLD])."
        )
    model_key = MODEL_OF_METRIC.get(str(settings.correctness_metric)) if str(settings.correctness_metric) in listed else None
    if model_key and not (getattr(task.config, "metadata", None) or {}).get(model_key):
        raise ValueError(
            f"semgrad_correctness={settings.correctness_metric}: task {task_name!r} computes this metric only with a "
            f"scoring model, and the run names none; pass --metadata '{{\"{model_key}\": \"/path/to/model\"}}'."
        )
    label = correctness_labeller(
        task_name, settings.correctness_metric or primary_metric(getattr(task.config, "metric_list", None)),
        settings.correctness_threshold,
    )
    if confidence is not None:
        confidence.warn_if_other_task(task_name)
    maps = {} if confidence is None else confidence.maps
    keys = uncertainty_metric_keys(settings.methods) + confidence_metric_keys(list(maps))
    current: dict[str, Any] = {"doc_id": None, "first_instance": None, "filter": "none", "passes": 0}
    warned: set[tuple[str, ...]] = set()

    def doc_iterator(*args: Any, **kwargs: Any):
        instances = getattr(task, "instances", None) or []
        filters = list(getattr(instances[0], "filtered_resps", None) or {}) if instances else []
        if filters:  # a pass of the evaluator over one filter's results
            current["filter"] = filters[min(current["passes"], len(filters) - 1)]
            current["passes"] += 1
        for doc_id, doc in original_doc_iterator(*args, **kwargs):
            current["doc_id"] = doc_id
            yield doc_id, doc

    def first_instance_of(doc_id: int):
        if current["first_instance"] is None:
            firsts: dict[int, Any] = {}
            for instance in sorted(task.instances, key=lambda i: i.idx):
                firsts.setdefault(instance.doc_id, instance)
            current["first_instance"] = firsts
        return current["first_instance"].get(doc_id)

    def process_results(doc: dict, results: list) -> dict[str, Any]:
        metrics = original_process_results(doc, results)
        instance = first_instance_of(current["doc_id"])
        answers = getattr(instance, "semgrad_answers", None) or []
        record = answers[0].record if answers else None
        reason = answers[0].missing_reason if answers else "no grad pass saw this answer"
        correct, label_text = label(metrics)
        if confidence is not None:
            confidence.warn_if_other_filter(task_name, current["filter"])
        sample = UncertaintySample(
            record=record, correct=correct, label=label_text, task=task_name, filter=current["filter"],
            missing_reason=reason,
        )
        return {**metrics, **{key: sample for key in keys}}

    def aggregation() -> dict[str, Callable]:
        ours = {metric_key(m, k): UncertaintyAggregation(m, k, warned) for m in settings.methods for k in METRICS}
        return {**original_aggregation(), **ours, **confidence_aggregations(maps, warned)}

    def higher_is_better() -> dict[str, bool]:
        ours = {metric_key(m, k): HIGHER_IS_BETTER[k] for m in settings.methods for k in METRICS}
        return {**original_higher_is_better(), **ours, **confidence_higher_is_better(list(maps))}

    task.doc_iterator = doc_iterator
    task.process_results = process_results
    task.aggregation = aggregation
    task.higher_is_better = higher_is_better
