"""The `semgrad_*` model args: parsing, validation and their defaults.

Values arrive in whatever form lm-eval's parsers give them: the CLI (`key=value`, space-separated
pairs) turns `-4` into the float `-4.0`, `true` into a bool, `512` into an int and `[12, 14]` into
a list; a JSON `--model_args` keeps JSON types; `simple_parse_args_string` (Python's
`create_from_arg_string`) gives ints, floats, bools and strings. Every parser below accepts each of
these forms of a valid value and rejects anything else with a message naming the arg and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from .. import methods as registry
from ..logs import get_logger
from ..sampling.sets import DEFAULT_AUX_BATCH_SIZE, DEFAULT_SEED

logger = get_logger(__name__)

DEFAULT_NLI = "microsoft/deberta-v2-xlarge-mnli"  # the reference code's
DEFAULT_CROSS_ENCODER = "cross-encoder/stsb-roberta-large"

#: Every method `semgrad_methods` may name (the registry's).
METHODS = registry.available()
DEFAULT_METHODS = ("semgrad", "hybridgrad", "g_nll")
DEFAULT_CORRECTNESS_THRESHOLD = 0.5

OPTION_HELP = {
    "semgrad_position": "semantic position: negative int from the prompt end, or 'auto' (known chat templates)",
    "semgrad_layers": "'upper_half' (default), an inclusive range like '16-31', or indices joined by ':' like '12:14:16'",
    "semgrad_batch_size": "answers per grad pass when it does not run on generation's own batches (semgrad_reuse_cache=false or out of memory); default: the model's batch_size if a number, else 8",
    "semgrad_methods": f"scores to report, joined by ':' (default {':'.join(DEFAULT_METHODS)}; any of {', '.join(METHODS)}; 'paper': the paper's Table 1 methods; 'all': every method)",
    "semgrad_samples": "sampled answers per question for every sample set of the sampling baselines (default: each set's own, 10 or 5)",
    "semgrad_sample_seed": f"seed of the sampled answers (default {DEFAULT_SEED}, the reference code's)",
    "semgrad_nli": f"NLI model (path or hub id) of the NLI-based baselines (default {DEFAULT_NLI})",
    "semgrad_cross_encoder": f"cross-encoder (path or hub id) of SAR (default {DEFAULT_CROSS_ENCODER})",
    "semgrad_aux_device": "device of the NLI model and cross-encoder (default: the scored model's)",
    "semgrad_aux_batch_size": f"text pairs per NLI / cross-encoder forward pass (default {DEFAULT_AUX_BATCH_SIZE})",
    "semgrad_calibration": "a calibration JSON from `lm-eval-semgrad calibrate`: sets position and layers (not with semgrad_position/semgrad_layers)",
    "semgrad_confidence": "a confidence JSON from `lm-eval-semgrad confidence fit`: logs P(correct) of its methods (uncertainty.p_correct) and reports their ECE, Brier score, log loss and selective accuracy",
    "semgrad_reuse_cache": "true (default): score from generation's own prompt KV cache and lower layers' outputs; false: recompute them",
    "semgrad_memory": "memory budget of a grad pass on generation's batch: 'generation' (default: at most the batch's KV cache, so scoring needs no more than generation did; answers are then scored a few rows at a time, grouped by length), 'unbounded' (one pass per batch: fastest, most memory), or a number of MiB",
    "semgrad_correctness": "METRIC[:THRESHOLD]: the task metric that labels an answer correct (default: the task's first metric, >= 0.5)",
}


@dataclass(frozen=True)
class SemGradSettings:
    """What `semgrad-hf` scores and how answers are labelled correct.

    `position` None means "not given": resolved from the chat template when the model loads.
    `given` names the `semgrad_*` args that were passed, so that a command they do not apply to can say so.
    """

    position: int | str | None = None
    layers: tuple[int, ...] | None = None
    batch_size: int | None = None
    methods: tuple[str, ...] = DEFAULT_METHODS
    correctness_metric: str | None = None
    correctness_threshold: float = DEFAULT_CORRECTNESS_THRESHOLD
    reuse_cache: bool = True
    calibration: str | None = None
    confidence: str | None = None  # the confidence file (read by `confidence.resolve_confidence`)
    memory: str | float = "generation"  # or "unbounded", or a budget in MiB
    samples: int | None = None  # K for every sample set (None: each set's own)
    sample_seed: int = DEFAULT_SEED
    nli: str = DEFAULT_NLI
    cross_encoder: str = DEFAULT_CROSS_ENCODER
    aux_device: str | None = None
    aux_batch_size: int = DEFAULT_AUX_BATCH_SIZE
    left_out: tuple[tuple[str, str], ...] = ()  # (method or paper row, why) that `paper`/`all` could not include
    given: tuple[str, ...] = ()


def computed_scores(methods: Sequence[str]) -> tuple[str, ...]:
    """The scores of the single scoring pass a run computes: the asked-for ones plus every score that comes
    free with SemGrad (logged as baselines). The sampling methods are computed by their own stage.

    ExGrad, ParaGrad and HybridGrad each cost a reduction over the output projection's V x d
    gradient, so they are computed only when `semgrad_methods` names them.
    """
    single_pass = registry.single_pass_methods()
    return tuple(name for name in registry.with_free_methods(methods) if name in single_pass)


def pop_settings(model_args: dict[str, Any]) -> SemGradSettings:
    """Remove every `semgrad_*` key from `model_args` (HFLM must not see them) and parse them."""
    ours = {key: model_args.pop(key) for key in [k for k in model_args if k.startswith("semgrad_")]}
    unknown = sorted(set(ours) - set(OPTION_HELP))
    if unknown:
        valid = "\n".join(f"  {name}: {text}" for name, text in OPTION_HELP.items())
        raise ValueError(f"unknown semgrad-hf model arg(s) {', '.join(unknown)}; valid ones are:\n{valid}")
    metric, threshold = parse_correctness(ours.get("semgrad_correctness"))
    if ours.get("semgrad_calibration") is not None and ({"semgrad_position", "semgrad_layers"} & set(ours)):
        raise ValueError(
            "semgrad_calibration sets the position and layers; pass it without semgrad_position/semgrad_layers."
        )
    nli = parse_model_name("semgrad_nli", ours.get("semgrad_nli")) or DEFAULT_NLI
    cross_encoder = parse_model_name("semgrad_cross_encoder", ours.get("semgrad_cross_encoder")) or DEFAULT_CROSS_ENCODER
    available = {need for need, option, name in (("nli", "semgrad_nli", nli),
                                                  ("cross_encoder", "semgrad_cross_encoder", cross_encoder))
                 if ours.get(option) is not None or _locally_available(name)}
    methods, left_out = parse_methods(ours.get("semgrad_methods"), available)
    samples = parse_positive_int("semgrad_samples", ours.get("semgrad_samples"))
    sampled = [name for name in methods if "samples" in registry.get(name).needs]
    if samples is not None and samples < 2 and sampled:
        raise ValueError(
            f"semgrad_samples={samples}: {', '.join(sampled)} compare several sampled answers; pass semgrad_samples=2 "
            "or more (the reference uses 10, SAR 5)."
        )
    _warn_of_unused_options(ours, methods)
    return SemGradSettings(
        position=parse_position(ours.get("semgrad_position")),
        layers=parse_layers(ours.get("semgrad_layers")),
        batch_size=parse_positive_int("semgrad_batch_size", ours.get("semgrad_batch_size")),
        methods=methods,
        samples=samples,
        sample_seed=parse_seed(ours.get("semgrad_sample_seed")),
        nli=nli,
        cross_encoder=cross_encoder,
        aux_device=parse_device("semgrad_aux_device", ours.get("semgrad_aux_device")),
        aux_batch_size=parse_positive_int("semgrad_aux_batch_size", ours.get("semgrad_aux_batch_size")) or DEFAULT_AUX_BATCH_SIZE,
        left_out=left_out,
        correctness_metric=metric,
        correctness_threshold=threshold,
        calibration=parse_path("semgrad_calibration", ours.get("semgrad_calibration")),
        confidence=parse_path("semgrad_confidence", ours.get("semgrad_confidence")),
        reuse_cache=parse_bool("semgrad_reuse_cache", ours.get("semgrad_reuse_cache", True)),
        memory=parse_memory(ours.get("semgrad_memory", "generation")),
        given=tuple(key for key, value in ours.items() if value is not None),
    )


def _integral(value: Any) -> int | None:
    """The int a CLI value stands for (-4, -4.0, "-4", " -4.0 "), or None when it is not an integral number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def parse_position(value: Any) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    position = _integral(value)
    if position is None or position >= 0:
        raise ValueError(
            f"semgrad_position={value!r} is not valid: pass a negative int counted from the prompt end "
            "(-1 = last prompt token) or 'auto'."
        )
    return position


def parse_layers(value: Any) -> tuple[int, ...] | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "upper_half"):
        return None
    problem = ValueError(
        f"semgrad_layers={value!r} is not valid: use 'upper_half', an inclusive range like '16-31', "
        "or hidden-state indices joined by ':' like '12:14:16'."
    )
    if isinstance(value, (list, tuple)):
        parts: list[Any] = list(value)
    elif isinstance(value, str):
        text = value.strip()
        if "-" in text.lstrip("-"):
            low, high = (_integral(part) for part in text.split("-", 1))
            if low is None or high is None or low > high:
                raise problem
            return tuple(range(low, high + 1))
        parts = [part for part in text.replace(";", ":").split(":") if part.strip()]
    else:
        parts = [value]
    layers = [_integral(part) for part in parts]
    if not layers or any(layer is None or layer < 0 for layer in layers):
        raise problem
    return tuple(layer for layer in layers if layer is not None)


def parse_positive_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    number = _integral(value)
    if number is None or number < 1:
        raise ValueError(f"{name}={value!r} is not valid: pass a positive integer.")
    return number


def parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "1.0", "yes"):
        return True
    if text in ("false", "0", "0.0", "no"):
        return False
    raise ValueError(f"{name}={value!r} is not valid: pass true or false.")


def _text(name: str, value: Any, what: str, rejected: tuple[type, ...] = (dict, list, tuple, bool)) -> str | None:
    """A non-empty string arg (None: not given); `what` says what to pass instead of a bad value."""
    if value is None:
        return None
    if isinstance(value, rejected) or not str(value).strip():
        raise ValueError(f"{name}={value!r} is not valid: pass {what}.")
    return str(value).strip()


def parse_path(name: str, value: Any) -> str | None:
    return _text(name, value, "the path of a file")


def parse_model_name(name: str, value: Any) -> str | None:
    return _text(name, value, "a local model folder or a Hugging Face hub id")


def parse_device(name: str, value: Any) -> str | None:
    """A device name (checked against torch when the auxiliary models load)."""
    return _text(name, value, "a device such as cpu, cuda or cuda:1", (dict, list, tuple, bool, int, float))


#: Options that only some methods read: (option, the needs that read it, what it is for).
_OPTION_READERS = (
    ("semgrad_samples", {"samples"}, "the sample sets"),
    ("semgrad_sample_seed", {"samples"}, "the sample sets"),
    ("semgrad_nli", {"nli"}, "the NLI-based baselines"),
    ("semgrad_cross_encoder", {"cross_encoder"}, "SAR"),
    ("semgrad_aux_device", {"nli", "cross_encoder"}, "the NLI model and cross-encoder"),
    ("semgrad_aux_batch_size", {"nli", "cross_encoder"}, "the NLI model and cross-encoder"),
)


def _warn_of_unused_options(given: dict[str, Any], methods: Sequence[str]) -> None:
    """An option that no asked-for method reads is said to have no effect (not silently dropped)."""
    needs = registry.needs_of(methods)
    for option, readers, purpose in _OPTION_READERS:
        if given.get(option) is not None and not readers & needs:
            logger.warning("%s has no effect: it is for %s, and semgrad_methods (%s) names none of them",
                           option, purpose, ":".join(methods))


def parse_memory(value: Any) -> str | float:
    text = str(value).strip().lower()
    if text in ("generation", "unbounded"):
        return text
    try:
        mebibytes = float(text)
    except ValueError:
        mebibytes = -1.0
    if isinstance(value, bool) or not (mebibytes > 0 and math.isfinite(mebibytes)):
        raise ValueError(
            f"semgrad_memory={value!r} is not valid: pass 'generation', 'unbounded' or a positive number of MiB."
        )
    return mebibytes


def _locally_available(name_or_path: str) -> bool:
    """Whether a model can be loaded without the network: a local folder, or a hub id in the local cache."""
    from pathlib import Path

    if Path(name_or_path).expanduser().is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name_or_path, "config.json"), str)
    except Exception:  # noqa: BLE001 - an unparsable id is simply not available
        return False


def parse_methods(
    value: Any, available_auxiliary: Collection[str] = ()
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The method names, with `paper` and `all` expanded to what can run with the auxiliary models available
    (`nli`, `cross_encoder`); and what they left out, with why."""
    if value is None:
        return DEFAULT_METHODS, ()
    parts = list(value) if isinstance(value, (list, tuple)) else str(value).replace(";", ":").split(":")
    names: list[str] = []
    left_out: dict[str, str] = {}
    for part in (str(part).strip() for part in parts):
        if part == "paper":
            paper, missing = registry.paper_methods(available_auxiliary)
            names += paper
            left_out.update(missing)
        elif part == "all":
            runnable = registry.runnable(available_auxiliary)
            names += runnable
            left_out.update({name: "needs an NLI model or cross-encoder that is not given or cached"
                             for name in METHODS if name not in runnable})
        elif part:
            names.append(part)
    names = list(dict.fromkeys(names))
    if not names:
        raise ValueError(
            f"semgrad_methods={value!r} names no method; name one or more of {', '.join(METHODS)}, 'paper' or 'all', "
            "joined by ':' (or leave it out for the default, semgrad:hybridgrad:g_nll)."
        )
    bad = [name for name in names if name not in METHODS]
    if bad:
        raise ValueError(
            f"semgrad_methods={value!r} names unknown method(s) {bad}; choose from {', '.join(METHODS)}, 'paper' "
            "or 'all', joined by ':' (commas separate model args)."
        )
    return tuple(names), tuple(left_out.items())


def parse_seed(value: Any) -> int:
    if value is None:
        return DEFAULT_SEED
    seed = _integral(value)
    if seed is None or seed < 0:
        raise ValueError(f"semgrad_sample_seed={value!r} is not valid: pass a non-negative integer.")
    return seed


def parse_correctness(value: Any) -> tuple[str | None, float]:
    if value is None:
        return None, DEFAULT_CORRECTNESS_THRESHOLD
    metric, _, threshold = str(value).partition(":")
    if not metric.strip() or isinstance(value, (bool, int, float)):
        raise ValueError(f"semgrad_correctness={value!r} is not valid: use METRIC or METRIC:THRESHOLD.")
    try:
        number = float(threshold) if threshold.strip() else DEFAULT_CORRECTNESS_THRESHOLD
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(
            f"semgrad_correctness={value!r}: the threshold after ':' must be a number (a finite one), e.g. exact_match:0.5."
        )
    return metric.strip(), number
