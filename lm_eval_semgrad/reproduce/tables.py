"""The paper's Table 1 (AUROC) and Table 5 (AURC) layout, filled with a reproduce grid's numbers.

Pure: takes the report's rows (`report.table.build_report`) and what each grid cell was, returns
markdown and CSV text. Every number is ours, with its bootstrap interval, next to the paper's where
it published one; cells that differ from the paper's set-up are marked, never silently mixed in.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import methods as registry
from ..metrics.bootstrap import BootstrapResult
from ..report.table import Row
from .paper import PAPER_N, PAPER_TASKS, TABLE_1_AVERAGE, TABLE_5_UNAVAILABLE, paper_auroc

__all__ = ["GridCell", "TableCell", "collect", "render_csv", "render_markdown", "TABLES"]

#: file stem -> (metric, title)
TABLES = {"table1": ("auroc", "Table 1: AUROC x 100"), "table5": ("aurc", "Table 5: AURC x 100 (lower is better)")}
STAND_IN, SUBSET = "†", "‡"


@dataclass(frozen=True)
class GridCell:
    """One model x task of the grid: its name, checkpoint, the paper's column for it (None: not a paper model)."""

    model: str
    pretrained: str
    paper_model: str | None
    task: str
    directory: Path


@dataclass
class TableCell:
    """What one grid cell gave: the methods' results for one metric, and why something is missing."""

    grid: GridCell
    results: dict[str, BootstrapResult] = field(default_factory=dict)
    n: int | None = None
    correctness: str | None = None
    accuracy: float | None = None
    notes: list[str] = field(default_factory=list)  # the report's notes on the row (why a metric is undefined, ...)
    left_out: dict[str, str] = field(default_factory=dict)
    missing: str | None = None  # the whole cell has no numbers, and why

    @property
    def stand_in(self) -> bool:
        """Labelled by something other than the paper's BEM."""
        return self.correctness is not None and not self.correctness.startswith("bem")

    @property
    def subset(self) -> bool:
        """Fewer (or other) questions than the paper's data set."""
        expected = PAPER_N.get(self.grid.task)
        return expected is not None and self.n is not None and self.n != expected


def _left_out(directory: Path) -> dict[str, str]:
    """The paper methods the cell's run could not include, and why (`config.semgrad.left_out`)."""
    for path in sorted(directory.rglob("results_*.json"), reverse=True):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        return dict(((record.get("config") or {}).get("semgrad") or {}).get("left_out") or {})
    return {}


def collect(grid: Sequence[GridCell], rows: Sequence[Row], metric: str, failed: dict[Path, str]) -> list[TableCell]:
    """One TableCell per grid cell: the report row found under its folder (filter "none" first)."""
    cells = []
    for grid_cell in grid:
        mine = [row for row in rows if Path(row.directory).resolve().is_relative_to(grid_cell.directory.resolve())]
        mine.sort(key=lambda row: (row.filter != "none", row.filter))
        cell = TableCell(grid_cell, left_out=_left_out(grid_cell.directory))
        if not mine:
            cell.missing = failed.get(grid_cell.directory) or "no results (the run did not finish)"
        else:
            row = mine[0]
            cell.n, cell.correctness, cell.accuracy, cell.notes = row.n, row.correctness, row.accuracy, list(row.notes)
            cell.results = {name: result.metrics[metric] for name, result in row.methods.items() if metric in result.metrics}
        cells.append(cell)
    return cells


def _paper_rows() -> list[tuple[str, str]]:
    """(paper row, method name) in Table 1's order, for every paper method."""
    by_row = {registry.get(name).paper_row: name for name in registry.available() if registry.get(name).paper_row}
    return [(row, by_row[row]) for row in registry.PAPER_TABLE_1]


def _scaled(value: float) -> float:
    return 100.0 * value


def _format(result: BootstrapResult | None, paper: float | None, marks: str) -> str:
    if result is None or math.isnan(result.value):
        return "n/a" if paper is None else f"n/a (paper {paper:.2f})"
    text = f"{_scaled(result.value):.2f}"
    if not (math.isnan(result.low) or math.isnan(result.high)):
        text += f" [{_scaled(result.low):.1f}, {_scaled(result.high):.1f}]"
    if paper is not None:
        text += f" (paper {paper:.2f})"
    return text + marks


def _marks(cell: TableCell) -> str:
    return (STAND_IN if cell.stand_in else "") + (SUBSET if cell.subset else "")


def _column(cell: TableCell) -> str:
    task = PAPER_TASKS.get(cell.grid.task, cell.grid.task)
    return f"{cell.grid.model} {task}"


def render_markdown(cells: Sequence[TableCell], metric: str, title: str, *, context: Sequence[str] = ()) -> str:
    """The table for `metric` ("auroc": Table 1, with the paper's numbers; "aurc": Table 5) and its notes."""
    lines = [f"# {title}", ""]
    lines.append("Ours, with 95% bootstrap intervals in brackets" + (
        "; the paper's value in parentheses where it published one (its models, its three data sets)." if metric == "auroc"
        else f"; {TABLE_5_UNAVAILABLE}."))
    lines += [f"{line}" for line in context]
    lines.append("")
    header = ["method", *(_column(cell) for cell in cells), "avg (ours)"]
    if metric == "auroc":
        header.append("avg (paper)")
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    accuracy = [
        "—" if cell.missing or cell.accuracy is None else f"{100 * cell.accuracy:.1f} (N = {cell.n})" for cell in cells
    ]
    lines.append("| " + " | ".join(["accuracy x 100", *accuracy, "", *([""] if metric == "auroc" else [])]) + " |")
    for paper_row, name in _paper_rows():
        entries, ours = [], []
        for cell in cells:
            paper = paper_auroc(paper_row, cell.grid.paper_model, cell.grid.task) if metric == "auroc" else None
            if cell.missing:
                entries.append("—")
            elif name in cell.left_out:
                entries.append("not run")
            else:
                result = cell.results.get(name)
                entries.append(_format(result, paper, _marks(cell)))
                if result is not None and not math.isnan(result.value):
                    ours.append(_scaled(result.value))
        row = [f"{paper_row} (`{name}`)", *entries, f"{sum(ours) / len(ours):.2f}" if ours else "n/a"]
        if metric == "auroc":
            row.append(f"{TABLE_1_AVERAGE[paper_row]:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", *_notes(cells)]
    return "\n".join(lines) + "\n"


def _notes(cells: Sequence[TableCell]) -> list[str]:
    notes = []
    stand_ins = sorted({f"{cell.correctness}" for cell in cells if cell.stand_in and not cell.missing})
    if stand_ins:
        notes.append(f"{STAND_IN} labelled by {', '.join(stand_ins)}, not the paper's BEM >= 0.7 (give `--bem_model`).")
    subsets = [f"{_column(cell)}: N = {cell.n} (paper {PAPER_N[cell.grid.task]})" for cell in cells if cell.subset and not cell.missing]
    if subsets:
        notes.append(f"{SUBSET} other questions than the paper's: " + "; ".join(subsets) + ".")
    for cell in cells:
        if cell.missing:
            notes.append(f"— {_column(cell)}: {cell.missing}.")
        notes += [f"{_column(cell)}: {note}" for note in cell.notes]
    reasons: dict[str, list[str]] = {}
    for cell in cells:
        for name, why in cell.left_out.items():
            reasons.setdefault(f"`{name}`: {why}", []).append(_column(cell))
    for why, where in reasons.items():
        notes.append(f"not run {why} ({', '.join(where)}).")
    others = [cell.grid.model for cell in cells if cell.grid.paper_model is None]
    if others:
        notes.append(f"Not one of the paper's models, so no paper values in its columns: {', '.join(dict.fromkeys(others))}.")
    return [f"- {note}" for note in notes]


def render_csv(cells: Sequence[TableCell], metric: str) -> str:
    """One line per method x cell, the numbers unscaled (0..1), with the marks spelled out."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([
        "metric", "model", "pretrained", "task", "method", "paper_row", "value", "ci_low", "ci_high", "n",
        "correctness", "stand_in", "subset", "paper_value", "note",
    ])
    for paper_row, name in _paper_rows():
        for cell in cells:
            paper = paper_auroc(paper_row, cell.grid.paper_model, cell.grid.task) if metric == "auroc" else None
            result = cell.results.get(name)
            note = cell.missing or (f"not run: {cell.left_out[name]}" if name in cell.left_out else "")
            values: list[Any] = ["", "", ""] if result is None or cell.missing else [result.value, result.low, result.high]
            writer.writerow([
                metric, cell.grid.model, cell.grid.pretrained, cell.grid.task, name, paper_row, *values,
                "" if cell.n is None else cell.n, cell.correctness or "", int(cell.stand_in), int(cell.subset),
                "" if paper is None else paper / 100.0, note,
            ])
    return out.getvalue()
