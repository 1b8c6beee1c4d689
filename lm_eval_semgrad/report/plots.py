"""PNG plots per model x task x filter (matplotlib, Agg backend, no display needed).

For each row computed from samples, four files named `<model>__<task>__<filter>__<kind>.png`:
  roc             ROC curve of each method (incorrect answers = positive class), AUROC in the legend
  risk_coverage   error rate among the k most confident answers vs coverage k/n, with the oracle
                  ordering and the overall error rate for reference, AURC in the legend
  scores          histograms of each method's score, correct vs incorrect answers
  reliability     error rate per decile of each method's uncertainty rank (a good score rises from
                  left to right), overall error rate dashed
Rows taken from a results JSON alone (no per-answer scores) get no plots.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from .table import Report, Row

__all__ = ["write_plots", "roc_curve", "risk_coverage_curve", "PLOT_KINDS"]

PLOT_KINDS = ("roc", "risk_coverage", "scores", "reliability")


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_.")
    return slug[:80] or "x"


def roc_curve(uncertainty: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) with incorrect answers positive; one point per distinct score."""
    order = np.argsort(-uncertainty, kind="stable")
    u = uncertainty[order]
    positive = (correct[order] == 0).astype(float)
    ends = np.r_[np.nonzero(np.diff(u) != 0)[0], len(u) - 1] if len(u) else np.array([], dtype=int)
    tps = np.cumsum(positive)[ends]
    fps = np.cumsum(1.0 - positive)[ends]
    n_pos, n_neg = positive.sum(), len(u) - positive.sum()
    tpr = np.r_[0.0, tps / n_pos] if n_pos else np.r_[0.0, np.zeros_like(tps)]
    fpr = np.r_[0.0, fps / n_neg] if n_neg else np.r_[0.0, np.zeros_like(fps)]
    return fpr, tpr


def risk_coverage_curve(uncertainty: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage k/n, error rate among the k most confident) for k = 1..n (stable sort, as AURC)."""
    order = np.argsort(uncertainty, kind="stable")
    errors = 1.0 - correct[order]
    k = np.arange(1, len(errors) + 1)
    return k / len(errors), np.cumsum(errors) / k


def _reliability(uncertainty: np.ndarray, correct: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean rank percentile and error rate per equal-count bin of the uncertainty rank."""
    n = len(uncertainty)
    order = np.argsort(uncertainty, kind="stable")
    percentile = (np.arange(n) + 0.5) / n
    errors = 1.0 - correct[order]
    groups = np.array_split(np.arange(n), min(bins, n))
    x = np.array([percentile[g].mean() for g in groups if len(g)])
    y = np.array([errors[g].mean() for g in groups if len(g)])
    return x, y


def _title(row: Row) -> str:
    n = f"N={row.n_scored}" if row.n_scored is not None else ""
    acc = f", acc={row.accuracy:.3f}" if row.accuracy is not None else ""
    return f"{row.model} / {row.task} / {row.filter}\n{n}{acc}"


def _finite_for_hist(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros_like(values)
    return np.clip(values, finite.min(), finite.max())


def _plot_row(row: Row, stem: Path, plt) -> list[Path]:
    from matplotlib.ticker import MaxNLocator

    methods = [m for m, r in row.methods.items() if r.uncertainty is not None and len(r.uncertainty) > 0]
    if not methods:
        return []
    paths: list[Path] = []
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def color(i: int) -> str:
        return colors[i % len(colors)]

    def save(fig, kind: str) -> None:
        path = stem.with_name(f"{stem.name}__{kind}.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)

    # ROC
    fig, ax = plt.subplots(figsize=(5, 5))
    for i, method in enumerate(methods):
        result = row.methods[method]
        fpr, tpr = roc_curve(result.uncertainty, result.correct)
        ax.plot(fpr, tpr, color=color(i), label=f"{method} (AUROC {_fmt(result.value('auroc'))})")
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="random")
    ax.set(xlabel="false positive rate (correct flagged)", ylabel="true positive rate (errors caught)",
           xlim=(0, 1), ylim=(0, 1.01), title=_title(row))
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save(fig, "roc")

    # risk-coverage
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for i, method in enumerate(methods):
        result = row.methods[method]
        coverage, risk = risk_coverage_curve(result.uncertainty, result.correct)
        ax.plot(coverage, risk, color=color(i), label=f"{method} (AURC {_fmt(result.value('aurc'))})")
    first = row.methods[methods[0]]
    coverage, oracle = risk_coverage_curve(first.correct * -1.0, first.correct)
    ax.plot(coverage, oracle, "k--", lw=1, label="oracle")
    ax.axhline(1.0 - float(first.correct.mean()), color="grey", ls=":", lw=1, label="random (overall error)")
    ax.set(xlabel="coverage (share of answers kept, most confident first)", ylabel="error rate of kept answers",
           xlim=(0, 1), ylim=(0, 1.01), title=_title(row))
    ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, "risk_coverage")

    # score distributions
    ncols = min(3, len(methods))
    nrows = math.ceil(len(methods) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), squeeze=False)
    for ax, method in zip(axes.flat, methods):
        result = row.methods[method]
        values = _finite_for_hist(result.uncertainty)
        bins = np.histogram_bin_edges(values, bins=min(30, max(5, len(values) // 5)))
        right, wrong = values[result.correct == 1], values[result.correct == 0]
        if right.size:
            ax.hist(right, bins=bins, alpha=0.55, color="tab:green", label=f"correct ({right.size})", density=True)
        if wrong.size:
            ax.hist(wrong, bins=bins, alpha=0.55, color="tab:red", label=f"incorrect ({wrong.size})", density=True)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("uncertainty", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(methods):]:
        ax.set_visible(False)
    fig.suptitle(_title(row).replace("\n", "  "), fontsize=9)
    fig.tight_layout()
    save(fig, "scores")

    # reliability-style: error rate per uncertainty-rank decile
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for i, method in enumerate(methods):
        result = row.methods[method]
        x, y = _reliability(result.uncertainty, result.correct)
        ax.plot(x, y, "o-", ms=3, color=color(i), label=method)
    ax.axhline(1.0 - float(first.correct.mean()), color="grey", ls=":", lw=1, label="overall error rate")
    ax.set(xlabel="uncertainty rank percentile (decile bins)", ylabel="observed error rate",
           xlim=(0, 1), ylim=(-0.02, 1.02), title=_title(row))
    ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, "reliability")
    return paths


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def write_plots(report: Report, directory: str | Path) -> dict[tuple[str, str, str], list[Path]]:
    """Write the PNGs of every row with per-answer scores into `directory`; returns row key -> files."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[tuple[str, str, str], list[Path]] = {}
    used: set[str] = set()
    for row in report.rows:
        if row.source != "samples":
            continue
        name = "__".join(_slug(part) for part in (row.model, row.task, row.filter))
        base, k = name, 2
        while name in used:  # different rows whose names slug alike
            name, k = f"{base}-{k}", k + 1
        used.add(name)
        files = _plot_row(row, directory / name, plt)
        if files:
            written[row.key] = files
    return written
