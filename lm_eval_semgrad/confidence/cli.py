"""`lm-eval-semgrad confidence fit RUN_DIR... -o conf.json`: P(correct) maps from a dev run, for later runs.

The maps are applied by `semgrad_confidence=conf.json` in `semgrad-hf` or `rescore` model args.
Exit status: 0 = file written; 1 = no maps could be fitted (the message says why); 2 = bad arguments
or a file that could not be used.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..cli_common import output_problem
from ..metrics.confidence import MAP_METHODS

HELP = "Fit P(correct) maps of the uncertainty scores on a dev run (applied with semgrad_confidence=FILE)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="confidence_command", required=True, metavar="ACTION")
    fit = commands.add_parser("fit", help="fit one monotone map per method on a run's logged scores and labels",
                              description="Fit one monotone map from each method's score to P(correct) on the "
                                          "logged answers of one run (the latest of one model x task under RUN_DIR).")
    fit.add_argument("paths", nargs="+", metavar="RUN_DIR",
                     help="lm-eval --output_path folders of one model (searched at any depth) or their files")
    fit.add_argument("--output_path", "-o", required=True, metavar="FILE", help="the confidence JSON to write")
    fit.add_argument("--methods", default=None, metavar="M1,M2",
                     help="only these scores, comma-separated (default: every score in the sample log)")
    fit.add_argument("--confidence_method", choices=MAP_METHODS, default="isotonic",
                     help="isotonic regression (default) or Platt scaling (a logistic curve)")
    fit.add_argument("--task", default=None, help="the task to fit on, when the runs hold several")
    fit.add_argument("--filter", default=None, help="the filter to fit on, when the task has several")


def run(args: argparse.Namespace) -> int:
    from ..report.loading import ReportError
    from .file_format import save_confidence
    from .fitting import FitError, fit_runs

    problem = output_problem(args.output_path, folder=False)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    methods = None if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
    warnings: list[str] = []
    try:
        fit = fit_runs(args.paths, methods=methods, confidence_method=args.confidence_method, task=args.task,
                       filter_name=args.filter, warnings=warnings)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
    confidence = fit.file
    print(f"confidence fit: model {confidence.model}, task {confidence.task}, filter {confidence.filter}, "
          f"{args.confidence_method} maps, from {', '.join(confidence.fitted_on)}", file=sys.stderr)
    for entry in fit.methods:
        p = entry.confidence_map.predict([float("-inf"), float("inf")])
        left_out = f", {entry.n_left_out} row(s) without a score or label left out" if entry.n_left_out else ""
        print(f"  {entry.method}: N={entry.confidence_map.n}{left_out}; P(correct) from {p[0]:.3f} (most confident) "
              f"to {p[1]:.3f} (least)", file=sys.stderr)
    path = save_confidence(confidence, args.output_path)
    print(f"wrote {path}; apply it with --model_args ...,semgrad_confidence={path}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lm-eval-semgrad confidence", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
