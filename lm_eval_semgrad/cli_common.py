"""Option spellings and set-up shared by the `lm-eval-semgrad` subcommands (one name per concept)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

#: the same name as lm-eval's `simple_evaluate(bootstrap_iters=...)`
BOOTSTRAP_OPTION = "--bootstrap_iters"


def add_bootstrap_argument(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument(BOOTSTRAP_OPTION, type=int, default=default, metavar="N",
                        help=f"bootstrap resamples for the confidence intervals and standard errors "
                             f"(default {default}; 0 = point estimates only)")


def check_bootstrap_iters(value: int) -> str | None:
    """Why a bootstrap count is unusable, or None."""
    if value != 0 and value < 2:
        return f"{BOOTSTRAP_OPTION} must be 0 or >= 2, got {value}"
    return None


def parse_limit(text: str) -> float:
    """`--limit` as lm-eval reads it: a count of documents (>= 1), or a fraction of them (0 < x < 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or (value >= 1 and not value.is_integer()):
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of documents >= 1, or a fraction in (0, 1)")
    return int(value) if value >= 1 else value


def setup_command_logging() -> None:
    """The plugin's loggers (under `lm_eval.`) print their INFO lines on stderr, as they do inside lm_eval runs."""
    logger = logging.getLogger("lm_eval.lm_eval_semgrad")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def output_problem(path: str | Path, *, folder: bool) -> str | None:
    """Why an output file (or folder) cannot be written there, checked before any work starts; None if it can.

    The folder (or the file's folder) is created, and a probe file written into it and removed.
    """
    target = Path(path).expanduser()
    directory = target if folder else target.parent
    if not folder and target.is_dir():
        return f"{target} is a folder; give a file name"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".lm-eval-semgrad-write-check-{os.getpid()}"
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        return f"cannot write {target}: {exc.strerror or exc}"
    return None
