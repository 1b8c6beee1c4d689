"""Calibrated confidence: P(correct) maps fitted on one run and applied to later ones.

`lm-eval-semgrad confidence fit RUN_DIR -o conf.json` (`cli`, fitting in `fitting`) fits one
monotone map per method on a run's logged scores and correctness labels; `semgrad_confidence=conf.json`
in `semgrad-hf` or `rescore` (`applied`) logs each answer's P(correct) and reports the maps'
calibration metrics. `file_format` is the file. Nothing here imports torch or lm_eval.
"""

from .applied import ConfidenceSetup, resolve_confidence
from .file_format import FORMAT_NAME, FORMAT_VERSION, ConfidenceFile, load_confidence, save_confidence

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ConfidenceFile",
    "ConfidenceSetup",
    "load_confidence",
    "resolve_confidence",
    "save_confidence",
]
