"""Loggers of the plugin, placed under lm-eval's own `lm_eval` logger.

lm-eval configures only that logger (level from --verbosity / LMEVAL_LOG_LEVEL, its handler and
format); a logger outside it would drop our INFO lines (position, memory, cost of a run). The
plugin's own commands (`lm-eval-semgrad ...`) configure the same logger for their output.
"""

from __future__ import annotations

import logging


def get_logger(module_name: str) -> logging.Logger:
    return logging.getLogger(f"lm_eval.{module_name}")
