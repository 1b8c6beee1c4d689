"""Give one lm-eval task the uncertainty metrics: `{method}_{auroc,auprc,aurc,prr,spearman}` per filter.

lm-eval computes per-sample values in `process_results(doc, results)` and reduces them with the
task's `aggregation()`. This module wraps both on the task *instance*, for one run: every sample
gets an `UncertaintySample` (its scores and its correctness label) under each uncertainty metric
key, and each key's aggregation computes that metric over all samples of the task.
`process_results` is not told which document it is scoring, so `doc_iterator` is wrapped to
remember the document id it last handed out (the evaluator calls them in lock-step).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..metrics import HIGHER_IS_BETTER, METRICS, bootstrap_ci
from .score_store import Record, ScoreStore
from .settings import SemGradSettings
from .logs import harness_logger

logger = harness_logger(__name__)

MAX_BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 1234


@dataclass(frozen=True)
class UncertaintySample:
    """One answer as the uncertainty metrics see it; `record` is None when it was never scored."""

    record: Record | None
    correct: int
    label: str

    def score(self, method: str) -> float:
        """NaN (missing) when unscored, or when a cached record (--use_cache) predates this method."""
        return math.nan if self.record is None else float(self.record["scores"].get(method, math.nan))


def metric_key(method: str, metric: str) -> str:
    return f"{method}_{metric}"


def uncertainty_metric_keys(methods: Sequence[str]) -> list[str]:
    return [metric_key(method, metric) for method in methods for metric in METRICS]


class UncertaintyAggregation:
    """Aggregation of one `{method}_{metric}` key; carries its own bootstrap standard error.

    lm-eval gives custom aggregations no stderr, so `evaluator_hooks` asks this object for it.
    """

    def __init__(self, method: str, metric: str) -> None:
        self.method, self.metric = method, metric
        self.__name__ = metric_key(method, metric)

    def _arrays(self, samples: Sequence[UncertaintySample]) -> tuple[np.ndarray, np.ndarray]:
        return np.array([s.score(self.method) for s in samples]), np.array([s.correct for s in samples])

    def __call__(self, samples: Sequence[UncertaintySample]) -> float:
        uncertainty, correct = self._arrays(samples)
        missing = int(np.isnan(uncertainty).sum())
        if missing == len(samples):
            logger.warning("%s: no answer has a %s score; reporting NaN", self.__name__, self.method)
            return math.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # missing scores are logged once, below
            value = METRICS[self.metric](uncertainty, correct, nan_policy="omit")
        if missing and self.metric == "auroc":
            logger.warning("%s: %d of %d answers have no score and were left out", self.method, missing, len(samples))
        return value

    def stderr(self, samples: Sequence[UncertaintySample], bootstrap_iters: int) -> float | str:
        uncertainty, correct = self._arrays(samples)
        if np.isnan(uncertainty).all():
            return "N/A"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result = bootstrap_ci(
                METRICS[self.metric], uncertainty, correct,
                n_resamples=max(2, min(bootstrap_iters, MAX_BOOTSTRAP_RESAMPLES)),
                seed=BOOTSTRAP_SEED, nan_policy="omit",
            )
        return "N/A" if math.isnan(result.stderr) else float(result.stderr)


def primary_metric(task: Any) -> str | None:
    """The first metric of the task's metric_list (the task's own headline metric)."""
    metric_list = getattr(getattr(task, "config", None), "metric_list", None) or []
    if metric_list:
        name = metric_list[0].get("metric") if isinstance(metric_list[0], dict) else metric_list[0]
        return name if isinstance(name, str) else getattr(name, "__name__", None)
    return None


def correctness_labeller(task_name: str, metric: str | None, threshold: float) -> Callable[[dict[str, Any]], tuple[int, str]]:
    """A function from a sample's task metrics to (correct, label text); `metric` None = the first one."""

    def label(metrics: dict[str, Any]) -> tuple[int, str]:
        name = metric or next(iter(metrics))
        if name not in metrics:
            raise ValueError(
                f"task {task_name!r}: correctness metric {name!r} is not among its per-sample metrics "
                f"{sorted(metrics)}; pass semgrad_correctness=METRIC[:THRESHOLD] in --model_args."
            )
        value = metrics[name]
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"task {task_name!r}: metric {name!r} has non-numeric per-sample values ({value!r}), so it "
                "cannot label answers correct; pass semgrad_correctness=METRIC[:THRESHOLD] with a per-sample score."
            ) from None
        return int(number >= threshold), f"{name} >= {threshold:g}"

    return label


def attach_uncertainty_metrics(task: Any, store: ScoreStore, settings: SemGradSettings) -> None:
    """Wrap `task`'s doc_iterator, process_results, aggregation and higher_is_better (this instance only)."""
    original_doc_iterator = task.doc_iterator
    original_process_results = task.process_results
    original_aggregation = task.aggregation
    original_higher_is_better = task.higher_is_better
    label = correctness_labeller(
        task.config.task, settings.correctness_metric or primary_metric(task), settings.correctness_threshold
    )
    keys = uncertainty_metric_keys(settings.methods)
    current: dict[str, Any] = {"doc_id": None, "first_instance": None}

    def doc_iterator(*args: Any, **kwargs: Any):
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
        record = None if instance is None else store.get(instance.args, 0)
        correct, label_text = label(metrics)
        sample = UncertaintySample(record=record, correct=correct, label=label_text)
        return {**metrics, **{key: sample for key in keys}}

    def aggregation() -> dict[str, Callable]:
        ours = {metric_key(m, k): UncertaintyAggregation(m, k) for m in settings.methods for k in METRICS}
        return {**original_aggregation(), **ours}

    def higher_is_better() -> dict[str, bool]:
        ours = {metric_key(m, k): HIGHER_IS_BETTER[k] for m in settings.methods for k in METRICS}
        return {**original_higher_is_better(), **ours}

    task.doc_iterator = doc_iterator
    task.process_results = process_results
    task.aggregation = aggregation
    task.higher_is_better = higher_is_better
