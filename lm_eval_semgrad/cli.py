"""`lm-eval-semgrad SUBCOMMAND ...`: the plugin's own commands next to the stock `lm_eval` command.

Each subcommand lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`;
`SUBCOMMANDS` maps its name to that module and a one-line help.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "calibrate": ("lm_eval_semgrad.calibration.cli", "Choose the semantic position and layers of a model by Semantic Preservation Score"),
    "confidence": ("lm_eval_semgrad.confidence.cli", "Fit P(correct) maps of the uncertainty scores on a dev run (applied with semgrad_confidence=FILE)"),
    "report": ("lm_eval_semgrad.report.cli", "Leaderboard tables and plots of uncertainty quality from lm-eval output folders"),
    "reproduce": ("lm_eval_semgrad.reproduce.cli", "Run the paper's models x data sets x methods grid and lay it out as its Tables 1 and 5"),
    "rescore": ("lm_eval_semgrad.rescore.cli", "Score saved generations (lm-eval sample logs from any backend, or plain JSONL) without generating again"),
    "sweep": ("lm_eval_semgrad.sweep", "Run a resumable models x tasks grid of semgrad-hf evaluations, then report"),
}


def version_text() -> str:
    """The plugin's version and the versions of what it runs on (what a bug report needs)."""
    from importlib.metadata import PackageNotFoundError, version

    from .version import __version__

    parts = []
    for package in ("lm_eval", "transformers", "torch"):
        try:
            parts.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            parts.append(f"{package} not installed")
    return f"lm-eval-semgrad {__version__} ({', '.join(parts)})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lm-eval-semgrad",
        description="SemGrad uncertainty for lm-evaluation-harness. Evaluations themselves run with "
        "`lm_eval --model semgrad-hf ...` (or `python -m lm_eval_semgrad ...`).",
    )
    parser.add_argument("--version", action="version", version=version_text())
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
