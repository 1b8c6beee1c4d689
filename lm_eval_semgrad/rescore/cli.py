"""`lm-eval-semgrad rescore`: SemGrad for saved generations (lm-eval sample logs of any backend, or plain JSONL).

    lm-eval-semgrad rescore --model_args pretrained=PATH[,dtype=...,semgrad_position=...] \\
        OUT/model/samples_task_2025-01-01T00-00-00.jsonl ... --output_path DIR
    lm-eval-semgrad rescore --model_args pretrained=PATH --jsonl answers.jsonl --output_path DIR

Positional inputs are lm-eval samples files or folders (searched for samples_*.jsonl); a file
whose first row has "response" and no "doc_id" is taken as plain JSONL (as --jsonl does).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from ..cli_common import add_bootstrap_argument, parse_limit, setup_command_logging
from .rows import DEFAULT_BOOTSTRAP_ITERS

HELP = "Score saved generations (lm-eval sample logs from any backend, or plain JSONL) without generating again"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("samples", nargs="*", metavar="SAMPLES",
                        help="lm-eval samples_<task>_<timestamp>.jsonl files, or folders holding them")
    parser.add_argument("--model_args", required=True,
                        help="as for lm_eval: pretrained=PATH plus dtype, revision, gguf_file, add_bos_token, "
                             "max_length and the semgrad_* args (position, layers, methods, calibration, confidence, "
                             "correctness, memory, and for the sampling baselines samples, sample_seed, nli, "
                             "cross_encoder, aux_device, aux_batch_size)")
    parser.add_argument("--jsonl", action="append", default=[], metavar="FILE",
                        help='plain JSONL rows {"prompt" | "messages", "response", "correct"}; repeatable')
    parser.add_argument("--output_path", "-o", required=True, metavar="DIR", help="folder for the rescored files")
    parser.add_argument("--batch_size", type=int, default=None,
                        help="answers per grad pass (default: semgrad_batch_size, else 8)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--limit", type=parse_limit, default=None, metavar="N",
                        help="only the first N documents of each file (a number below 1: that fraction of them)")
    parser.add_argument("--skip_bad", action="store_true",
                        help="skip rows that cannot be scored (listed and counted) instead of stopping at the first")
    parser.add_argument("--overwrite", action="store_true",
                        help="score everything again even where DIR holds rows of an earlier (interrupted) rescore")
    add_bootstrap_argument(parser, DEFAULT_BOOTSTRAP_ITERS)
    parser.add_argument("--no_progress", dest="progress", action="store_false", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from .files import check_writable, rescore_jsonl_file, rescore_sample_files
    from .model_loading import load_model
    from .rows import RescoreError
    from .sources import find_sample_files, is_plain_jsonl

    if not args.samples and not args.jsonl:
        print("error: give lm-eval samples files/folders and/or --jsonl FILE", file=sys.stderr)
        return 2
    if args.batch_size is not None and args.batch_size < 1:
        print("error: --batch_size must be a positive integer", file=sys.stderr)
        return 2
    try:
        check_writable(args.output_path)
        sample_files = find_sample_files(args.samples) if args.samples else []
        plain = [str(p) for p in args.jsonl] + [str(p) for p in sample_files if is_plain_jsonl(p)]
        sample_files = [p for p in sample_files if str(p) not in plain]
        loaded = load_model(args.model_args, args.device)
        batch_size = args.batch_size or loaded.settings.batch_size or 8
        common = dict(batch_size=batch_size, skip_bad=args.skip_bad, overwrite=args.overwrite,
                      bootstrap_iters=args.bootstrap_iters, progress=args.progress)
        print(f"rescore: {loaded.semantic.describe()}", file=sys.stderr)
        summary = None
        if sample_files:
            summary = rescore_sample_files(loaded, sample_files, args.output_path, limit=args.limit, **common)
        plain_outcomes = [rescore_jsonl_file(loaded, path, args.output_path, limit=args.limit, **common) for path in plain]
    except RescoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    outcomes = (summary.files if summary else []) + plain_outcomes
    print(_summary_text(outcomes, loaded.settings.methods, summary.results_files if summary else []))
    if not any(outcome.items for outcome in outcomes):
        print("error: no row could be scored (see the bad rows above)", file=sys.stderr)
        return 1
    return 0


def _summary_text(outcomes, methods: Sequence[str], results_files) -> str:
    lines = ["", "rescore summary"]
    totals: dict[str, int] = {}
    for outcome in outcomes:
        c = outcome.counts
        for key, value in c.items():
            totals[key] = totals.get(key, 0) + value
        lines.append(
            f"  {outcome.source.name}: {c['rows']} rows, {c['scored_rows']} scored "
            f"({c['kept_from_previous_run']} kept from an earlier run, {c['grad_pass_samples']} grad-pass samples now), "
            f"{c['bad_rows']} bad, {c['unscored_rows']} without scores, "
            f"{c['roundtrip_mismatches']} token round-trip mismatches"
        )
        for group, values in outcome.metrics.items():
            shown = ", ".join(
                f"{method} AUROC {_fmt(values.get(f'{method}_auroc'))}" for method in methods
            )
            lines.append(f"    [{group}] {shown}")
        for bad in outcome.bad_rows[:20]:
            lines.append(f"    skipped {bad}")
        if len(outcome.bad_rows) > 20:
            lines.append(f"    ... {len(outcome.bad_rows) - 20} more skipped rows (listed in the summary JSON)")
        lines.append(f"    -> {outcome.output}")
    for path in results_files:
        lines.append(f"  results: {path}")
    if totals.get("roundtrip_mismatches"):
        lines.append(
            f"  {totals['roundtrip_mismatches']} row(s) have \"roundtrip\": false: their scored token ids may differ "
            "from the generated ones (see uncertainty.roundtrip_issue)"
        )
    if totals.get("bad_rows"):
        lines.append(f"  {totals['bad_rows']} bad row(s) skipped")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "nan" if not isinstance(value, float) or math.isnan(value) else f"{value:.4f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lm-eval-semgrad rescore", description=HELP)
    add_arguments(parser)
    setup_command_logging()
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
