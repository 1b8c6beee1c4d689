"""The calibration file: JSON written by `save_calibration`, read and checked by `load_calibration`."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from ..model_names import same_model
from .record import FORMAT_VERSION, LAYER_RULES, Calibration
from .sps import SPS_RULES

FORMAT_NAME = "lm-eval-semgrad-calibration"


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
    "sps_rule": (_STR, False),
    "position_by_sps": (_DICT, False),
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
    if cal.sps_rule not in SPS_RULES:
        problems.append(f"sps_rule {cal.sps_rule!r} is not one of {SPS_RULES}")
    elif cal.sps_rule not in cal.sps:
        problems.append(f"sps_rule {cal.sps_rule!r} has no table in sps")
    bad_choices = {k: v for k, v in cal.position_by_sps.items() if k not in SPS_RULES or not _is_int(v) or v not in cal.positions}
    if bad_choices:
        problems.append(f"position_by_sps {bad_choices} must map {', '.join(SPS_RULES)} to measured positions")
    for name, table in cal.sps.items():
        if len(table) != cal.num_layers + 1 or any(len(row) != len(cal.positions) for row in table):
            problems.append(f"sps[{name!r}] is not a {cal.num_layers + 1} x {len(cal.positions)} table")
    if problems:
        raise ValueError(f"{path}: inconsistent calibration file: {'; '.join(problems)}")
