"""The confidence file: fitted P(correct) maps as JSON, written by `save_confidence`, read and checked by
`load_confidence` (the one home of the format; no torch, no lm-eval).

    {"format": "lm-eval-semgrad-confidence", "format_version": 1, "version": PLUGIN_VERSION,
     "model": "org/Name", "task": "semgrad_sciq", "filter": "none", "correctness": "contains >= 0.5",
     "fitted_on": ["runs/.../samples_semgrad_sciq_....jsonl"], "created": "2026-...",
     "maps": {"semgrad": {"method": "isotonic", "n": 500, "x": [...], "y": [...]}, ...}}

Each map is `ConfidenceMap.to_dict()` (its `n` is the number of answers it was fitted on). A file
that is not JSON, of another format or a newer format version, with an unknown method name or an
invalid map is refused with a `ValueError` naming the file and the field, so that no run ever
applies a map it misread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import methods as registry
from ..metrics import ConfidenceMap
from ..version import __version__

FORMAT_NAME = "lm-eval-semgrad-confidence"
FORMAT_VERSION = 1
_HOW_TO_FIT = "Fit one with `lm-eval-semgrad confidence fit RUN_DIR -o FILE`."
_STRINGS = ("version", "model", "task", "filter", "created")


@dataclass(frozen=True)
class ConfidenceFile:
    """Maps from one uncertainty score each to P(correct), and what they were fitted on."""

    model: str  # `pretrained` of the run the maps were fitted on
    task: str
    maps: Mapping[str, ConfidenceMap]  # method -> its map
    filter: str = "none"
    correctness: str | None = None  # the labelling rule of the fitted answers, e.g. "contains >= 0.5"
    fitted_on: tuple[str, ...] = ()  # the samples files read
    version: str = __version__  # the plugin version that fitted them
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "version": self.version,
            "model": self.model, "task": self.task, "filter": self.filter, "correctness": self.correctness,
            "fitted_on": list(self.fitted_on), "created": self.created,
            "maps": {method: confidence_map.to_dict() for method, confidence_map in self.maps.items()},
        }


def save_confidence(confidence: ConfidenceFile, path: str | Path) -> Path:
    """Write `confidence` as JSON to `path` (folders are created); returns the path."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(confidence.to_json(), indent=2) + "\n", encoding="utf-8")
    return path


def load_confidence(path: str | Path) -> ConfidenceFile:
    """Read and check a file written by `save_confidence`; ValueError naming the file and the field otherwise."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"confidence file {str(path)!r} not found. {_HOW_TO_FIT}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a confidence file: not valid JSON ({error}). {_HOW_TO_FIT}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not a confidence file (no \"format\": \"{FORMAT_NAME}\" entry). {_HOW_TO_FIT}")
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{path}: field 'format_version' must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: confidence format version {version} is newer than this lm-eval-semgrad reads ({FORMAT_VERSION}); "
            "upgrade lm-eval-semgrad or fit the maps again with this version."
        )
    for name in _STRINGS:
        if not isinstance(data.get(name), str):
            raise ValueError(f"{path}: field {name!r} must be a string, got {data.get(name)!r:.120}")
    if data.get("correctness") is not None and not isinstance(data["correctness"], str):
        raise ValueError(f"{path}: field 'correctness' must be a string or null, got {data['correctness']!r:.120}")
    fitted_on = data.get("fitted_on")
    if not isinstance(fitted_on, list) or not all(isinstance(item, str) for item in fitted_on):
        raise ValueError(f"{path}: field 'fitted_on' must be a list of paths, got {fitted_on!r:.120}")
    return ConfidenceFile(
        model=data["model"], task=data["task"], maps=_maps(path, data.get("maps")), filter=data["filter"],
        correctness=data.get("correctness"), fitted_on=tuple(fitted_on), version=data["version"],
        created=data["created"],
    )


def _maps(path: Path, value: Any) -> dict[str, ConfidenceMap]:
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{path}: field 'maps' must be a non-empty object {{method: map}}, got {value!r:.120}")
    unknown = sorted(str(name) for name in value if name not in registry.available())
    if unknown:
        raise ValueError(
            f"{path}: maps of unknown method(s) {', '.join(unknown)}; methods are {', '.join(registry.available())}"
        )
    maps = {}
    for method, entry in value.items():
        try:
            maps[method] = ConfidenceMap.from_dict(entry)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: map of {method!r} is invalid: {error}") from None
    return maps

