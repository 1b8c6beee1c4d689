"""`lm-eval-semgrad report OUTPUT_DIR...`: leaderboard of uncertainty quality across models and tasks.

Reads every lm-eval run under the given folders (any depth), recomputes AUROC/AUPRC/AURC/PRR/Spearman
with bootstrap CIs for every score found in the samples files, and prints a markdown, CSV or HTML
table (optionally PNG plots per model x task x filter). Runs and answers without uncertainty scores
are listed in the output and on stderr. With --confidence, also a calibrated P(correct) per method
(cross-fitted) and its ECE, Brier score, log loss and selective accuracy, with bootstrap CIs.

Exit status: 0 = report written; 1 = no lm-eval output found; 2 = a file could not be used
(the message names it) or bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..cli_common import add_bootstrap_argument, check_bootstrap_iters, output_problem
from .confidence import CONFIDENCE_METHODS, ConfidenceSettings

__all__ = ["add_arguments", "run", "main", "write_report"]

_SUFFIX_FORMAT = {".md": "md", ".markdown": "md", ".csv": "csv", ".html": "html", ".htm": "html"}
_CONFIDENCE_DEFAULTS = ConfidenceSettings()
_CONFIDENCE_OPTIONS = ("method", "folds", "seed", "bins")  # --confidence_<name>, fields of ConfidenceSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="OUTPUT_DIR",
                        help="lm-eval --output_path folders (searched at any depth) or results/samples files")
    parser.add_argument("--format", choices=("md", "csv", "html"), default=None,
                        help="output format (default: from the suffix of --output_path, else md)")
    parser.add_argument("--output_path", "-o", default=None, metavar="FILE", help="write the report here instead of stdout")
    parser.add_argument("--plots", default=None, metavar="DIR",
                        help="also write PNG plots (ROC, risk-coverage, score histograms, reliability) here")
    parser.add_argument("--methods", action="append", default=None, metavar="M1,M2",
                        help="only these scores, in this order, comma-separated (repeatable; default: every "
                             "score in the samples: semgrad, hybridgrad, exgrad, g_nll, mean_entropy, ...)")
    add_bootstrap_argument(parser, 1000)
    parser.add_argument("--seed", type=int, default=1234, help="bootstrap seed (default 1234)")
    parser.add_argument("--all_runs", action="store_true",
                        help="report every run; default: only the latest run of each model x task")
    _add_confidence_arguments(parser)


def _add_confidence_arguments(parser: argparse.ArgumentParser) -> None:
    """`--confidence` and its settings; the settings default to None so that one given alone is caught."""
    defaults = _CONFIDENCE_DEFAULTS
    parser.add_argument("--confidence", action="store_true",
                        help="also report a calibrated P(correct) per method, cross-fitted, with its ECE, Brier "
                             "score, log loss and selective accuracy at 50/80/90%% coverage (and reliability "
                             "diagrams with --plots)")
    parser.add_argument("--confidence_method", choices=CONFIDENCE_METHODS, default=None,
                        help=f"monotone map from uncertainty to P(correct) (default {defaults.method})")
    parser.add_argument("--confidence_folds", type=int, default=None, metavar="K",
                        help=f"cross-fitting folds, stratified by correctness (default {defaults.folds}; >= 2)")
    parser.add_argument("--confidence_seed", type=int, default=None, metavar="N",
                        help=f"seed of the fold assignment (default {defaults.seed}; >= 0)")
    parser.add_argument("--confidence_bins", type=int, default=None, metavar="B",
                        help=f"equal-mass bins of the ECE and the reliability diagram (default {defaults.bins}; >= 1)")


def _confidence_settings(args: argparse.Namespace) -> tuple[ConfidenceSettings | None, str | None]:
    """The settings --confidence asks for, or why the --confidence_* options given cannot be used."""
    given = {name: getattr(args, f"confidence_{name}") for name in _CONFIDENCE_OPTIONS}
    given = {name: value for name, value in given.items() if value is not None}
    if not args.confidence:
        if given:
            options = " and ".join(f"--confidence_{name}" for name in given)
            verb = "takes" if len(given) == 1 else "take"
            return None, f"{options} {verb} effect only with --confidence: add --confidence, or drop {options}"
        return None, None
    settings = ConfidenceSettings(**{**vars(_CONFIDENCE_DEFAULTS), **given})
    if settings.folds < 2:
        return None, f"--confidence_folds must be >= 2, got {settings.folds}"
    if settings.bins < 1:
        return None, f"--confidence_bins must be >= 1, got {settings.bins}"
    if settings.seed < 0:
        return None, f"--confidence_seed must be >= 0, got {settings.seed}"
    return settings, None


def _methods(values: Sequence[str] | None) -> list[str] | None:
    if not values:
        return None
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return list(dict.fromkeys(names)) or None


def write_report(
    paths: Sequence[str | Path],
    *,
    fmt: str = "md",
    output: str | Path | None = None,
    plots_dir: str | Path | None = None,
    methods: Sequence[str] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 1234,
    all_runs: bool = False,
    only_under: Sequence[str | Path] | None = None,
    calibrate: ConfidenceSettings | None = None,
    stderr=None,
) -> int:
    """Build, print/write the report and report problems on `stderr`; returns the exit status.

    Raises `ReportError` for unusable files (the CLI turns it into exit status 2).
    """
    from .render import render
    from .table import build_report

    stderr = stderr or sys.stderr
    report = build_report(
        paths, methods=methods, n_bootstrap=n_bootstrap, seed=seed, all_runs=all_runs, only_under=only_under,
        calibrate=calibrate,
    )
    for warning in report.warnings:
        print(f"warning: {warning}", file=stderr)
    if not report.rows and not report.missing:
        print(f"error: no lm-eval results_*.json or samples_*.jsonl found under {', '.join(map(str, paths))}",
              file=stderr)
        return 1
    for entry in report.missing:
        where = f" ({entry.path})" if entry.path else ""
        print(f"no uncertainty scores: {entry.model} / {entry.task} / {entry.filter}: {entry.reason}{where}",
              file=stderr)
    for row in report.rows:
        if row.n_missing:
            print(f"partial scores: {row.model} / {row.task} / {row.filter}: {row.n_scored} of {row.n} answers "
                  f"scored, {row.n_missing} without scores", file=stderr)

    plots = None
    if plots_dir is not None:
        plots = write_plots_safely(report, plots_dir, stderr)
    base = Path(output).resolve().parent if output else Path.cwd()
    text = render(report, fmt, plots, base)
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text, encoding="utf-8")
        print(f"wrote {output} ({len(report.rows)} row(s), {len(report.missing)} without scores)", file=stderr)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0


def write_plots_safely(report, plots_dir, stderr):
    from .plots import write_plots

    plots = write_plots(report, plots_dir)
    count = sum(len(files) for files in plots.values())
    print(f"wrote {count} plots to {plots_dir}", file=stderr)
    return plots


def run(args: argparse.Namespace) -> int:
    from .loading import ReportError

    fmt = args.format
    if fmt is None:
        fmt = _SUFFIX_FORMAT.get(Path(args.output_path).suffix.lower(), "md") if args.output_path else "md"
    calibrate, confidence_problem = _confidence_settings(args)
    problems = [check_bootstrap_iters(args.bootstrap_iters), confidence_problem]
    if args.output_path:
        problems.append(output_problem(args.output_path, folder=False))
    if args.plots:
        problems.append(output_problem(args.plots, folder=True))
    for problem in filter(None, problems):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        return write_report(
            args.paths, fmt=fmt, output=args.output_path, plots_dir=args.plots, methods=_methods(args.methods),
            n_bootstrap=args.bootstrap_iters, seed=args.seed, all_runs=args.all_runs, calibrate=calibrate,
        )
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lm-eval-semgrad report", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
