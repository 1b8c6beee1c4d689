"""`lm-eval-semgrad sweep`: a resumable models x tasks grid of `semgrad-hf` runs, then a report.

    lm-eval-semgrad sweep --models models.txt --tasks semgrad_sciq,semgrad_triviaqa --output_path runs \\
        [--launcher "accelerate launch --num_processes 2"] [--report_format md] \\
        -- --limit 200 --apply_chat_template --batch_size 8

Models file: one model per line, `MODEL_ARGS` or `NAME MODEL_ARGS` (whitespace between); MODEL_ARGS
is lm-eval's comma-separated `key=value` string and must contain `pretrained=`. `#` starts a
comment (at the start of a line or after whitespace); blank lines are ignored. NAME (letters,
digits, `. _ + -`) defaults to the last path component of `pretrained`; names must be distinct:

    # name          model_args
    qwen-1.5b       pretrained=Qwen/Qwen2.5-1.5B-Instruct,semgrad_position=-3
    llama-pos4      pretrained=/models/Llama-3.2-1B-Instruct,semgrad_position=-4,dtype=bfloat16
    pretrained=/models/SmolLM2-135M-Instruct            # named SmolLM2-135M-Instruct

Each cell (model x task) runs `python -m lm_eval_semgrad --model semgrad-hf --model_args ARGS
--tasks TASK --output_path DIR/NAME/TASK --log_samples EXTRA...` in its own process (with
`--launcher`, `LAUNCHER -m lm_eval_semgrad ...`), its output saved to DIR/NAME/TASK/lm_eval.log and
its state to DIR/NAME/TASK/semgrad_cell.json.

Resuming: a cell whose folder already holds a `results_*.json` is skipped as finished, so rerunning
the same command after an interruption or a failure runs only what is missing. A finished cell
whose recorded model args, model type or extra lm_eval args differ from this sweep's is refused
(its numbers would be reported under the new settings): delete its folder to run it again. A failed cell is
reported (exit code and the end of its log) and the grid goes on; a cell whose `pretrained` is a
local path (starting with / ./ ../ ~) that does not exist fails at once without starting a process.
At the end the report of DIR is written to DIR/report.<format>.

Exit status: 0 = every cell finished and the report was written; 1 = some cell failed (the
others' results are kept and reported); 2 = bad arguments / models file or an unusable output file;
130 = interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from .cli_common import add_bootstrap_argument, check_bootstrap_iters
from .report.loading import CELL_FILE

__all__ = [
    "ModelEntry",
    "Cell",
    "SweepError",
    "parse_models_file",
    "parse_tasks",
    "plan_cells",
    "build_command",
    "run_sweep",
    "add_arguments",
    "run",
    "main",
    "LOG_FILE",
]

LOG_FILE = "lm_eval.log"
TAIL_LINES = 20
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]*$")
# lm_eval options the sweep sets itself for every cell
_RESERVED = {"--model": "--model", "-m": "--model", "--model_args": "--model_args", "-a": "--model_args",
             "--tasks": "--tasks", "-t": "--tasks", "--output_path": "--output_path", "-o": "--output_path"}


class SweepError(Exception):
    """Bad sweep input (models file, tasks, extra arguments); the message says where."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    model_args: str
    where: str  # file:line, for messages

    @property
    def args(self) -> dict[str, str]:
        out = {}
        for part in self.model_args.split(","):
            if part.strip():
                key, _, value = part.partition("=")
                out[key.strip()] = value.strip()
        return out


@dataclass
class Cell:
    model: ModelEntry
    task: str
    directory: Path

    @property
    def label(self) -> str:
        return f"{self.model.name} x {self.task}"

    def results_files(self) -> list[Path]:
        return sorted(self.directory.rglob("results_*.json")) if self.directory.is_dir() else []


@dataclass
class Outcome:
    cell: Cell
    status: str  # "done", "skipped", "failed"
    seconds: float = 0.0
    returncode: int | None = None
    message: str = ""
    log: Path | None = None
    tail: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- inputs


def _derive_name(pretrained: str) -> str:
    last = re.split(r"[\\/]", pretrained.rstrip("/\\"))[-1]
    return re.sub(r"[^A-Za-z0-9._+\-]+", "_", last).strip("_") or "model"


def parse_models_file(path: str | Path) -> list[ModelEntry]:
    """Models from a models file (format in the module docstring); `SweepError` naming file:line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SweepError(f"{path}: cannot read models file: {exc.strerror or exc}") from None
    entries: list[ModelEntry] = []
    seen: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{path}:{lineno}"
        line = re.split(r"(?:^|\s)#", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) == 1:
            name, model_args = None, parts[0]
        elif len(parts) == 2 and "=" not in parts[0]:
            name, model_args = parts
        else:
            raise SweepError(
                f"{where}: expected 'MODEL_ARGS' or 'NAME MODEL_ARGS', got {line!r} (model args are comma-separated "
                "key=value pairs without spaces)"
            )
        pairs = [part for part in model_args.split(",") if part.strip()]
        if not pairs or any("=" not in part or not part.partition("=")[0].strip() for part in pairs):
            raise SweepError(f"{where}: model args {model_args!r} are not comma-separated key=value pairs")
        args = ModelEntry("", model_args, where).args
        if not args.get("pretrained"):
            raise SweepError(f"{where}: model args {model_args!r} have no pretrained=...")
        name = name or _derive_name(args["pretrained"])
        if not _NAME_RE.match(name):
            raise SweepError(f"{where}: model name {name!r} may only hold letters, digits and . _ + -")
        if name in seen:
            raise SweepError(
                f"{where}: model name {name!r} is already used at {seen[name]}; put a distinct NAME before the "
                "model args"
            )
        seen[name] = where
        entries.append(ModelEntry(name, model_args, where))
    if not entries:
        raise SweepError(f"{path}: no models (one 'MODEL_ARGS' or 'NAME MODEL_ARGS' per line)")
    return entries


def parse_tasks(values: Sequence[str]) -> list[str]:
    tasks = [part.strip() for value in values for part in value.split(",") if part.strip()]
    tasks = list(dict.fromkeys(tasks))
    if not tasks:
        raise SweepError("--tasks: no task names given")
    for task in tasks:
        if not re.match(r"^[A-Za-z0-9_.\-+]+$", task) or not task.strip("."):
            raise SweepError(f"--tasks: {task!r} is not a plain task name (one name per cell; no globs, not . or ..)")
    return tasks


def plan_cells(models: Sequence[ModelEntry], tasks: Sequence[str], output_path: Path) -> list[Cell]:
    return [Cell(model, task, output_path / model.name / task) for model in models for task in tasks]


def check_extra_args(extra: Sequence[str]) -> list[str]:
    extra = list(extra)
    if extra and extra[0] == "--":
        extra = extra[1:]
    for token in extra:
        option = token.split("=", 1)[0]
        if option in _RESERVED:
            raise SweepError(
                f"extra lm_eval argument {token!r}: the sweep sets {_RESERVED[option]} itself for every cell"
            )
    return extra


def build_command(
    cell: Cell, *, launcher: str | None = None, model_type: str = "semgrad-hf", extra: Sequence[str] = ()
) -> list[str]:
    prefix = [*shlex.split(launcher), "-m", "lm_eval_semgrad"] if launcher else [sys.executable, "-m", "lm_eval_semgrad"]
    command = [*prefix, "--model", model_type, "--model_args", cell.model.model_args, "--tasks", cell.task,
               "--output_path", str(cell.directory)]
    if not any(token in ("--log_samples", "-s") for token in extra):
        command.append("--log_samples")
    return command + list(extra)


def precheck(cell: Cell) -> str | None:
    """Why the cell cannot run at all (a local model path that does not exist), or None."""
    pretrained = cell.model.args.get("pretrained", "")
    if pretrained.startswith(("/", "./", "../", "~")):
        path = Path(pretrained).expanduser()
        if not path.exists():
            return f"pretrained path {pretrained} does not exist ({cell.model.where})"
    return None


# --------------------------------------------------------------------------- running


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def changed_settings(cell: Cell, model_type: str, extra: Sequence[str]) -> list[str]:
    """How the settings a finished cell recorded differ from this sweep's (empty: the same run)."""
    try:
        state = json.loads((cell.directory / CELL_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        state = {}
    now = {"model_args": cell.model.model_args, "model_type": model_type, "lm_eval_args": list(extra)}
    return [
        f"{key}: {state[key]!r} then, {value!r} now"
        for key, value in now.items()
        if key in state and state[key] != value
    ]


def _write_state(cell: Cell, **fields) -> None:
    path = cell.directory / CELL_FILE
    state = {}
    if path.is_file():
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            state = {}
    state.update(model=cell.model.name, model_args=cell.model.model_args, task=cell.task, log=LOG_FILE, **fields)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    # progress bars rewrite their line with \r: keep the last state of each line
    return [line.rsplit("\r", 1)[-1] for line in text.splitlines() if line.strip()][-lines:]


def run_cell(
    cell: Cell, command: list[str], env: dict[str, str] | None = None, recorded: dict | None = None
) -> Outcome:
    """Run one cell to completion, its output into the cell's log; never raises for a failed run.

    `recorded`: settings kept in the cell's state besides its model args, compared on a rerun.
    """
    cell.directory.mkdir(parents=True, exist_ok=True)
    log = cell.directory / LOG_FILE
    start = time.monotonic()
    problem = precheck(cell)
    if problem is not None:
        log.write_text(f"# {_now()}: not started: {problem}\n", encoding="utf-8")
        _write_state(cell, status="failed", returncode=None, message=f"not started: {problem}", command=command,
                     ended=_now(), seconds=0.0)
        return Outcome(cell, "failed", message=f"not started: {problem}", log=log)

    _write_state(cell, status="running", returncode=None, message=None, command=command, started=_now(),
                 **(recorded or {}))
    with open(log, "w", encoding="utf-8") as handle:
        handle.write(f"# {_now()}: {shlex.join(command)}\n")
        handle.flush()
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd())
        try:
            returncode = process.wait()
        except KeyboardInterrupt:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            _write_state(cell, status="interrupted", returncode=None, message="interrupted", ended=_now())
            raise
    seconds = time.monotonic() - start
    if returncode == 0 and cell.results_files():
        _write_state(cell, status="finished", returncode=0, message=None, ended=_now(), seconds=round(seconds, 1))
        return Outcome(cell, "done", seconds, 0, log=log)
    message = "" if returncode != 0 else "exited 0 but wrote no results_*.json"
    _write_state(cell, status="failed", returncode=returncode, message=message or None, ended=_now(),
                 seconds=round(seconds, 1))
    return Outcome(cell, "failed", seconds, returncode, message, log, _tail(log))


def _say(out: TextIO, text: str = "", end: str = "\n") -> None:
    out.write(text + end)
    out.flush()


def run_sweep(
    models: Sequence[ModelEntry],
    tasks: Sequence[str],
    output_path: str | Path,
    *,
    launcher: str | None = None,
    model_type: str = "semgrad-hf",
    extra: Sequence[str] = (),
    report_format: str = "md",
    report_bootstrap: int = 1000,
    dry_run: bool = False,
    out: TextIO | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Run every unfinished cell, then write the report; returns the exit status (see module doc)."""
    out = out or sys.stdout
    output_path = Path(output_path)
    extra = check_extra_args(extra)
    cells = plan_cells(models, tasks, output_path)
    total = len(cells)
    outcomes: list[Outcome] = []
    _say(out, f"sweep: {len(models)} model(s) x {len(tasks)} task(s) = {total} cells in {output_path}")
    for index, cell in enumerate(cells, 1):
        command = build_command(cell, launcher=launcher, model_type=model_type, extra=extra)
        prefix = f"[{index}/{total}] {cell.label} ..."
        finished = cell.results_files()
        changed = changed_settings(cell, model_type, extra) if finished else []
        if finished and changed:
            message = (f"finished earlier with other settings ({'; '.join(changed)}); its results would be reported "
                       f"under the new ones. Delete {cell.directory} to run it again, or give the model another NAME")
            _say(out, f"{prefix} REFUSED: {message}")
            outcomes.append(Outcome(cell, "failed", message=message))
            continue
        if finished:
            _say(out, f"{prefix} skipped (finished: {finished[-1]})")
            outcomes.append(Outcome(cell, "skipped"))
            continue
        if dry_run:
            _say(out, f"{prefix} would run: {shlex.join(command)}")
            continue
        _say(out, prefix, end=" ")
        try:
            outcome = run_cell(cell, command, env=env, recorded={"model_type": model_type, "lm_eval_args": list(extra)})
        except KeyboardInterrupt:
            _say(out, "interrupted")
            _say(out, f"sweep interrupted at {cell.label}; rerun the same command to resume (finished cells are "
                      "skipped)")
            return 130
        outcomes.append(outcome)
        if outcome.status == "done":
            _say(out, f"done in {outcome.seconds:.0f} s")
        else:
            if outcome.returncode is None:
                _say(out, f"FAILED (not started); log: {outcome.log}")
            else:
                _say(out, f"FAILED (exit code {outcome.returncode}) after {outcome.seconds:.0f} s; log: {outcome.log}")
            if outcome.message:
                _say(out, f"    {outcome.message}")
            for line in outcome.tail:
                _say(out, f"    | {line}")
    if dry_run:
        return 0

    done = sum(o.status == "done" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    failed = [o for o in outcomes if o.status == "failed"]
    _say(out, f"sweep: {total} cells: {done} done, {skipped} skipped (finished earlier), {len(failed)} failed")
    for outcome in failed:
        code = "not started" if outcome.returncode is None else f"exit code {outcome.returncode}"
        _say(out, f"  FAILED {outcome.cell.label}: {code}; log: {outcome.log}")

    status = _write_sweep_report(output_path, [c.directory for c in cells], report_format, report_bootstrap, out)
    if failed:
        _say(out, "rerun the same command to retry the failed cells; finished cells are skipped")
        return 1
    return status


def _write_sweep_report(output_path: Path, cell_dirs: Sequence[Path], fmt: str, n_bootstrap: int, out: TextIO) -> int:
    """The report of this grid's cells (cells of models no longer in the models file are left out)."""
    from .report.cli import write_report
    from .report.loading import ReportError

    target = output_path / f"report.{fmt}"
    try:
        status = write_report([output_path], fmt=fmt, output=target, n_bootstrap=n_bootstrap, only_under=cell_dirs)
    except ReportError as exc:
        _say(out, f"report: error: {exc}")
        return 2
    if status == 0:
        _say(out, f"report: {target}")
    return status


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", required=True, metavar="FILE",
                        help="models file: 'MODEL_ARGS' or 'NAME MODEL_ARGS' per line, # comments")
    parser.add_argument("--tasks", required=True, action="append", metavar="T1,T2",
                        help="task names, comma-separated, repeatable (one cell per model x task)")
    parser.add_argument("--output_path", "-o", required=True, metavar="DIR",
                        help="sweep folder: cells go to DIR/<model>/<task>/, the report to DIR/report.<format>")
    parser.add_argument("--launcher", default=None, metavar="CMD",
                        help="command prefix per cell, e.g. \"accelerate launch --num_processes 2\" "
                             "(then `CMD -m lm_eval_semgrad ...`); default: this Python")
    parser.add_argument("--model", dest="model_type", default="semgrad-hf",
                        help="lm-eval model type (default semgrad-hf; `hf` runs are reported without scores)")
    parser.add_argument("--report_format", choices=("md", "csv", "html"), default="md",
                        help="format of DIR/report.<format> (default md)")
    add_bootstrap_argument(parser, 1000)
    parser.add_argument("--dry_run", action="store_true", help="print each cell's state and command, run nothing")
    parser.add_argument("lm_eval_args", nargs=argparse.REMAINDER, metavar="-- LM_EVAL_ARGS",
                        help="after `--`: passed to every lm_eval run (e.g. --limit 100 --apply_chat_template)")


def run(args: argparse.Namespace) -> int:
    try:
        models = parse_models_file(args.models)
        tasks = parse_tasks(args.tasks)
        extra = check_extra_args(args.lm_eval_args or [])
        problem = check_bootstrap_iters(args.bootstrap_iters)
        if problem:
            raise SweepError(problem)
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run_sweep(
        models, tasks, args.output_path, launcher=args.launcher, model_type=args.model_type, extra=extra,
        report_format=args.report_format, report_bootstrap=args.bootstrap_iters, dry_run=args.dry_run,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lm-eval-semgrad sweep", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
