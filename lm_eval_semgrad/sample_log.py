"""The sample-log contract: what `semgrad-hf` and `rescore` write and `report` reads (no torch, no lm-eval).

- Every logged sample row of a generative task gets one `uncertainty` field (`SAMPLE_FIELD`), built
  by `uncertainty_field`: the scores, the correctness label and the rule that made it, the scored
  token ids, the semantic position and layers, and for each asked-for method without a score the
  reason (`missing`), so that nothing missing reads as a zero. With a confidence file
  (`semgrad_confidence`), also `p_correct`: {method: P(correct) from its saved map, null where the
  score is missing}, computed from the scores when the row is written (never kept in a `Record`,
  which the `--use_cache` score store keeps, so a rerun with another file never shows stale values).
- lm-eval's file names: `results_<timestamp>.json` and `samples_<task>_<timestamp>.jsonl`.
- The correctness rule: a task metric (default: the first of the task's `metric_list`) >= a threshold.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

SAMPLE_FIELD = "uncertainty"
UPPER_HALF = "upper_half"

RESULTS_FILE_RE = re.compile(r"^results_(?P<ts>.+)\.json$")
SAMPLES_FILE_RE = re.compile(r"^samples_(?P<task>.+)_(?P<ts>\d{4}-\d{2}-\d{2}T[0-9.:\-]+)\.jsonl$")


class Record(TypedDict, total=False):
    """One scored answer: its scores and exactly what was scored."""

    scores: dict[str, float]
    response_ids: list[int]  # the answer's tokens, the one that ended it included
    prompt_ids: list[int]
    prompt_len: int
    response: str  # the answer text as lm-eval returned it
    missing: dict[str, str]  # method -> why it has no score
    samples: dict[str, list[dict[str, Any]]]  # sample set -> [{"text", "token_ids", "token_logprobs"}]
    sampling: dict[str, dict[str, Any]]  # sample set -> how it was drawn (k, temperature, top_p, top_k, ...)
    question: str  # the question text the sampling baselines quoted
    question_source: str
    clusters: dict[str, list[int]]  # "se": semantic entropy's cluster id per sampled answer
    similarity: dict[str, list[list[float]]]  # "se": argmax NLI classes (0 contradiction .. 2 entailment), "sc": W


def layers_field(layers: Sequence[int] | None) -> str | list[int]:
    """The layers as logged: "upper_half" or the hidden-state indices."""
    return UPPER_HALF if layers is None else [int(i) for i in layers]


def uncertainty_field(
    record: Mapping[str, Any] | None,
    correct: int | None,
    label: str | None,
    position: int,
    layers: Sequence[int] | None,
    *,
    methods: Sequence[str] = (),
    missing_reason: str | None = None,
    p_correct: Mapping[str, float | None] | None = None,
) -> dict[str, Any]:
    """The `uncertainty` field of one logged sample.

    `record` None: the answer was not scored; each of `methods` is then listed in `missing` with
    `missing_reason`. A method the record has no score for is listed too, with the record's own
    reason when it has one. The samples the sampling baselines read, and how they were drawn, come
    along (`samples`, `sampling`, `question`), so that every score can be recomputed from the log.
    `p_correct` (with a confidence file): each applied method's P(correct), None without a score.
    """
    scores = None if record is None else record.get("scores")
    field: dict[str, Any] = {
        "scores": None if scores is None else dict(scores),
        "correct": correct,
        "correctness": label,
        "response_ids": None if record is None else list(record["response_ids"]),
        "prompt_len": None if record is None else record["prompt_len"],
        "position": position,
        "layers": layers_field(layers),
    }
    for key in ("samples", "sampling", "clusters", "similarity", "question", "question_source"):
        if record is not None and record.get(key):
            field[key] = record[key]
    if p_correct is not None:
        field["p_correct"] = dict(p_correct)
    known = dict(record.get("missing") or {}) if record is not None else {}
    absent = [m for m in methods if scores is None or m not in scores]
    if absent:
        reason = missing_reason or ("not scored" if scores is None else "not computed for this answer")
        field["missing"] = {method: known.get(method, reason) for method in absent}
    return field


def primary_metric(metric_list: Sequence[Any] | None) -> str | None:
    """The first metric of a task's `metric_list` (its headline metric): the default correctness label."""
    if not metric_list:
        return None
    first = metric_list[0]
    name = first.get("metric") if isinstance(first, Mapping) else first
    if isinstance(name, str):
        return name
    return getattr(name, "__name__", None)


def correctness_labeller(
    task_name: str, metric: str | None, threshold: float
) -> Callable[[Mapping[str, Any]], tuple[int, str]]:
    """A function from a sample's task metrics to (correct, label text); `metric` None = the first one."""

    def label(metrics: Mapping[str, Any]) -> tuple[int, str]:
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
