"""Uncertainty metrics of rescored rows, computed exactly as in semgrad-hf runs, and the results JSON."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from ..harness.task_hooks import UncertaintyAggregation, UncertaintySample
from ..metrics import HIGHER_IS_BETTER, METRICS
from ..scoring import SCORE_KEYS
from .engine import Item
from .rows import DEFAULT_BOOTSTRAP_ITERS  # noqa: F401  (re-exported)


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
    samples: Sequence[UncertaintySample], methods: Sequence[str], bootstrap_iters: int, suffix: str = ""
) -> dict[str, Any]:
    """{"{method}_{metric}{suffix}": value, "{method}_{metric}_stderr{suffix}": stderr}, as lm-eval writes them.

    The same `UncertaintyAggregation` objects semgrad-hf hands to lm-eval, so rescored and inline
    runs of the same scores give the same numbers. stderr is "N/A" when not computable or when
    `bootstrap_iters` is 0.
    """
    out: dict[str, Any] = {}
    for method in methods:
        for metric in METRICS:
            aggregation = UncertaintyAggregation(method, metric)
            if samples:
                value = aggregation(samples)
                stderr = aggregation.stderr(samples, bootstrap_iters) if bootstrap_iters > 0 else "N/A"
            else:
                value, stderr = math.nan, "N/A"
            out[f"{method}_{metric}{suffix}"] = value
            out[f"{method}_{metric}_stderr{suffix}"] = stderr
    return out


def higher_is_better(methods: Sequence[str]) -> dict[str, bool]:
    return {f"{method}_{metric}": HIGHER_IS_BETTER[metric] for method in methods for metric in METRICS}


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
    """Whether a results key ("semgrad_auroc,none", "g_nll_prr_stderr,none") is an uncertainty metric."""
    name = key.split(",", 1)[0].removesuffix("_stderr")
    return any(name == f"{method}_{metric}" for method in SCORE_KEYS for metric in METRICS)
