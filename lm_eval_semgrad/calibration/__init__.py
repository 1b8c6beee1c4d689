"""Semantic Preservation Score (SPS) calibration: choose the semantic position and layers of any model.

    from lm_eval_semgrad.calibration import calibrate, save_calibration, load_calibration
    cal = calibrate(model, tokenizer, apply_chat_template=True)   # packaged SciQ paraphrases
    save_calibration(cal, "calib.json"); cal.position, cal.layers

See `choice` for the choice rule (`record` for what is kept, `file_format` for the file), `sps` for the score variants, `prompts` for how prompts match the
harness, and `cli` for `lm-eval-semgrad calibrate`. The default paraphrases (SciQ, about 12 per
question) come from the SemGrad reference repository (github.com/mingdali6717/SemGrad, MIT).
"""

from typing import TYPE_CHECKING, Any

from .choice import DEFAULT_LIMIT, DEFAULT_PARAPHRASES_PER_QUESTION, LAYER_RULES, calibrate, known_family_position
from .file_format import load_calibration, same_model, save_calibration
from .measurement import DEFAULT_POSITIONS, SPSFeatures, measure_features
from .paraphrases import ParaphraseItem, read_paraphrases
from .prompts import DEFAULT_PROMPT_TEMPLATE, encode_prompt
from .record import FORMAT_VERSION, Calibration
from .sps import SPS_RULES

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_PARAPHRASES_PER_QUESTION",
    "DEFAULT_POSITIONS",
    "DEFAULT_PROMPT_TEMPLATE",
    "FORMAT_VERSION",
    "LAYER_RULES",
    "SPS_RULES",
    "Calibration",
    "SPSFeatures",
    "ParaphraseItem",
    "calibrate",
    "encode_prompt",
    "known_family_position",
    "load_calibration",
    "measure_features",
    "plot_sps",
    "read_paraphrases",
    "same_model",
    "save_calibration",
]

if TYPE_CHECKING:
    from .plot import plot_sps


def __getattr__(name: str) -> Any:
    if name == "plot_sps":
        from .plot import plot_sps

        return plot_sps
    raise AttributeError(f"module 'lm_eval_semgrad.calibration' has no attribute {name!r}")
