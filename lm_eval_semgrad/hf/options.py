"""The `semgrad_*` model args of `semgrad-hf`: parsing, validation and their defaults."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..scoring import OUTPUT_PROJECTION_KEYS, SCORE_KEYS

#: Scores that can be reported as uncertainty methods (all of score()'s outputs).
METHODS = SCORE_KEYS
DEFAULT_METHODS = ("semgrad", "hybridgrad", "g_nll")
DEFAULT_CORRECTNESS_THRESHOLD = 0.5

OPTION_HELP = {
    "semgrad_position": "semantic position: negative int from the prompt end, or 'auto' (known chat templates)",
    "semgrad_layers": "'upper_half' (default), an inclusive range like '16-31', or indices joined by ':' like '12:14:16'",
    "semgrad_batch_size": "answers per grad pass when it does not run on generation's own batches (semgrad_reuse_cache=false or out of memory); default: the model's batch_size if a number, else 8",
    "semgrad_methods": f"scores to report, joined by ':' (default {':'.join(DEFAULT_METHODS)}; any of {', '.join(METHODS)})",
    "semgrad_calibration": "a calibration JSON from `lm-eval-semgrad calibrate`: sets position and layers (not with semgrad_position/semgrad_layers)",
    "semgrad_reuse_cache": "true (default): score from generation's own prompt KV cache and lower layers' outputs; false: recompute them",
    "semgrad_memory": "memory budget of a grad pass on generation's batch: 'generation' (default: at most the batch's KV cache, so scoring needs no more than generation did; answers are then scored a few rows at a time, grouped by length), 'unbounded' (one pass per batch: fastest, most memory), or a number of MiB",
    "semgrad_correctness": "METRIC[:THRESHOLD]: the task metric that labels an answer correct (default: the task's first metric, >= 0.5)",
}


@dataclass(frozen=True)
class SemGradSettings:
    """What `semgrad-hf` scores and how answers are labelled correct.

    `position` None means "not given": resolved from the chat template when the model loads.
    """

    position: int | str | None = None
    layers: tuple[int, ...] | None = None
    batch_size: int | None = None
    methods: tuple[str, ...] = DEFAULT_METHODS
    correctness_metric: str | None = None
    correctness_threshold: float = DEFAULT_CORRECTNESS_THRESHOLD
    reuse_cache: bool = True
    calibration: str | None = None
    memory: str | float = "generation"  # or "unbounded", or a budget in MiB


def computed_scores(methods: Sequence[str]) -> tuple[str, ...]:
    """The asked-for methods plus every score that comes free with SemGrad (logged as baselines).

    ExGrad and HybridGrad each cost a reduction over the output projection's V x d gradient,
    so they are computed only when `semgrad_methods` names them.
    """
    return tuple(key for key in SCORE_KEYS if key in methods or key not in OUTPUT_PROJECTION_KEYS)


def pop_settings(model_args: dict[str, Any]) -> SemGradSettings:
    """Remove every `semgrad_*` key from `model_args` (HFLM must not see them) and parse them."""
    ours = {key: model_args.pop(key) for key in [k for k in model_args if k.startswith("semgrad_")]}
    unknown = sorted(set(ours) - set(OPTION_HELP))
    if unknown:
        valid = "\n".join(f"  {name}: {text}" for name, text in OPTION_HELP.items())
        raise ValueError(f"unknown semgrad-hf model arg(s) {', '.join(unknown)}; valid ones are:\n{valid}")
    metric, threshold = parse_correctness(ours.get("semgrad_correctness"))
    if "semgrad_calibration" in ours and ({"semgrad_position", "semgrad_layers"} & set(ours)):
        raise ValueError(
            "semgrad_calibration sets the position and layers; pass it without semgrad_position/semgrad_layers."
        )
    return SemGradSettings(
        position=parse_position(ours.get("semgrad_position")),
        layers=parse_layers(ours.get("semgrad_layers")),
        batch_size=parse_positive_int("semgrad_batch_size", ours.get("semgrad_batch_size")),
        methods=parse_methods(ours.get("semgrad_methods")),
        correctness_metric=metric,
        correctness_threshold=threshold,
        calibration=None if ours.get("semgrad_calibration") is None else str(ours["semgrad_calibration"]),
        reuse_cache=parse_bool("semgrad_reuse_cache", ours.get("semgrad_reuse_cache", True)),
        memory=parse_memory(ours.get("semgrad_memory", "generation")),
    )


def parse_memory(value: Any) -> str | float:
    text = str(value).strip().lower()
    if text in ("generation", "unbounded"):
        return text
    try:
        mebibytes = float(text)
    except ValueError:
        mebibytes = -1.0
    if isinstance(value, bool) or not mebibytes > 0:
        raise ValueError(
            f"semgrad_memory={value!r} is not valid: pass 'generation', 'unbounded' or a positive number of MiB."
        )
    return mebibytes


def parse_position(value: Any) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        position = int(value)
    except (TypeError, ValueError):
        position = 0
    if isinstance(value, bool) or position >= 0 or str(position) != str(value).strip():
        raise ValueError(
            f"semgrad_position={value!r} is not valid: pass a negative int counted from the prompt end "
            "(-1 = last prompt token) or 'auto'."
        )
    return position


def parse_layers(value: Any) -> tuple[int, ...] | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "upper_half"):
        return None
    text = str(value).strip()
    try:
        if "-" in text.lstrip("-"):
            low, high = (int(part) for part in text.split("-", 1))
            if low > high:
                raise ValueError
            return tuple(range(low, high + 1))
        return tuple(int(part) for part in text.replace(";", ":").split(":") if part)
    except ValueError:
        raise ValueError(
            f"semgrad_layers={value!r} is not valid: use 'upper_half', an inclusive range like '16-31', "
            "or hidden-state indices joined by ':' like '12:14:16'."
        ) from None


def parse_positive_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is not valid: pass a positive integer.")
    return value


def parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"{name}={value!r} is not valid: pass true or false.")


def parse_methods(value: Any) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_METHODS
    names = tuple(dict.fromkeys(part.strip() for part in str(value).replace(";", ":").split(":") if part.strip()))
    bad = [name for name in names if name not in METHODS]
    if bad or not names:
        raise ValueError(
            f"semgrad_methods={value!r} names unknown method(s) {bad}; choose from {', '.join(METHODS)} "
            "joined by ':' (commas separate model args)."
        )
    return names


def parse_correctness(value: Any) -> tuple[str | None, float]:
    if value is None:
        return None, DEFAULT_CORRECTNESS_THRESHOLD
    metric, _, threshold = str(value).partition(":")
    if not metric.strip():
        raise ValueError(f"semgrad_correctness={value!r} is not valid: use METRIC or METRIC:THRESHOLD.")
    try:
        return metric.strip(), float(threshold) if threshold else DEFAULT_CORRECTNESS_THRESHOLD
    except ValueError:
        raise ValueError(
            f"semgrad_correctness={value!r}: the threshold after ':' must be a number, e.g. exact_match:0.5."
        ) from None
