"""PNG plots per model x task x filter (matplotlib, Agg backend, no display needed).

For each row computed from samples, four files named `<model>__<task>__<filter>__<kind>.png`:
  roc             ROC curve of each method (incorrect answers = positive class), AUROC in the legend;
                  dotted diagonal = random ranking
  risk_coverage   error rate among the k most confident answers vs coverage k/n, with the oracle
                  ordering (dashed) and the overall error rate (dotted) for reference, AURC in the legend
  scores          one panel per method: histograms of its score for correct (green) and incorrect (red)
                  answers, each normalised to area 1 (y = share of that group's answers per unit of score,
                  or per decade on a log axis); bins from `histogram_bins`: log-spaced on a log x axis for
                  positive scores spanning >= 2 decades (SemGrad), else linear (one bin per integer for
                  small integer scores); +-inf counted in the outermost bins
  reliability     error rate in each tenth of the answers ordered by each method's uncertainty (left:
                  most confident; a useful score rises from left to right), with the overall error rate
                  (dotted: a score that knows nothing) and the oracle curve (dashed: all correct answers
                  first), and a caption under the axes saying how to read it
and, with --confidence, a fifth:
  calibration     reliability diagram of each method's calibrated (cross-fitted) P(correct): mean
                  predicted probability vs observed accuracy per equal-mass bin (the bins of the ECE),
                  with the diagonal (perfect calibration); methods without defined probabilities are left out
Rows taken from a results JSON alone (no per-answer scores) get no plots.
"""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

import numpy as np

from ..metrics import reliability_curve as equal_mass_reliability_curve
from .table import Report, Row

__all__ = [
    "write_plots", "roc_curve", "risk_coverage_curve", "reliability_curve", "oracle_reliability_curve",
    "histogram_bins", "PLOT_KINDS", "CONFIDENCE_PLOT_KIND", "PLOT_DESCRIPTIONS",
]

PLOT_KINDS = ("roc", "risk_coverage", "scores", "reliability")
CONFIDENCE_PLOT_KIND = "calibration"  # only with --confidence, after PLOT_KINDS
PLOT_DESCRIPTIONS = {  # alt text and captions in the HTML report
    "roc": "ROC curves (errors caught vs correct answers flagged)",
    "risk_coverage": "risk-coverage curves (error rate of the most confident answers kept)",
    "scores": "score histograms of correct and incorrect answers",
    "reliability": "error rate per tenth of the answers ordered by uncertainty",
    CONFIDENCE_PLOT_KIND: "reliability diagram of the calibrated (cross-fitted) P(correct)",
}
MIN_BINS, MAX_BINS = 5, 30
LOG_RATIO = 100.0  # max/min of positive scores from which histograms get log-spaced bins
RELIABILITY_CAPTION = (
    "Each point: error rate of one tenth of the answers, ordered by the method's uncertainty (left: most "
    "confident). A useful score rises from left to right; dotted: no information; dashed: perfect ranking."
)


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_.")
    return slug[:80] or "x"


def roc_curve(uncertainty: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) with incorrect answers positive; one point per distinct score."""
    order = np.argsort(-uncertainty, kind="stable")
    u = uncertainty[order]
    positive = (correct[order] == 0).astype(float)
    ends = np.r_[np.nonzero(u[1:] != u[:-1])[0], len(u) - 1] if len(u) else np.array([], dtype=int)  # inf ties too
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


def reliability_curve(uncertainty: np.ndarray, correct: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean rank percentile and error rate per equal-count bin of the uncertainty rank (stable sort)."""
    n = len(uncertainty)
    order = np.argsort(uncertainty, kind="stable")
    percentile = (np.arange(n) + 0.5) / n
    errors = 1.0 - correct[order]
    groups = np.array_split(np.arange(n), min(bins, n))
    x = np.array([percentile[g].mean() for g in groups if len(g)])
    y = np.array([errors[g].mean() for g in groups if len(g)])
    return x, y


def oracle_reliability_curve(correct: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """`reliability_curve` of a perfect ranking (all correct answers first): the best a score can reach."""
    return reliability_curve(1.0 - correct, correct, bins)


def _n_bins(x: np.ndarray) -> int:
    """Freedman–Diaconis bin count, at least MIN_BINS, at most n/5 (<= MAX_BINS) so bins are not mostly empty."""
    most = min(MAX_BINS, max(MIN_BINS, len(x) // 5))
    q1, q3 = np.percentile(x, [25, 75])
    if q3 == q1:  # mostly ties: no spread to size bins by
        return most
    return min(most, max(MIN_BINS, math.ceil((x.max() - x.min()) * len(x) ** (1 / 3) / (2 * (q3 - q1)))))


def histogram_bins(values: np.ndarray) -> tuple[np.ndarray, bool]:
    """Bin edges that fit the finite `values`, and whether the x axis should be logarithmic.

    Positive scores spanning >= 2 decades (SemGrad: 1e-4 .. 10) get geometric edges, as equal-width
    bins would lump all but the largest values into one bin; negative or zero values never do.
    Integer scores spanning at most MAX_BINS values get one bin per integer (no empty bins between
    them, wider integer bins beyond). Otherwise equal-width bins over the range. The count of
    geometric and equal-width bins follows Freedman–Diaconis (on log10 values for geometric ones),
    between MIN_BINS and min(n/5, MAX_BINS).
    """
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        finite = np.zeros(1)
    low, high = float(finite.min()), float(finite.max())
    if low > 0 and high / low >= LOG_RATIO:
        return np.geomspace(low, high, _n_bins(np.log10(finite)) + 1), True
    if low == high:
        return np.array([low - 0.5, high + 0.5]), False
    if np.all(finite == np.round(finite)):
        width = math.ceil((high - low + 1) / MAX_BINS)
        return low - 0.5 + width * np.arange(math.ceil((high - low + 1) / width) + 1), False
    return np.linspace(low, high, _n_bins(finite) + 1), False


def _title(row: Row) -> str:
    n = f"N={row.n_scored}" if row.n_scored is not None else ""
    acc = f", acc={row.accuracy:.3f}" if row.accuracy is not None else ""
    return f"{row.model} / {row.task} / {row.filter}\n{n}{acc}"


def _finite_for_hist(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros_like(values)
    return np.clip(values, finite.min(), finite.max())


def _plot_calibration(row: Row, bins: int, plt):
    """Reliability diagram of the cross-fitted probabilities, or None if no method has them."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fitted = [(i, m, r.calibrated, r.correct) for i, (m, r) in enumerate(row.methods.items())
              if r.calibrated is not None and r.calibrated.probabilities is not None]
    if not fitted:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for i, method, calibrated, correct in fitted:  # colour i: the method's colour in the other plots
        mean_p, accuracy, _ = equal_mass_reliability_curve(calibrated.probabilities, correct, bins)
        ax.plot(mean_p, accuracy, "o-", ms=3, color=colors[i % len(colors)],
                label=f"{method} (ECE {_fmt(calibrated.value('ece'))})")
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect calibration")
    ax.set(xlabel=f"mean calibrated P(correct) ({bins} equal-mass bins)", ylabel="observed accuracy",
           xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), title=_title(row))
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _plot_row(row: Row, stem: Path, plt, confidence_bins: int | None = None) -> list[Path]:
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
        bins, log = histogram_bins(values)
        # equal bin widths on the drawn axis, so height = share of the group per unit (per decade if log)
        width = float(np.log10(bins[1] / bins[0]) if log else bins[1] - bins[0])
        for group, colour, label in ((values[result.correct == 1], "tab:green", "correct"),
                                     (values[result.correct == 0], "tab:red", "incorrect")):
            if group.size:
                ax.hist(group, bins=bins, weights=np.full(group.size, 1.0 / (group.size * width)), alpha=0.55,
                        color=colour, label=f"{label} ({group.size})")
        ax.set_title(method, fontsize=9)
        if log:
            ax.set_xscale("log")
        else:
            ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.set_xlabel("uncertainty (log scale)" if log else "uncertainty", fontsize=8)
        ax.set_ylabel(f"density (share of answers per {'decade' if log else 'unit'})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(methods):]:
        ax.set_visible(False)
    fig.suptitle(_title(row).replace("\n", "  "), fontsize=9)
    fig.tight_layout()
    save(fig, "scores")

    # reliability-style: error rate per uncertainty-rank decile
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for i, method in enumerate(methods):
        result = row.methods[method]
        x, y = reliability_curve(result.uncertainty, result.correct)
        ax.plot(x, y, "o-", ms=3, color=color(i), label=method)
    ax.axhline(1.0 - float(first.correct.mean()), color="grey", ls=":", lw=1,
               label="overall error rate (no information)")
    x, y = oracle_reliability_curve(first.correct)
    ax.plot(x, y, "k--", lw=1, label="oracle (perfect ranking)")
    ax.set(xlabel="uncertainty rank percentile (decile bins)", ylabel="observed error rate",
           xlim=(0, 1), ylim=(-0.02, 1.02), title=_title(row))
    ax.legend(fontsize=7)
    fig.text(0.5, 0.015, textwrap.fill(RELIABILITY_CAPTION, 90), ha="center", va="bottom", fontsize=7.5)
    fig.tight_layout(rect=(0, 0.09, 1, 1))  # room for the caption's lines under the axes
    save(fig, "reliability")

    if confidence_bins is not None:
        fig = _plot_calibration(row, confidence_bins, plt)
        if fig is not None:
            save(fig, CONFIDENCE_PLOT_KIND)
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
        bins = report.calibrated.bins if report.calibrated else None
        files = _plot_row(row, directory / name, plt, bins)
        if files:
            written[row.key] = files
    return written
