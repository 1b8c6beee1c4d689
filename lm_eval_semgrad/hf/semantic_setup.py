"""One resolution of the semantic position tau and the layer band, for every command that scores.

`semgrad-hf`, `lm-eval-semgrad rescore` and `lm-eval-semgrad calibrate` all get tau and the
layers from here: a number given as `semgrad_position`, `auto` / nothing (the chat template's
reference position), or a calibration file (`semgrad_calibration`); the layers from
`semgrad_layers`, the calibration file, or the upper half. The layers are checked against the
model's depth when the model loads, so a bad band fails before any generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..logs import get_logger
from ..sample_log import layers_field
from ..scoring.model_access import resolve_layers
from .chat_positions import resolve_position
from .options import SemGradSettings

logger = get_logger(__name__)


@dataclass(frozen=True)
class SemanticSetup:
    """Where the gradient is taken: tau (from the prompt end), the hidden-state indices, and where each came from."""

    position: int
    position_source: str  # "semgrad_position", "chat template", "calibration FILE", "default (last prompt token)"
    layers: tuple[int, ...] | None  # None: the upper half (resolved per model by resolve_layers)
    layers_source: str  # "semgrad_layers", "calibration FILE", "upper half (default)"

    @property
    def layers_list(self) -> list[int] | None:
        return None if self.layers is None else list(self.layers)

    @property
    def layers_field(self) -> str | list[int]:
        """The layers as logged: "upper_half" or the indices."""
        return layers_field(self.layers)

    def describe(self) -> str:
        layers = self.layers_source if self.layers is None else f"{':'.join(map(str, self.layers))} ({self.layers_source})"
        return f"position {self.position} ({self.position_source}), layers {layers}"

    def as_record(self) -> dict[str, Any]:
        """What a results file records about the semantic setup."""
        return {
            "position": self.position,
            "position_source": self.position_source,
            "layers": self.layers_field,
            "layers_source": self.layers_source,
        }


def model_name(model: Any) -> str:
    return str(getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", ""))


def resolve_semantic_setup(settings: SemGradSettings, num_layers: int, tokenizer: Any, model: str) -> SemanticSetup:
    """tau and layers for a model of `num_layers` decoder layers named `model` (checked against a calibration file).

    ValueError, naming the arg, when they cannot apply to it.
    """
    if settings.calibration is not None:
        from ..calibration import load_calibration

        calibration = load_calibration(settings.calibration, model_name=model, num_layers=num_layers)
        for warning in calibration.format_warnings(tokenizer):
            logger.warning("semgrad: %s: %s", settings.calibration, warning)
        source = f"calibration {settings.calibration}"
        setup = SemanticSetup(calibration.position, source, tuple(calibration.layers), source)
    else:
        position, position_source = resolve_position(settings.position, tokenizer)
        layers_source = "upper half (default)" if settings.layers is None else "semgrad_layers"
        setup = SemanticSetup(position, position_source, settings.layers, layers_source)
    try:
        resolve_layers(num_layers, setup.layers)
    except ValueError as error:
        raise ValueError(f"semgrad_layers={setup.layers_field}: {error}") from None
    return setup
