"""`lm-eval-semgrad reproduce`: the paper's grid as a resumable sweep, laid out as its Tables 1 and 5.

    lm-eval-semgrad reproduce --models models.txt --output_path DIR [--tasks T1,T2] [--bem_model PATH] \\
        [--nli PATH] [--cross_encoder PATH] [--launcher "accelerate launch --num_processes 4"] [-- LM_EVAL_ARGS]

Each model of the models file (the sweep's format) runs on the paper's three data sets (or `--tasks`)
with the paper's methods (`semgrad_methods=paper`), its generation settings (the tasks' greedy,
150-token, one-turn prompt, `--apply_chat_template`), the model's reference position
(`semgrad_position=auto`: a model whose chat template is not a known family needs
`semgrad_position=` or `semgrad_calibration=` in its line) and, with `--bem_model`, the paper's BEM
label. Options already in a model's line win. The grid is `lm-eval-semgrad sweep`'s: cells in
DIR/NAME/TASK, resumable by rerunning the same command. Then DIR/table1.md (AUROC), DIR/table5.md
(AURC) and their CSV twins are written from every finished cell, ours with bootstrap intervals next
to the paper's numbers; stand-in labels, other question sets and methods that could not run are
marked.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from ..cli_common import add_bootstrap_argument, check_bootstrap_iters, output_problem
from ..sweep import ModelEntry, SweepError, check_extra_args, parse_models_file, parse_tasks, plan_cells, run_sweep
from .paper import PAPER_TASKS, paper_model
from .tables import TABLES, GridCell, collect, render_csv, render_markdown

__all__ = ["add_arguments", "paper_model_args", "paper_lm_eval_args", "run"]


def _with_defaults(model_args: str, defaults: dict[str, str]) -> str:
    """`model_args` with each default appended unless the line sets that key itself."""
    present = {part.partition("=")[0].strip() for part in model_args.split(",") if part.strip()}
    added = [f"{key}={value}" for key, value in defaults.items() if key not in present]
    return ",".join([model_args.rstrip(","), *added]) if added else model_args


def paper_model_args(
    entry: ModelEntry, *, bem_model: str | None, nli: str | None, cross_encoder: str | None
) -> ModelEntry:
    """The entry with the paper's settings added where its line is silent."""
    defaults = {"semgrad_methods": "paper"}
    if not {"semgrad_position", "semgrad_calibration"} & set(entry.args):
        defaults["semgrad_position"] = "auto"
    if bem_model:
        defaults["semgrad_correctness"] = "bem"
    if nli:
        defaults["semgrad_nli"] = nli
    if cross_encoder:
        defaults["semgrad_cross_encoder"] = cross_encoder
    return ModelEntry(entry.name, _with_defaults(entry.model_args, defaults), entry.where)


def paper_lm_eval_args(extra: list[str], bem_model: str | None) -> list[str]:
    """The user's lm_eval args plus `--apply_chat_template` and, with a BEM model, `bem_model` in `--metadata`."""
    extra = list(extra)
    if "--apply_chat_template" not in extra and not any(t.startswith("--apply_chat_template=") for t in extra):
        extra.append("--apply_chat_template")
    if not bem_model:
        return extra
    for index, token in enumerate(extra):
        if token == "--metadata" or token.startswith("--metadata="):
            inline = token.startswith("--metadata=")
            value = token.split("=", 1)[1] if inline else (extra[index + 1] if index + 1 < len(extra) else "")
            try:
                metadata = json.loads(value)
            except json.JSONDecodeError:
                raise SweepError(
                    f"--metadata {value!r}: give it as JSON to use it with --bem_model, or put bem_model into it"
                ) from None
            if not isinstance(metadata, dict):
                raise SweepError(f"--metadata {value!r}: expected a JSON object")
            merged = json.dumps({**metadata, "bem_model": bem_model})
            if inline:
                extra[index] = f"--metadata={merged}"
            else:
                extra[index + 1] = merged
            return extra
    return [*extra, "--metadata", json.dumps({"bem_model": bem_model})]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", required=True, metavar="FILE",
                        help="models file as for sweep: 'MODEL_ARGS' or 'NAME MODEL_ARGS' per line, # comments")
    parser.add_argument("--output_path", "-o", required=True, metavar="DIR",
                        help="grid folder: cells in DIR/<model>/<task>/, tables in DIR/table1.md, table5.md (+ .csv)")
    parser.add_argument("--tasks", action="append", metavar="T1,T2", default=None,
                        help=f"tasks (default the paper's: {','.join(PAPER_TASKS)})")
    parser.add_argument("--bem_model", default=None, metavar="PATH",
                        help="a BEM-style classifier: label answers as the paper does (bem >= 0.7); without it the "
                             "task's first metric (contains) stands in and the cells are marked")
    parser.add_argument("--nli", default=None, metavar="PATH",
                        help="NLI model for S.E., Self-Con, Deg, S.D. (semgrad_nli; default: that option's own default)")
    parser.add_argument("--cross_encoder", default=None, metavar="PATH",
                        help="cross-encoder for SAR (semgrad_cross_encoder; default: that option's own default)")
    parser.add_argument("--launcher", default=None, metavar="CMD",
                        help="command prefix per cell, e.g. \"accelerate launch --num_processes 4\" (data parallel)")
    add_bootstrap_argument(parser, 1000)
    parser.add_argument("--dry_run", action="store_true", help="print each cell's state and command, run nothing")
    parser.add_argument("lm_eval_args", nargs=argparse.REMAINDER, metavar="-- LM_EVAL_ARGS",
                        help="after `--`: passed to every lm_eval run (e.g. --limit 100 --batch_size 8)")


def run(args: argparse.Namespace) -> int:
    try:
        entries = parse_models_file(args.models)
        tasks = parse_tasks(args.tasks or [",".join(PAPER_TASKS)])
        problem = check_bootstrap_iters(args.bootstrap_iters) or output_problem(args.output_path, folder=True)
        if problem:
            raise SweepError(problem)
        if args.bem_model and not Path(args.bem_model).expanduser().exists() and args.bem_model.startswith((".", "/", "~")):
            raise SweepError(f"--bem_model {args.bem_model}: no such folder")
        models = [paper_model_args(e, bem_model=args.bem_model, nli=args.nli, cross_encoder=args.cross_encoder)
                  for e in entries]
        extra = paper_lm_eval_args(check_extra_args(args.lm_eval_args or []), args.bem_model)
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    output = Path(args.output_path)
    status = run_sweep(models, tasks, output, launcher=args.launcher, extra=extra, report_bootstrap=args.bootstrap_iters,
                       dry_run=args.dry_run)
    if args.dry_run or status == 130:
        return status
    written = write_tables(models, tasks, output, extra, args.bootstrap_iters)
    for path in written:
        print(f"reproduce: {path}")
    return status


def write_tables(models: list[ModelEntry], tasks: list[str], output: Path, extra: list[str], n_bootstrap: int) -> list[Path]:
    """table1/table5 .md and .csv from the grid's finished cells."""
    from ..report.table import build_report
    from ..version import __version__

    cells = plan_cells(models, tasks, output)
    grid = [GridCell(c.model.name, c.model.args["pretrained"], paper_model(c.model.args["pretrained"]), c.task, c.directory)
            for c in cells]
    report = build_report([output], n_bootstrap=n_bootstrap, only_under=[c.directory for c in cells])
    failed: dict[Path, str] = {}
    for entry in report.missing:
        if entry.path is not None:
            for cell in cells:
                if Path(entry.path).resolve().is_relative_to(cell.directory.resolve()):
                    failed.setdefault(cell.directory, entry.reason)
    context = [
        "",
        f"Grid: {len(models)} model(s) x {len(tasks)} task(s), cells in {output}; lm_eval args: {' '.join(extra)}; "
        f"{n_bootstrap} bootstrap resamples; lm-eval-semgrad {__version__}, "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.",
    ]
    written = []
    for stem, (metric, title) in TABLES.items():
        table = collect(grid, report.rows, metric, failed)
        for suffix, text in ((".md", render_markdown(table, metric, title, context=context)), (".csv", render_csv(table, metric))):
            path = output / f"{stem}{suffix}"
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written
