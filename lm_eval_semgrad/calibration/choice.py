"""`calibrate()`: measure the SPS of a model and choose its semantic position and layers.

The choice rule (see sps.py for the scores; `sps_rule` names the SPS that chooses: "paper", the
paper's formula and the default, or "centred"):

1. position: for every position t, average the SPS over the reference semantic band (the upper
   half, `upper_half_layers(N)`: h^(N-floor(N/2)) .. h^(N-1)); take the position with the highest
   average; ties (within 1e-9) go to the position nearest the prompt end (-1 first). The position
   each selector would choose is recorded (`position_by_sps`), whichever chose.
2. layers: with `layer_rule="upper_half"` (the default) the reference band itself. The alternative,
   recorded in every file as `best_band_layers`, is the contiguous band of the same width inside
   h^(1)..h^(N-1) with the highest SPS at the chosen position (`layer_rule="best_band"`).
   The upper half stays the default because it is the band the paper's results were obtained
   with; the SPS layer profile is recorded so the alternative can be checked (bench/calibration).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .measurement import DEFAULT_POSITIONS, SPSFeatures, measure_features
from .paraphrases import DEFAULT_PARAPHRASES, as_items, read_paraphrases, select
from .prompts import DEFAULT_PROMPT_TEMPLATE, chat_template_sha256, encode_prompt, prompt_text, render_prompt
from .record import EXAMPLE_QUESTION, LAYER_RULES, Calibration
from .sps import SPS_RULES, VARIANTS, band_average, best_contiguous_band, choose_position

DEFAULT_LIMIT = 64
DEFAULT_PARAPHRASES_PER_QUESTION = 6


def calibrate(
    model: Any,
    tokenizer: Any,
    questions_with_paraphrases: Iterable[Any] | None = None,
    *,
    apply_chat_template: bool,
    positions: Sequence[int] = DEFAULT_POSITIONS,
    limit: int | None = DEFAULT_LIMIT,
    paraphrases_per_question: int | None = DEFAULT_PARAPHRASES_PER_QUESTION,
    seed: int | None = None,
    batch_size: int = 16,
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    add_bos_token: bool | None = None,
    layer_rule: str = "upper_half",
    sps_rule: str = "paper",
    model_name: str | None = None,
    model_revision: str | None = None,
    gguf_file: str | None = None,
    data_source: str | None = None,
    progress: bool = False,
    metadata: Mapping[str, Any] | None = None,
    features: SPSFeatures | None = None,
) -> Calibration:
    """Measure the SPS of `model` and choose its semantic position and layers.

    `questions_with_paraphrases`: `ParaphraseItem`s, `{"query", "paraphrases"}` mappings or
    `(question, [paraphrases])` pairs; None = the packaged SciQ paraphrases. The first `limit`
    questions are used (or `limit` drawn with `seed`), each with its first
    `paraphrases_per_question` paraphrases. Every text is put into the eval prompt exactly as the
    harness does (`prompt_template`, the chat template when `apply_chat_template`, HFLM's special
    tokens; `add_bos_token` as the model arg of that name). One no-grad forward pass per text.
    `features` (from `measure_features`, made with the same prompt settings) skips the measurement;
    the data arguments are then ignored. `sps_rule`: the SPS that chooses ("paper" or "centred").
    """
    if layer_rule not in LAYER_RULES:
        raise ValueError(f"layer_rule={layer_rule!r}: choose one of {', '.join(LAYER_RULES)}")
    if sps_rule not in SPS_RULES:
        raise ValueError(f"sps_rule={sps_rule!r}: choose one of {', '.join(SPS_RULES)}")
    prompt = dict(apply_chat_template=bool(apply_chat_template), prompt_template=prompt_template,
                  add_bos_token=add_bos_token)
    if features is None:
        items, data_source = _questions(questions_with_paraphrases, data_source)
        features = measure_features(
            model, tokenizer, select(items, limit, paraphrases_per_question, seed), positions=positions,
            batch_size=batch_size, progress=progress, **prompt,
        )
    else:
        measured = dict(apply_chat_template=features.apply_chat_template, prompt_template=features.prompt_template,
                        add_bos_token=features.add_bos_token)
        if measured != prompt:
            raise ValueError(f"features were measured with prompt settings {measured}, not {prompt}")
        data_source = data_source or "features"
    choice = choose(features, sps_rule)
    return _record(
        model, tokenizer, features, choice, layer_rule=layer_rule, model_name=model_name or _model_name(model),
        model_revision=model_revision, gguf_file=gguf_file, data_source=str(data_source),
        metadata={"seed": seed, **dict(metadata or {})},
    )


def _questions(given: Iterable[Any] | None, data_source: str | None) -> tuple[list[Any], str]:
    """The questions and their paraphrases, and where they came from (None: the packaged SciQ ones)."""
    if given is None:
        return read_paraphrases(), data_source or f"lm_eval_semgrad/data/{DEFAULT_PARAPHRASES}"
    return as_items(given), data_source or "in-memory"


@dataclass(frozen=True)
class Choice:
    """The SPS tables of one measurement and the position and bands they choose (see the module docstring)."""

    sps: dict[str, list[list[float]]]
    band_sps: dict[str, list[float]]
    sps_rule: str
    position: int
    position_by_sps: dict[str, int]
    upper_half: list[int]
    best_band: list[int]
    best_band_sps: dict[str, list[float]]


def choose(features: SPSFeatures, sps_rule: str = "paper") -> Choice:
    """The position by `sps_rule`'s SPS over the upper half, and the best contiguous band at that position."""
    from ..scoring.model_access import upper_half_layers
    from .sps import sps_tables

    positions, num_layers = list(features.positions), features.num_layers
    tables = sps_tables(features.questions, features.paraphrases, features.mask)
    sps = {name: [[_round(v) for v in row] for row in tables[name].tolist()] for name in VARIANTS}
    upper = upper_half_layers(num_layers)
    band_sps = {name: [_round(v) for v in band_average(sps[name], upper)] for name in VARIANTS}
    position_by_sps = {name: choose_position(band_sps[name], positions) for name in SPS_RULES}
    position = position_by_sps[sps_rule]
    column = [row[positions.index(position)] for row in sps[sps_rule]]
    best_band = best_contiguous_band(column, num_layers, width=len(upper))
    best_band_sps = {name: [_round(v) for v in band_average(sps[name], best_band)] for name in VARIANTS}
    return Choice(sps, band_sps, sps_rule, position, position_by_sps, list(upper), list(best_band), best_band_sps)


def _record(
    model: Any, tokenizer: Any, features: SPSFeatures, choice: Choice, *, layer_rule: str, model_name: str,
    model_revision: str | None, gguf_file: str | None, data_source: str, metadata: Mapping[str, Any],
) -> Calibration:
    """The calibration file's content: the choice, the tables, and how the prompts were built."""
    import torch

    from ..version import __version__
    from .prompts import special_tokens_kwargs

    template, chat, add_bos = features.prompt_template, features.apply_chat_template, features.add_bos_token
    example_ids = encode_prompt(
        tokenizer, EXAMPLE_QUESTION, template=template, apply_chat_template=chat, add_bos_token=add_bos
    )
    rendered = render_prompt(tokenizer, prompt_text(EXAMPLE_QUESTION, template), chat)
    positions = list(features.positions)
    counts = features.mask.sum(1)
    info = {
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "dtype": str(getattr(model, "dtype", "")).replace("torch.", ""),
        "example_prompt_tokens": len(example_ids),
        "paraphrases_min": int(counts.min()),
        **metadata,
    }
    return Calibration(
        model_name=model_name,
        model_revision=model_revision,
        gguf_file=gguf_file,
        num_layers=features.num_layers,
        apply_chat_template=chat,
        chat_template_sha256=chat_template_sha256(tokenizer) if chat else None,
        add_special_tokens=special_tokens_kwargs(tokenizer, rendered, add_bos).get("add_special_tokens"),
        prompt_template=template,
        example_prompt=rendered,
        position_tokens=[
            str(t) for t in tokenizer.convert_ids_to_tokens([example_ids[p] for p in positions if -p <= len(example_ids)])
        ],
        position=choice.position,
        sps_rule=choice.sps_rule,
        position_by_sps=dict(choice.position_by_sps),
        layers=list(choice.upper_half if layer_rule == "upper_half" else choice.best_band),
        layers_rule=layer_rule,
        upper_half_layers=choice.upper_half,
        best_band_layers=choice.best_band,
        positions=positions,
        sps=choice.sps,
        band_sps=choice.band_sps,
        best_band_sps=choice.best_band_sps,
        n_questions=len(features.items),
        paraphrases_per_question=int(counts.max()),
        data_source=data_source,
        package_version=__version__,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        metadata=info,
    )


def _round(value: float) -> float:
    return round(float(value), 6) + 0.0  # + 0.0 turns -0.0 into 0.0


def _model_name(model: Any) -> str:
    name = getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None)
    return str(name) if name else type(model).__name__


def _version(package: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:
        return None


def known_family_position(tokenizer: Any) -> int | None:
    """The shipped reference position for a known chat-template family (Llama-3, ChatML/Qwen,
    Mistral), or None: delegates to `hf.chat_positions` (the one table of shipped positions)."""
    from ..hf.chat_positions import chat_template_position

    return chat_template_position(tokenizer)
