"""`calibrate()`: measure the SPS of a model and choose its semantic position and layers; the
calibration file (JSON) that records the measurement and the choice.

The choice rule (see sps.py for the scores):

1. position: for every position t, average the centred SPS over the reference semantic band (the
   upper half, `upper_half_layers(N)`: h^(N-floor(N/2)) .. h^(N-1)); take the position with the
   highest average; ties (within 1e-9) go to the position nearest the prompt end (-1 first).
2. layers: with `layer_rule="upper_half"` (the default) the reference band itself. The alternative,
   recorded in every file as `best_band_layers`, is the contiguous band of the same width inside
   h^(1)..h^(N-1) with the highest centred SPS at the chosen position (`layer_rule="best_band"`).
   The upper half stays the default because it is the band the paper's results were obtained
   with; the SPS layer profile is recorded so the alternative can be checked (bench/calibration).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .paraphrases import DEFAULT_PARAPHRASES, ParaphraseItem, as_items, read_paraphrases, select
from .prompts import DEFAULT_PROMPT_TEMPLATE, chat_template_sha256, encode_prompt, prompt_text, render_prompt
from .sps import VARIANTS, band_average, best_contiguous_band, choose_position

FORMAT_NAME = "lm-eval-semgrad-calibration"
FORMAT_VERSION = 1
DEFAULT_POSITIONS = (-1, -2, -3, -4, -5, -6, -7, -8)
DEFAULT_LIMIT = 64
DEFAULT_PARAPHRASES_PER_QUESTION = 6
LAYER_RULES = ("upper_half", "best_band")
EXAMPLE_QUESTION = "Which gas do plants absorb from the air?"

__all__ = [
    "Calibration",
    "SPSFeatures",
    "DEFAULT_LIMIT",
    "DEFAULT_PARAPHRASES_PER_QUESTION",
    "DEFAULT_POSITIONS",
    "FORMAT_VERSION",
    "LAYER_RULES",
    "calibrate",
    "known_family_position",
    "load_calibration",
    "measure_features",
    "same_model",
    "save_calibration",
]


@dataclass
class Calibration:
    """What `calibrate` measured and chose; `position` and `layers` are what the harness applies.

    Tables: `sps[variant][i][j]` is the score at hidden-state index `i` (0..N) and position
    `positions[j]`; `band_sps[variant][j]` is its mean over `upper_half_layers`, `best_band_sps`
    the same over `best_band_layers`.
    """

    model_name: str
    num_layers: int
    apply_chat_template: bool
    prompt_template: str
    position: int
    layers: list[int]
    layers_rule: str
    upper_half_layers: list[int]
    best_band_layers: list[int]
    positions: list[int]
    sps: dict[str, list[list[float]]]
    band_sps: dict[str, list[float]]
    best_band_sps: dict[str, list[float]]
    n_questions: int
    paraphrases_per_question: int
    package_version: str
    created: str
    model_revision: str | None = None
    gguf_file: str | None = None
    chat_template_sha256: str | None = None
    add_special_tokens: bool | None = None
    example_prompt: str = ""
    position_tokens: list[str] = field(default_factory=list)
    data_source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def band_table(self, variant: str = "centred", layers: Sequence[int] | None = None) -> list[float]:
        """Per position, `variant` averaged over `layers` (default: the applied `layers`)."""
        return band_average(self.sps[variant], self.layers if layers is None else layers)

    @property
    def prompt_suffix(self) -> str:
        """The prompt text after the question (e.g. "<|im_end|>\\n<|im_start|>assistant\\n"): an eval
        context that does not end with it was built differently from the calibration prompts."""
        question = prompt_text(EXAMPLE_QUESTION, self.prompt_template)
        cut = self.example_prompt.rfind(question)
        return self.example_prompt[cut + len(question) :] if cut >= 0 else ""

    def format_warnings(self, tokenizer: Any, context: str | None = None) -> list[str]:
        """Reasons to doubt that this calibration fits how `tokenizer` (and, when given, an eval
        prompt `context`) builds prompts; empty when everything matches."""
        problems = []
        if self.apply_chat_template and chat_template_sha256(tokenizer) != self.chat_template_sha256:
            problems.append("the tokenizer's chat template differs from the one the calibration was made with")
        if context is not None:
            suffix = self.prompt_suffix
            if self.apply_chat_template and suffix.strip() and not context.endswith(suffix):
                problems.append(
                    f"the eval prompt does not end with the calibration prompt's {suffix!r}: the calibration was made "
                    "with the chat template (--apply_chat_template)"
                )
            if not self.apply_chat_template and getattr(tokenizer, "chat_template", None):
                rendered = render_prompt(tokenizer, "x", True)
                tail = rendered[rendered.rfind("x") + 1 :]
                if tail.strip() and context.endswith(tail):
                    problems.append("the eval prompt uses the chat template, the calibration was made without it")
        return problems


# -- calibrate ---------------------------------------------------------------------------------


@dataclass
class SPSFeatures:
    """Hidden states of questions and paraphrases in the eval prompt, at `positions`, every layer.

    `questions` [Q, N+1, P, d], `paraphrases` [Q, K, N+1, P, d] (zeros where `mask` [Q, K] is
    False), plus the prompt settings they were measured with. `subset` picks questions, so one
    measurement serves several calibrations (e.g. stability checks).
    """

    items: list[ParaphraseItem]
    positions: list[int]
    questions: Any
    paraphrases: Any
    mask: Any
    apply_chat_template: bool
    prompt_template: str
    add_bos_token: bool | None

    @property
    def num_layers(self) -> int:
        return int(self.questions.shape[1]) - 1

    def subset(self, indices: Sequence[int]) -> SPSFeatures:
        import torch

        index = torch.as_tensor(list(indices), dtype=torch.long)
        return SPSFeatures(
            items=[self.items[i] for i in indices], positions=list(self.positions),
            questions=self.questions[index], paraphrases=self.paraphrases[index], mask=self.mask[index],
            apply_chat_template=self.apply_chat_template, prompt_template=self.prompt_template,
            add_bos_token=self.add_bos_token,
        )


def measure_features(
    model: Any,
    tokenizer: Any,
    items: Sequence[ParaphraseItem],
    *,
    apply_chat_template: bool,
    positions: Sequence[int] = DEFAULT_POSITIONS,
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    add_bos_token: bool | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> SPSFeatures:
    """One no-grad forward pass per question and paraphrase (in the harness's eval prompt)."""
    import torch

    from ..scoring.model_access import decoder_layers
    from .features import prompt_hidden_states

    positions = _check_positions(positions)
    items = as_items(items)
    if len(items) < 2:
        raise ValueError(f"{len(items)} question(s): the SPS needs at least 2")
    encode = dict(template=prompt_template, apply_chat_template=apply_chat_template, add_bos_token=add_bos_token)
    texts: list[str] = []
    owners: list[tuple[int, int]] = []  # (question index, paraphrase slot: -1 = the question itself)
    for q_index, item in enumerate(items):
        texts.append(item.question)
        owners.append((q_index, -1))
        for k, paraphrase in enumerate(item.paraphrases):
            texts.append(paraphrase)
            owners.append((q_index, k))
    prompts = [encode_prompt(tokenizer, text, **encode) for text in texts]
    features = prompt_hidden_states(model, prompts, positions, batch_size=batch_size, progress=progress)
    num_layers = features.shape[1] - 1
    declared = len(decoder_layers(model))
    if declared != num_layers:
        raise ValueError(f"the model returned {num_layers + 1} hidden states for {declared} decoder layers")
    max_k = max(len(item.paraphrases) for item in items)
    questions = torch.zeros((len(items), *features.shape[1:]), dtype=features.dtype)
    paraphrases = torch.zeros((len(items), max_k, *features.shape[1:]), dtype=features.dtype)
    mask = torch.zeros((len(items), max_k), dtype=torch.bool)
    for row, (q_index, slot) in enumerate(owners):
        if slot < 0:
            questions[q_index] = features[row]
        else:
            paraphrases[q_index, slot] = features[row]
            mask[q_index, slot] = True
    return SPSFeatures(
        items=list(items), positions=positions, questions=questions, paraphrases=paraphrases, mask=mask,
        apply_chat_template=bool(apply_chat_template), prompt_template=prompt_template, add_bos_token=add_bos_token,
    )


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
    the data arguments are then ignored.
    """
    import torch

    from ..scoring.model_access import upper_half_layers
    from ..version import __version__
    from .prompts import special_tokens_kwargs
    from .sps import sps_tables

    if layer_rule not in LAYER_RULES:
        raise ValueError(f"layer_rule={layer_rule!r}: choose one of {', '.join(LAYER_RULES)}")
    if features is None:
        if questions_with_paraphrases is None:
            items = read_paraphrases()
            data_source = data_source or f"lm_eval_semgrad/data/{DEFAULT_PARAPHRASES}"
        else:
            items = as_items(questions_with_paraphrases)
            data_source = data_source or "in-memory"
        items = select(items, limit, paraphrases_per_question, seed)
        features = measure_features(
            model, tokenizer, items, apply_chat_template=apply_chat_template, positions=positions,
            prompt_template=prompt_template, add_bos_token=add_bos_token, batch_size=batch_size, progress=progress,
        )
    else:
        given = (bool(apply_chat_template), prompt_template, add_bos_token)
        measured = (features.apply_chat_template, features.prompt_template, features.add_bos_token)
        if given != measured:
            raise ValueError(f"features were measured with prompt settings {measured}, not {given}")
        data_source = data_source or "features"
    positions = list(features.positions)
    num_layers = features.num_layers
    tables = sps_tables(features.questions, features.paraphrases, features.mask)
    sps = {name: [[_round(v) for v in row] for row in tables[name].tolist()] for name in VARIANTS}

    upper = upper_half_layers(num_layers)
    band_sps = {name: [_round(v) for v in band_average(sps[name], upper)] for name in VARIANTS}
    position = choose_position(band_sps["centred"], positions)
    column = [row[positions.index(position)] for row in sps["centred"]]
    best_band = best_contiguous_band(column, num_layers, width=len(upper))
    best_band_sps = {name: [_round(v) for v in band_average(sps[name], best_band)] for name in VARIANTS}

    encode = dict(template=prompt_template, apply_chat_template=apply_chat_template, add_bos_token=add_bos_token)
    example_ids = encode_prompt(tokenizer, EXAMPLE_QUESTION, **encode)
    rendered = render_prompt(tokenizer, prompt_text(EXAMPLE_QUESTION, prompt_template), apply_chat_template)
    special = special_tokens_kwargs(tokenizer, rendered, add_bos_token).get("add_special_tokens")
    counts = features.mask.sum(1)
    info = {
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "dtype": str(getattr(model, "dtype", "")).replace("torch.", ""),
        "seed": seed,
        "example_prompt_tokens": len(example_ids),
        "paraphrases_min": int(counts.min()),
    }
    info.update(dict(metadata or {}))
    return Calibration(
        model_name=model_name or _model_name(model),
        model_revision=model_revision,
        gguf_file=gguf_file,
        num_layers=num_layers,
        apply_chat_template=bool(apply_chat_template),
        chat_template_sha256=chat_template_sha256(tokenizer) if apply_chat_template else None,
        add_special_tokens=special,
        prompt_template=prompt_template,
        example_prompt=rendered,
        position_tokens=[
            str(t) for t in tokenizer.convert_ids_to_tokens([example_ids[p] for p in positions if -p <= len(example_ids)])
        ],
        position=position,
        layers=list(upper if layer_rule == "upper_half" else best_band),
        layers_rule=layer_rule,
        upper_half_layers=list(upper),
        best_band_layers=list(best_band),
        positions=positions,
        sps=sps,
        band_sps=band_sps,
        best_band_sps=best_band_sps,
        n_questions=len(features.items),
        paraphrases_per_question=int(counts.max()),
        data_source=str(data_source),
        package_version=__version__,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        metadata=info,
    )


def _check_positions(positions: Sequence[int]) -> list[int]:
    try:
        result = [int(p) for p in positions]
    except (TypeError, ValueError):
        raise ValueError(f"positions {positions!r}: give negative integers (-1 = last prompt token)") from None
    if not result or any(p >= 0 for p in result) or len(set(result)) != len(result):
        raise ValueError(f"positions {result}: give distinct negative integers (-1 = last prompt token)")
    return result


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


# -- the calibration file ------------------------------------------------------------------------

_STR, _OPT_STR, _INT, _BOOL, _OPT_BOOL = "string", "string or null", "integer", "boolean", "boolean or null"
_INT_LIST, _STR_LIST, _TABLE, _ROWS, _DICT = (
    "list of integers", "list of strings", "{variant: [[number]]}", "{variant: [number]}", "object",
)
_SCHEMA: dict[str, tuple[str, bool]] = {  # field -> (type, required)
    "model_name": (_STR, True),
    "num_layers": (_INT, True),
    "apply_chat_template": (_BOOL, True),
    "prompt_template": (_STR, True),
    "position": (_INT, True),
    "layers": (_INT_LIST, True),
    "layers_rule": (_STR, True),
    "upper_half_layers": (_INT_LIST, True),
    "best_band_layers": (_INT_LIST, True),
    "positions": (_INT_LIST, True),
    "sps": (_TABLE, True),
    "band_sps": (_ROWS, True),
    "best_band_sps": (_ROWS, True),
    "n_questions": (_INT, True),
    "paraphrases_per_question": (_INT, True),
    "package_version": (_STR, True),
    "created": (_STR, True),
    "model_revision": (_OPT_STR, False),
    "gguf_file": (_OPT_STR, False),
    "chat_template_sha256": (_OPT_STR, False),
    "add_special_tokens": (_OPT_BOOL, False),
    "example_prompt": (_STR, False),
    "position_tokens": (_STR_LIST, False),
    "data_source": (_STR, False),
    "metadata": (_DICT, False),
    "format_version": (_INT, True),
}
assert set(_SCHEMA) == {f.name for f in fields(Calibration)}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _type_ok(kind: str, value: Any) -> bool:
    if kind == _STR:
        return isinstance(value, str)
    if kind == _OPT_STR:
        return value is None or isinstance(value, str)
    if kind == _INT:
        return _is_int(value)
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _OPT_BOOL:
        return value is None or isinstance(value, bool)
    if kind == _INT_LIST:
        return isinstance(value, list) and all(_is_int(v) for v in value)
    if kind == _STR_LIST:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == _DICT:
        return isinstance(value, dict)
    if kind == _ROWS:
        return isinstance(value, dict) and all(
            isinstance(row, list) and all(_is_number(v) for v in row) for row in value.values()
        )
    if kind == _TABLE:
        return isinstance(value, dict) and all(
            isinstance(table, list) and all(isinstance(row, list) and all(_is_number(v) for v in row) for row in table)
            for table in value.values()
        )
    raise AssertionError(kind)


def _to_json(cal: Calibration) -> str:
    data = {"format": FORMAT_NAME, **asdict(cal)}
    text = json.dumps(data, indent=2, ensure_ascii=False)
    # one line per list of numbers (table rows), instead of one line per number
    return re.sub(
        r"\[[-+0-9.eE,\s]*\]", lambda m: "[" + ", ".join(t for t in re.split(r"[\s,]+", m.group(0)[1:-1]) if t) + "]", text
    )


def save_calibration(cal: Calibration, path: str | Path) -> Path:
    """Write `cal` as JSON to `path` (folders are created); returns the path."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_to_json(cal) + "\n", encoding="utf-8")
    return path


def same_model(a: str, b: str) -> bool:
    """Whether two model names denote the same model: equal, or equal final path component
    (case-insensitive), so a hub id and a local copy of it (`org/Name` and `/models/Name`) match."""

    def last(name: str) -> str:
        return name.strip().rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1].lower()

    return a.strip() == b.strip() or (bool(last(a)) and last(a) == last(b))


def load_calibration(path: str | Path, *, model_name: str | None = None, num_layers: int | None = None) -> Calibration:
    """Read and check a calibration file written by `save_calibration`.

    Raises ValueError (naming the file and the field) when it is not JSON, not a calibration file,
    of a newer format, misses fields or has fields of the wrong type; and when `model_name` is
    given and the file was made for another model (see `same_model`), or `num_layers` is given and
    differs from the file's.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"calibration file {str(path)!r} not found; create it with `lm-eval-semgrad calibrate`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path} is not a calibration file: not valid JSON ({error}). Create one with "
            "`lm-eval-semgrad calibrate --model_args pretrained=... --output_path FILE`."
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise ValueError(
            f"{path} is not a calibration file (no \"format\": \"{FORMAT_NAME}\" entry). Create one with "
            "`lm-eval-semgrad calibrate --model_args pretrained=... --output_path FILE`."
        )
    version = data.get("format_version")
    if not _is_int(version):
        raise ValueError(f"{path}: field 'format_version' must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: calibration format version {version} is newer than this lm-eval-semgrad reads "
            f"({FORMAT_VERSION}); upgrade lm-eval-semgrad or recalibrate with this version."
        )
    missing = [name for name, (_, required) in _SCHEMA.items() if required and name not in data]
    if missing:
        raise ValueError(f"{path}: missing field(s) {', '.join(missing)}; recreate it with `lm-eval-semgrad calibrate`.")
    for name, (kind, _) in _SCHEMA.items():
        if name in data and not _type_ok(kind, data[name]):
            raise ValueError(f"{path}: field {name!r} must be a {kind}, got {data[name]!r:.120}")
    values = {name: data[name] for name in _SCHEMA if name in data}
    cal = Calibration(**values)
    _check_consistency(cal, path)
    if model_name is not None and not same_model(cal.model_name, str(model_name)):
        raise ValueError(
            f"{path} was made for model {cal.model_name!r}, but the model being evaluated is {model_name!r}. "
            f"Calibrate this model (`lm-eval-semgrad calibrate --model_args pretrained={model_name} "
            "--output_path FILE`) and pass that file, or pass the calibration file made for this model."
        )
    if num_layers is not None and cal.num_layers != num_layers:
        raise ValueError(
            f"{path} was made for a model with {cal.num_layers} decoder layers, this one has {num_layers}; "
            "recalibrate for this model."
        )
    return cal


def _check_consistency(cal: Calibration, path: Path) -> None:
    problems = []
    if cal.position >= 0:
        problems.append(f"position {cal.position} is not negative")
    if cal.num_layers < 1:
        problems.append(f"num_layers {cal.num_layers} < 1")
    bad_layers = [i for i in cal.layers if not 0 <= i <= cal.num_layers]
    if not cal.layers or bad_layers:
        problems.append(f"layers {cal.layers} must be a non-empty list of hidden-state indices 0..{cal.num_layers}")
    if cal.layers_rule not in LAYER_RULES:
        problems.append(f"layers_rule {cal.layers_rule!r} is not one of {LAYER_RULES}")
    for name, table in cal.sps.items():
        if len(table) != cal.num_layers + 1 or any(len(row) != len(cal.positions) for row in table):
            problems.append(f"sps[{name!r}] is not a {cal.num_layers + 1} x {len(cal.positions)} table")
    if problems:
        raise ValueError(f"{path}: inconsistent calibration file: {'; '.join(problems)}")
