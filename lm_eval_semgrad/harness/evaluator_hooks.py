"""Hooks into lm-eval's evaluator, active only for runs whose model is `semgrad-hf`.

- `evaluate` gives each generative task the uncertainty metrics (`task_hooks`), lets answers served
  from lm-eval's request cache (`--use_cache`) find their scores, and afterwards rewrites the logged
  samples so each holds its scores and correctness label in one plain `uncertainty` field.
- `stderr_for_metric` lets our aggregations report their own bootstrap standard error.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from ..logs import get_logger
from ..sample_log import SAMPLE_FIELD, uncertainty_field
from ..sample_metrics import UncertaintyAggregation, UncertaintySample
from .run_state import SemGradRun, semgrad_run
from .task_hooks import attach_uncertainty_metrics

logger = get_logger(__name__)


def install() -> None:
    """Patch lm_eval.evaluator.evaluate and evaluator_utils.stderr_for_metric once (idempotent)."""
    import lm_eval.evaluator as evaluator
    import lm_eval.evaluator_utils as evaluator_utils

    if not getattr(evaluator.evaluate, "_semgrad_wrapped", False):
        evaluator.evaluate = _wrap_evaluate(evaluator.evaluate)
    if not getattr(evaluator_utils.stderr_for_metric, "_semgrad_wrapped", False):
        evaluator_utils.stderr_for_metric = _wrap_stderr_for_metric(evaluator_utils.stderr_for_metric)


def _leaf_tasks(task_dict: dict) -> dict[str, Any]:
    if "tasks" in task_dict and isinstance(task_dict["tasks"], dict):
        return dict(task_dict["tasks"])
    tasks: dict[str, Any] = {}
    for name, value in task_dict.items():  # older nested {group: {task: Task}} layout
        if isinstance(value, dict):
            tasks.update(_leaf_tasks(value))
        elif hasattr(value, "process_results"):
            tasks[getattr(name, "group_name", name) if not isinstance(name, str) else name] = value
    return tasks


def _check_every_process_gets_documents(lm: Any, tasks: dict[str, Any], arguments: dict[str, Any]) -> None:
    """Data parallelism deals documents round-robin; a process left without any would make lm-eval fail on
    that rank alone (and the others wait for it): say so on every rank, before anything runs."""
    if getattr(lm, "world_size", 1) <= 1:
        return
    from lm_eval.evaluator_utils import get_sample_size

    limit, samples = arguments.get("limit"), arguments.get("samples") or {}
    for name, task in tasks.items():
        count = len(samples[name]) if name in samples else len(task.eval_docs)
        if limit is not None and name not in samples:
            count = min(count, get_sample_size(task, limit))
        if count < lm.world_size:
            raise ValueError(
                f"semgrad-hf: task {name!r} has {count} document(s) for {lm.world_size} processes, so some process "
                f"would get none; evaluate at least {lm.world_size} documents (--limit) or run in one process."
            )


def _wrap_evaluate(original):
    signature = inspect.signature(original)

    @functools.wraps(original)
    def evaluate(lm, task_dict, *args: Any, **kwargs: Any):
        model = semgrad_run(lm)
        if model is None:
            return original(lm, task_dict, *args, **kwargs)
        tasks = _leaf_tasks(task_dict)
        _check_every_process_gets_documents(lm, tasks, signature.bind(lm, task_dict, *args, **kwargs).arguments)
        skipped = [name for name, task in tasks.items() if getattr(task, "OUTPUT_TYPE", None) != "generate_until"]
        if skipped:
            logger.warning(
                "semgrad-hf: no uncertainty is computed for non-generative tasks (loglikelihood / multiple "
                "choice): %s. They run unchanged.", ", ".join(sorted(skipped)),
            )
        for name, task in tasks.items():
            if name not in skipped:
                attach_uncertainty_metrics(task, model.semgrad, model.confidence)
        model.know_tasks(tasks)
        with _cached_answers_find_their_scores(lm, model):
            results = original(lm, task_dict, *args, **kwargs)
        _log_cost(model)
        if results is not None and results.get("samples"):
            for rows in results["samples"].values():
                for row in rows:
                    _tidy_sample_row(row, model)
        return results

    evaluate._semgrad_wrapped = True
    return evaluate


class _cached_answers_find_their_scores:
    """While evaluating through lm-eval's CachingLM, give the answers it serves from its cache their scores."""

    def __init__(self, lm: Any, model: SemGradRun) -> None:
        self.lm, self.model = lm, model

    def __enter__(self) -> None:
        if self.lm is self.model:
            return
        serve = self.lm.generate_until  # CachingLM builds this per attribute access

        def generate_until(requests):
            answers = serve(requests)
            self.model.attach_cached_answers(requests, answers)
            return answers

        self.lm.generate_until = generate_until

    def __exit__(self, *exc_info: object) -> None:
        if self.lm is not self.model:
            self.lm.__dict__.pop("generate_until", None)


def _log_cost(model: SemGradRun) -> None:
    generation, grad_pass = model.seconds["generation"], model.seconds["grad_pass"]
    if generation > 0:
        logger.info(
            "semgrad-hf: generation took %.1f s, the grad passes %.1f s (%.0f%% of generation; memory probe and "
            "checks included)", generation, grad_pass, 100 * grad_pass / generation,
        )
        stages = {stage: seconds for stage, seconds in model.seconds.items() if stage.startswith("sampling")}
        if stages:
            logger.info(
                "semgrad-hf: sampling baselines: %s", ", ".join(
                    f"{stage.removeprefix('sampling:')} {seconds:.1f} s ({100 * seconds / generation:.0f}%)"
                    for stage, seconds in stages.items()
                ),
            )


def _tidy_sample_row(row: dict[str, Any], model: SemGradRun) -> None:
    """Replace the per-metric copies of an UncertaintySample by one readable `uncertainty` field."""
    ours = [key for key, value in row.items() if isinstance(value, UncertaintySample)]
    if not ours:
        return
    sample: UncertaintySample = row[ours[0]]
    for key in ours:
        del row[key]
    if isinstance(row.get("metrics"), list):
        row["metrics"] = [name for name in row["metrics"] if name not in ours]
    scores = None if sample.record is None else sample.record.get("scores")
    if model.confidence is not None:
        model.confidence.warn_if_other_correctness(sample.label)
    row[SAMPLE_FIELD] = uncertainty_field(
        sample.record, sample.correct, sample.label, model.semantic.position, model.semantic.layers,
        methods=model.semgrad.methods, missing_reason=sample.missing_reason,
        p_correct=None if model.confidence is None else model.confidence.p_correct(scores),
    )


def _wrap_stderr_for_metric(original):
    @functools.wraps(original)
    def stderr_for_metric(metric, bootstrap_iters: int):
        if isinstance(metric, UncertaintyAggregation):
            if bootstrap_iters <= 0:
                return None
            return functools.partial(metric.stderr, bootstrap_iters=bootstrap_iters)
        return original(metric, bootstrap_iters)

    stderr_for_metric._semgrad_wrapped = True
    return stderr_for_metric
