"""A `Report` as markdown, CSV or a self-contained HTML page (sortable tables, plots embedded, no external assets).

Layout (markdown and HTML):
  1. Leaderboard: one line per model x task x filter, AUROC [95% CI] of every method, the best
     method by AUROC.
  2. All metrics: one line per model x task x filter x method with AUROC, AUPRC, AURC (lower is
     better), PRR and Spearman, each with its CI. ★ marks the row's best method by AUROC; bold marks
     the best value of each metric within its model x task x filter.
  3. Calibrated confidence (with --confidence): one line per model x task x filter x method with the
     ECE, Brier score, log loss and selective accuracy of the cross-fitted P(correct), each with its
     CI, and the reason where they are undefined ("—").
  4. Runs without uncertainty scores (and why), failed sweep cells.
  5. Notes (warnings met while reading the files and computing the metrics).
Plots (with --plots): markdown links the PNG files (paths relative to the report); HTML embeds each
PNG as a base64 data: URI under a heading per model x task x filter, so the page is one movable file.
CSV: the "all metrics" table in long form (one line per method, values, CI bounds and stderr in
separate columns), plus one line per entry without scores (`has_uncertainty_scores` = no). With
--confidence the calibrated-confidence metrics follow the other metrics in the same form, then
`confidence_note` (why they are empty).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .confidence import CONFIDENCE_HIGHER_IS_BETTER, CONFIDENCE_LABELS, CONFIDENCE_NAMES, ConfidenceResult
from .plots import PLOT_DESCRIPTIONS
from .table import METRIC_LABELS, METRIC_NAMES, Report, Row

__all__ = ["render", "to_markdown", "to_csv", "to_html", "csv_columns", "FORMATS"]

FORMATS = ("md", "csv", "html")
STAR = "★"
_ARROW = {"aurc": "↓"}

Plots = Mapping[tuple[str, str, str], Sequence[Path]]


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _ci(result, row: Row) -> str:
    if result is None or math.isnan(result.value):
        return "n/a"
    if not row.has_ci:
        return "(CI n/a)"
    if math.isnan(result.low):
        return "[CI undefined]"
    return f"[{result.low:.3f}, {result.high:.3f}]"


def _n_text(row: Row) -> str:
    return "?" if row.n is None else str(row.n)


def _unscored_text(row: Row) -> str:
    return "?" if row.n_missing is None else str(row.n_missing)


def _confidence(report: Report) -> str:
    return f"{100 * report.confidence:g}%"


def _preamble(report: Report) -> list[str]:
    if report.n_bootstrap:
        ci = (f"{_confidence(report)} percentile bootstrap CIs over answers ({report.n_bootstrap} resamples, "
              f"seed {report.seed})")
    else:
        ci = "no confidence intervals (--bootstrap 0)"
    return [
        f"Runs under: {', '.join(report.sources)}.",
        f"Metrics recomputed from the per-answer scores in the samples files; {ci}. Uncertainty: higher = less "
        "confident; incorrect answers are the positive class for AUROC/AUPRC.",
        f"{STAR} = best method of the row by AUROC; bold = best value of each metric within a model x task x "
        "filter (AURC: lower is better). Acc = share of answers labelled correct.",
    ]


_NO_SCORE = "no answer in this row has this score"
_UNDEFINED = "—"


def _confidence_text(report: Report) -> str:
    """What the calibrated-confidence table shows, with every setting that shaped it."""
    settings = report.calibrated
    assert settings is not None
    if report.n_bootstrap:
        ci = (f"The {_confidence(report)} bootstrap intervals ({report.n_bootstrap} resamples, seed {report.seed}) "
              "resample answers but hold the fitted map fixed, so they leave out the variability of the fit itself.")
    else:
        ci = "No intervals (--bootstrap_iters 0)."
    return (
        f"P(correct) of every answer from a non-increasing {settings.method} map of the method's uncertainty, "
        f"cross-fitted over {settings.folds} folds stratified by correctness (fold seed {settings.seed}): no "
        f"answer's probability comes from a map fitted on it. ECE over {settings.bins} equal-mass bins, Brier "
        "score and log loss judge these probabilities (lower is better); Sel. acc @k% is the accuracy on the k% "
        f"most confident answers by the raw score (higher is better). {_UNDEFINED} = undefined, the note says why. "
        f"{ci}"
    )


def _confidence_header() -> list[str]:
    arrows = ["↑" if CONFIDENCE_HIGHER_IS_BETTER[name] else "↓" for name in CONFIDENCE_NAMES]
    return ["Model", "Task", "Filter", "Method", "N",
            *(f"{CONFIDENCE_LABELS[name]} {arrow}" for name, arrow in zip(CONFIDENCE_NAMES, arrows)), "Note"]


def _confidence_entries(report: Report) -> list[tuple[Row, str, int | None, ConfidenceResult | None]]:
    """(row, method, n, result) per row x reported method; a method a samples row lacks gets None (its
    answers have no such score), one a results JSON did not report is left out as in "All metrics"."""
    entries = []
    for row in report.rows:
        for method in report.methods if row.source == "samples" else row.methods:
            result = row.methods.get(method)
            entries.append((row, method, None if result is None else result.n,
                            None if result is None else result.calibrated))
    return entries


def _confidence_note(result: ConfidenceResult | None) -> str:
    return _NO_SCORE if result is None else result.reason or ""


def _relative(path: Path, base: Path | None) -> str:
    if base is None:
        return str(path)
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- markdown


def _md_escape(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return out


def _md_metric(row: Row, method: str, metric: str) -> str:
    result = row.methods[method].metrics.get(metric) if method in row.methods else None
    if result is None:
        return "–"
    if math.isnan(result.value):
        return "n/a"
    value = _num(result.value)
    if method in row.best_per_metric.get(metric, []):
        value = f"**{value}**"
    return f"{value} {_ci(result, row)}"


def to_markdown(report: Report, plots: Plots | None = None, base: Path | None = None) -> str:
    out = ["# SemGrad uncertainty report", ""]
    out += [line for text in _preamble(report) for line in (text, "")]
    methods = report.methods

    out += ["## Leaderboard (AUROC)", ""]
    if report.rows:
        header = ["Model", "Task", "Filter", "Acc", "N", "Unscored", *methods, "Best"]
        lines = []
        for row in report.rows:
            cells = [_md_escape(row.model), _md_escape(row.task), _md_escape(row.filter), _num(row.accuracy),
                     _n_text(row), _unscored_text(row)]
            cells += [_md_metric(row, m, "auroc") for m in methods]
            cells.append(_md_escape(", ".join(row.best)) or "–")
            lines.append(cells)
        out += _md_table(header, lines)
    else:
        out.append("No run with uncertainty scores was found.")
    out.append("")

    if report.rows:
        out += ["## All metrics", ""]
        header = ["Model", "Task", "Filter", "Method", "N"]
        header += [f"{METRIC_LABELS[m]} {_ARROW.get(m, '↑')}" for m in METRIC_NAMES]
        lines = []
        for row in report.rows:
            for method, result in row.methods.items():
                name = f"{method} {STAR}" if method in row.best else method
                cells = [_md_escape(row.model), _md_escape(row.task), _md_escape(row.filter), name, str(result.n)]
                cells += [_md_metric(row, method, m) for m in METRIC_NAMES]
                lines.append(cells)
        out += _md_table(header, lines)
        out.append("")

    if report.rows and report.calibrated:
        out += _md_confidence(report)

    if plots:
        out += ["## Plots", ""]
        for row in report.rows:
            files = plots.get(row.key) or []
            if files:
                links = ", ".join(f"[{_plot_kind(p)}]({_relative(p, base)})" for p in files)
                out.append(f"- {_md_escape(row.model)} / {_md_escape(row.task)} / {_md_escape(row.filter)}: {links}")
        out.append("")

    out += ["## Runs without uncertainty scores", ""]
    if report.missing:
        lines = [[_md_escape(m.model), _md_escape(m.task), _md_escape(m.filter), _md_escape(m.reason),
                  _md_escape(m.path or "")] for m in report.missing]
        out += _md_table(["Model", "Task", "Filter", "Reason", "File"], lines)
    else:
        out.append("None: every run found has uncertainty scores.")
    out.append("")

    notes = _notes(report)
    if notes:
        out += ["## Notes", ""] + [f"- {_md_escape(note)}" for note in notes] + [""]
    return "\n".join(out)


def _md_confidence_cell(result: ConfidenceResult | None, name: str, row: Row) -> str:
    metric = None if result is None else result.metrics[name]
    if metric is None or math.isnan(metric.value):
        return _UNDEFINED
    return f"{_num(metric.value)} {_ci(metric, row)}"


def _md_confidence(report: Report) -> list[str]:
    lines = []
    for row, method, n, result in _confidence_entries(report):
        cells = [_md_escape(row.model), _md_escape(row.task), _md_escape(row.filter), _md_escape(method),
                 "–" if n is None else str(n)]
        cells += [_md_confidence_cell(result, name, row) for name in CONFIDENCE_NAMES]
        cells.append(_md_escape(_confidence_note(result)))
        lines.append(cells)
    return ["## Calibrated confidence", "", _confidence_text(report), "", *_md_table(_confidence_header(), lines), ""]


def _plot_kind(path: Path) -> str:
    return Path(path).stem.rsplit("__", 1)[-1]


def _notes(report: Report) -> list[str]:
    notes = list(report.warnings)
    for row in report.rows:
        notes += [f"{row.model} / {row.task} / {row.filter}: {note}" for note in row.notes]
    return notes


# --------------------------------------------------------------------------- CSV


def _csv_num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value))


CSV_COLUMNS = [
    "model", "task", "filter", "method", "best_by_auroc", "has_uncertainty_scores", "source", "accuracy",
    "n", "n_scored", "n_unscored", "n_method",
    *[f"{m}{suffix}" for m in METRIC_NAMES for suffix in ("", "_low", "_high", "_stderr")],
    "correctness", "note", "run_dir", "timestamp",
]


def csv_columns(report: Report) -> list[str]:
    """`CSV_COLUMNS`, plus the calibrated-confidence columns after the other metrics with --confidence."""
    if not report.calibrated:
        return CSV_COLUMNS
    at = CSV_COLUMNS.index("correctness")
    extra = [f"{name}{suffix}" for name in CONFIDENCE_NAMES for suffix in ("", "_low", "_high", "_stderr")]
    return [*CSV_COLUMNS[:at], *extra, "confidence_note", *CSV_COLUMNS[at:]]


def _csv_confidence(result: ConfidenceResult) -> dict[str, str]:
    cells = {"confidence_note": result.reason or ""}
    for name in CONFIDENCE_NAMES:
        r = result.metrics[name]
        cells.update({name: _csv_num(r.value), f"{name}_low": _csv_num(r.low), f"{name}_high": _csv_num(r.high),
                      f"{name}_stderr": _csv_num(r.stderr)})
    return cells


def to_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=csv_columns(report), lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        base = {
            "model": row.model, "task": row.task, "filter": row.filter, "has_uncertainty_scores": "yes",
            "source": row.source, "accuracy": _csv_num(row.accuracy),
            "n": "" if row.n is None else row.n, "n_scored": "" if row.n_scored is None else row.n_scored,
            "n_unscored": "" if row.n_missing is None else row.n_missing,
            "correctness": row.correctness or "", "note": "; ".join(row.notes),
            "run_dir": str(row.directory), "timestamp": row.timestamp,
        }
        for method, result in row.methods.items():
            line = dict(base, method=method, best_by_auroc="yes" if method in row.best else "no", n_method=result.n)
            for metric in METRIC_NAMES:
                r = result.metrics.get(metric)
                if r is not None:
                    line[metric] = _csv_num(r.value)
                    line[f"{metric}_low"] = _csv_num(r.low)
                    line[f"{metric}_high"] = _csv_num(r.high)
                    line[f"{metric}_stderr"] = _csv_num(r.stderr)
            if result.calibrated is not None:
                line.update(_csv_confidence(result.calibrated))
            writer.writerow(line)
    for entry in report.missing:
        writer.writerow({
            "model": entry.model, "task": entry.task, "filter": entry.filter, "has_uncertainty_scores": "no",
            "note": entry.reason, "run_dir": "" if entry.path is None else str(entry.path),
        })
    return buffer.getvalue()


# --------------------------------------------------------------------------- HTML

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f0f0f0;cursor:pointer;user-select:none;white-space:nowrap}
th.asc::after{content:" \\25B2"} th.desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.ci{color:#777;font-size:.85em} .best{font-weight:bold} tr.bestrow td.method{font-weight:bold}
p.small{color:#555;font-size:.9em}
.plots{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
.plots figure{margin:0;max-width:100%} .plots figcaption{color:#555;font-size:.85em}
.plots img{display:block;max-width:min(100%,960px);height:auto}
"""

_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function(table){
  var heads=table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads,function(th,col){
    th.addEventListener('click',function(){
      var asc=!th.classList.contains('asc');
      Array.prototype.forEach.call(heads,function(h){h.classList.remove('asc','desc');});
      th.classList.add(asc?'asc':'desc');
      var body=table.tBodies[0], rows=Array.prototype.slice.call(body.rows);
      function key(tr){var td=tr.cells[col];var v=td.getAttribute('data-sort');
        if(v!==null&&v!==''&&!isNaN(parseFloat(v)))return parseFloat(v);return td.textContent.trim().toLowerCase();}
      rows.sort(function(a,b){var x=key(a),y=key(b);
        if(typeof x!==typeof y){x=String(x);y=String(y);}
        return (x<y?-1:x>y?1:0)*(asc?1:-1);});
      rows.forEach(function(tr){body.appendChild(tr);});
    });
  });
});
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _html_num_cell(value: float | None, extra: str = "", bold: bool = False) -> str:
    sort = "" if value is None or math.isnan(value) else repr(float(value))
    shown = _e(_num(value))
    if bold:
        shown = f'<span class="best">{shown}</span>'
    return f'<td class="num" data-sort="{sort}">{shown}{extra}</td>'


def _html_metric(row: Row, method: str, metric: str) -> str:
    result = row.methods[method].metrics.get(metric) if method in row.methods else None
    if result is None:
        return '<td class="num" data-sort="">–</td>'
    if math.isnan(result.value):
        return '<td class="num" data-sort="">n/a</td>'
    ci = f' <span class="ci">{_e(_ci(result, row))}</span>' if math.isfinite(result.value) else ""
    return _html_num_cell(result.value, ci, bold=method in row.best_per_metric.get(metric, []))


def _html_table(header: Sequence[str], body: Sequence[str]) -> list[str]:
    out = ['<table class="sortable"><thead><tr>' + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead>"]
    out += ["<tbody>", *body, "</tbody></table>"]
    return out


def _html_plots(report: Report, plots: Plots) -> list[str]:
    """Each row's PNGs inlined as data: URIs, so the page still shows them when mailed or moved alone."""
    out = []
    for row in report.rows:
        files = plots.get(row.key) or []
        if not files:
            continue
        where = f"{row.model} / {row.task} / {row.filter}"
        out += [f"<h3>{_e(where)}</h3>", '<div class="plots">']
        for path in files:
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            what = PLOT_DESCRIPTIONS.get(_plot_kind(path), _plot_kind(path))
            out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{_e(f"{what}: {where}")}">'
                       f"<figcaption>{_e(what)}</figcaption></figure>")
        out.append("</div>")
    return ["<h2>Plots</h2>", *out] if out else []


def _html_confidence_cell(result: ConfidenceResult | None, name: str, row: Row) -> str:
    metric = None if result is None else result.metrics[name]
    if metric is None or math.isnan(metric.value):
        return f'<td class="num" data-sort="">{_UNDEFINED}</td>'
    return _html_num_cell(metric.value, f' <span class="ci">{_e(_ci(metric, row))}</span>')


def _html_confidence(report: Report) -> list[str]:
    body = []
    for row, method, n, result in _confidence_entries(report):
        cells = [f"<td>{_e(row.model)}</td>", f"<td>{_e(row.task)}</td>", f"<td>{_e(row.filter)}</td>",
                 f'<td class="method">{_e(method)}</td>',
                 f'<td class="num" data-sort="{"" if n is None else n}">{"–" if n is None else n}</td>']
        cells += [_html_confidence_cell(result, name, row) for name in CONFIDENCE_NAMES]
        cells.append(f"<td>{_e(_confidence_note(result))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return ["<h2>Calibrated confidence</h2>", f'<p class="small">{_e(_confidence_text(report))}</p>',
            *_html_table(_confidence_header(), body)]


def to_html(report: Report, plots: Plots | None = None) -> str:
    methods = report.methods
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>SemGrad uncertainty report</title>", f"<style>{_STYLE}</style></head><body>",
        "<h1>SemGrad uncertainty report</h1>",
    ]
    out += [f'<p class="small">{_e(text)}</p>' for text in _preamble(report)]
    out.append('<p class="small">Click a column header to sort.</p>')

    out.append("<h2>Leaderboard (AUROC)</h2>")
    if report.rows:
        body = []
        for row in report.rows:
            cells = [f"<td>{_e(row.model)}</td>", f"<td>{_e(row.task)}</td>", f"<td>{_e(row.filter)}</td>",
                     _html_num_cell(row.accuracy),
                     f'<td class="num" data-sort="{row.n if row.n is not None else ""}">{_e(_n_text(row))}</td>',
                     f'<td class="num" data-sort="{row.n_missing if row.n_missing is not None else ""}">'
                     f"{_e(_unscored_text(row))}</td>"]
            cells += [_html_metric(row, m, "auroc") for m in methods]
            cells.append(f"<td>{_e(', '.join(row.best) or '–')}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        out += _html_table(["Model", "Task", "Filter", "Acc", "N", "Unscored", *methods, "Best"], body)
    else:
        out.append("<p>No run with uncertainty scores was found.</p>")

    if report.rows:
        out.append("<h2>All metrics</h2>")
        body = []
        for row in report.rows:
            for method, result in row.methods.items():
                best = method in row.best
                name = f"{method} {STAR}" if best else method
                cells = [f"<td>{_e(row.model)}</td>", f"<td>{_e(row.task)}</td>", f"<td>{_e(row.filter)}</td>",
                         f'<td class="method">{_e(name)}</td>', f'<td class="num" data-sort="{result.n}">{result.n}</td>']
                cells += [_html_metric(row, method, m) for m in METRIC_NAMES]
                opening = '<tr class="bestrow">' if best else "<tr>"
                body.append(opening + "".join(cells) + "</tr>")
        header = ["Model", "Task", "Filter", "Method", "N"]
        header += [f"{METRIC_LABELS[m]} {_ARROW.get(m, '↑')}" for m in METRIC_NAMES]
        out += _html_table(header, body)

    if report.rows and report.calibrated:
        out += _html_confidence(report)

    if plots:
        out += _html_plots(report, plots)

    out.append("<h2>Runs without uncertainty scores</h2>")
    if report.missing:
        body = [
            "<tr>" + "".join(f"<td>{_e(v)}</td>" for v in (m.model, m.task, m.filter, m.reason, m.path or "")) + "</tr>"
            for m in report.missing
        ]
        out += _html_table(["Model", "Task", "Filter", "Reason", "File"], body)
    else:
        out.append("<p>None: every run found has uncertainty scores.</p>")

    notes = _notes(report)
    if notes:
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    out.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(out) + "\n"


def render(report: Report, fmt: str, plots: Plots | None = None, base: Path | None = None) -> str:
    if fmt == "md":
        return to_markdown(report, plots, base)
    if fmt == "csv":
        return to_csv(report)
    if fmt == "html":
        return to_html(report, plots)
    raise ValueError(f"unknown report format {fmt!r}; choose from {', '.join(FORMATS)}")
