"""`lm-eval-semgrad report --confidence`: calibrated P(correct) per method, through the console script's parser.

The values are checked against an independent computation written here: scikit-learn's isotonic
regression (or logistic regression for Platt scaling) fitted on the documented stratified folds,
a hand-computed equal-mass ECE, and scikit-learn's Brier score and log loss.
"""

from __future__ import annotations

import base64
import csv
import io
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from harness_fixtures import offline_env
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss
from test_report import BOOT, results_json, rows_for, sample_row, synthetic, write_run

from lm_eval_semgrad import cli as plugin_cli
from lm_eval_semgrad.metrics import calibration_metrics
from lm_eval_semgrad.report.plots import CONFIDENCE_PLOT_KIND, PLOT_KINDS
from lm_eval_semgrad.report.render import CSV_COLUMNS

CONFIDENCE_COLUMNS = ("ece", "brier", "log_loss", "selective_accuracy_50", "selective_accuracy_80",
                      "selective_accuracy_90")
METHODS = ("semgrad", "g_nll")  # continuous scores: no ties, so isotonic fits need no tie rule


def report(argv, capsys) -> tuple[int, str, str]:
    """The `report` subcommand as the console script parses it (`lm_eval_semgrad.cli`)."""
    code = plugin_cli.main(["report", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def csv_lines(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# --------------------------------------------------------------------------- the independent computation


def stratified_folds(c: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The documented fold rule: each class shuffled with the seed (incorrect first), then dealt round-robin."""
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(c == label)) for label in (0, 1)])
    ids = np.empty(len(c), dtype=int)
    ids[order] = np.arange(len(c)) % folds
    return ids


def sklearn_cross_fit(u: np.ndarray, c: np.ndarray, method: str, folds: int, seed: int) -> np.ndarray:
    ids = stratified_folds(c, folds, seed)
    p = np.empty(len(u))
    for fold in range(folds):
        train, test = ids != fold, ids == fold
        if method == "isotonic":
            model = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(u[train], c[train])
            p[test] = model.predict(u[test])
        else:
            model = LogisticRegression(C=1e10, tol=1e-12, max_iter=10_000).fit(u[train, None], c[train])
            p[test] = model.predict_proba(u[test, None])[:, 1]
    return p


def hand_ece(p: np.ndarray, c: np.ndarray, bins: int) -> float:
    groups = np.array_split(np.argsort(p, kind="stable"), bins)
    return float(sum(len(g) / len(p) * abs(c[g].mean() - p[g].mean()) for g in groups))


def hand_selective_accuracy(u: np.ndarray, c: np.ndarray, coverage: float) -> float:
    k = math.ceil(round(coverage * len(u), 9))
    return float(c[np.argsort(u, kind="stable")[:k]].mean())


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data():
    correct, scores = synthetic(n=160, seed=5)
    return correct, {m: scores[m] for m in METHODS}


@pytest.fixture(scope="module")
def one_run(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("confidence")
    correct, scores = data
    write_run(root / "out", "models__tiny-a", "models/tiny-a", {"qa_syn": rows_for(correct, scores)})
    return root / "out"


@pytest.fixture(scope="module")
def edge_runs(tmp_path_factory, data):
    """All answers correct; too few answers for 5 folds; a method without any score; results JSON only."""
    root = tmp_path_factory.mktemp("confidence_edges") / "out"
    correct, scores = data
    n = 30
    write_run(root, "models__all-right", "models/all-right",
              {"qa_all": rows_for(np.ones(n, dtype=int), {m: v[:n] for m, v in scores.items()})})
    write_run(root, "models__few", "models/few", {"qa_few": rows_for(correct[:7], {m: v[:7] for m, v in scores.items()})})
    no_gnll = [sample_row(i, "none", int(correct[i]), {"semgrad": float(scores["semgrad"][i]), "g_nll": None})
               for i in range(len(correct))]
    write_run(root, "models__no-gnll", "models/no-gnll", {"qa_nog": no_gnll})
    results = results_json("models/json-only", {"qa_json": {"contains,none": 0.5, "semgrad_auroc,none": 0.7,
                                                            "semgrad_auroc_stderr,none": 0.02}})
    write_run(root, "models__json-only", "models/json-only", {}, results=results)
    return root


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("options, method, folds, seed, bins", [
    ([], "isotonic", 5, 0, 10),
    (["--confidence_method", "platt", "--confidence_folds", "4", "--confidence_seed", "3", "--confidence_bins", "8"],
     "platt", 4, 3, 8),
], ids=["defaults", "platt-4-folds"])
def test_csv_values_match_an_independent_cross_fit(one_run, data, tmp_path, capsys, options, method, folds, seed, bins):
    target = tmp_path / "board.csv"
    code, _, err = report([one_run, "--confidence", *options, "--format", "csv", "-o", target,
                           "--bootstrap_iters", BOOT, "--seed", 7], capsys)
    assert code == 0, err
    lines = {line["method"]: line for line in csv_lines(target.read_text())}
    assert list(lines) == list(METHODS)
    correct, scores = data
    tolerance = 1e-12 if method == "isotonic" else 1e-5
    for name in METHODS:
        line, u = lines[name], scores[name]
        p = sklearn_cross_fit(u, correct, method, folds, seed)
        assert float(line["ece"]) == pytest.approx(hand_ece(p, correct, bins), abs=tolerance)
        assert float(line["brier"]) == pytest.approx(brier_score_loss(correct, p), abs=tolerance)
        clipped = np.clip(p, 1e-15, 1 - 1e-15)
        assert float(line["log_loss"]) == pytest.approx(sk_log_loss(correct, clipped, labels=[0, 1]), abs=10 * tolerance)
        for k in (50, 80, 90):
            assert float(line[f"selective_accuracy_{k}"]) == hand_selective_accuracy(u, correct, k / 100)
        # the intervals come from the report's --bootstrap_iters and --seed
        expected = calibration_metrics(u, correct, method=method, folds=folds, seed=seed, bins=bins, n_resamples=BOOT,
                                       bootstrap_seed=7)
        for column in CONFIDENCE_COLUMNS:
            assert float(line[f"{column}_low"]) == expected[column].low
            assert float(line[f"{column}_high"]) == expected[column].high
            assert float(line[f"{column}_low"]) <= float(line[f"{column}_high"])
        assert line["confidence_note"] == ""


def test_point_estimates_without_bootstrap_equal_those_with_it(one_run, capsys):
    code, with_ci, err = report([one_run, "--confidence", "--format", "csv", "--bootstrap_iters", BOOT], capsys)
    assert code == 0, err
    code, without_ci, err = report([one_run, "--confidence", "--format", "csv", "--bootstrap_iters", 0], capsys)
    assert code == 0, err
    for a, b in zip(csv_lines(with_ci), csv_lines(without_ci)):
        for column in CONFIDENCE_COLUMNS:
            assert float(a[column]) == pytest.approx(float(b[column]), abs=1e-15)
            assert b[f"{column}_low"] == b[f"{column}_high"] == b[f"{column}_stderr"] == ""


def test_csv_column_order_and_output_without_confidence_unchanged(one_run, capsys):
    _, plain, _ = report([one_run, "--format", "csv", "--bootstrap_iters", 0], capsys)
    assert plain.splitlines()[0].split(",") == CSV_COLUMNS
    _, calibrated, _ = report([one_run, "--confidence", "--format", "csv", "--bootstrap_iters", 0], capsys)
    header = calibrated.splitlines()[0].split(",")
    extra = [f"{c}{s}" for c in CONFIDENCE_COLUMNS for s in ("", "_low", "_high", "_stderr")] + ["confidence_note"]
    assert [c for c in header if c not in CSV_COLUMNS] == extra
    assert [c for c in header if c in CSV_COLUMNS] == CSV_COLUMNS
    assert header.index("ece") == header.index("spearman_stderr") + 1
    _, markdown, _ = report([one_run, "--bootstrap_iters", 0], capsys)
    assert "Calibrated confidence" not in markdown


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("option, value", [
    ("--confidence_method", "platt"), ("--confidence_folds", "3"), ("--confidence_seed", "0"),
    ("--confidence_bins", "10"),
])
def test_a_confidence_option_without_confidence_is_an_error_naming_the_fix(one_run, capsys, option, value):
    code, out, err = report([one_run, option, value], capsys)
    assert code == 2 and out == ""
    assert f"error: {option} takes effect only with --confidence: add --confidence" in err


@pytest.mark.parametrize("option, value, message", [
    ("--confidence_folds", "1", "--confidence_folds must be >= 2, got 1"),
    ("--confidence_bins", "0", "--confidence_bins must be >= 1, got 0"),
    ("--confidence_seed", "-1", "--confidence_seed must be >= 0, got -1"),
])
def test_unusable_fold_and_bin_counts_are_errors(one_run, capsys, option, value, message):
    code, out, err = report([one_run, "--confidence", option, value], capsys)
    assert code == 2 and out == "" and message in err


def test_unknown_method_is_refused_by_the_parser(one_run, capsys):
    with pytest.raises(SystemExit) as exc:
        report([one_run, "--confidence", "--confidence_method", "beta"], capsys)
    assert exc.value.code == 2
    assert "invalid choice: 'beta'" in capsys.readouterr().err


# --------------------------------------------------------------------------- undefined cells


def test_undefined_cells_are_empty_with_the_reason_never_zero(edge_runs, capsys):
    code, out, err = report([edge_runs, "--confidence", "--format", "csv", "--bootstrap_iters", BOOT], capsys)
    assert code == 0, err
    lines = {(line["model"], line["method"]): line for line in csv_lines(out) if line["has_uncertainty_scores"] == "yes"}

    for method in METHODS:  # all correct: no probabilities, selective accuracy still defined
        line = lines[("models/all-right", method)]
        assert line["ece"] == line["brier"] == line["log_loss"] == line["ece_low"] == ""
        assert "undefined because all 30 answers are correct" in line["confidence_note"]
        assert float(line["selective_accuracy_90"]) == 1.0

        line = lines[("models/few", method)]  # 7 answers, 5 folds
        assert all(line[c] == "" for c in CONFIDENCE_COLUMNS)
        assert "too few answers for --confidence_folds 5" in line["confidence_note"]
        assert "at least 10" in line["confidence_note"] and "has 7" in line["confidence_note"]

    line = lines[("models/json-only", "semgrad")]
    assert all(line[c] == "" for c in CONFIDENCE_COLUMNS) and "results JSON only" in line["confidence_note"]
    assert float(lines[("models/no-gnll", "semgrad")]["ece"]) >= 0
    assert ("models/no-gnll", "g_nll") not in lines  # as in the other metrics: no line for a method without scores


def test_markdown_says_why_cells_are_undefined(edge_runs, capsys):
    code, out, err = report([edge_runs, "--confidence", "--bootstrap_iters", 0], capsys)
    assert code == 0, err
    table = out.split("## Calibrated confidence", 1)[1].split("\n## ", 1)[0]
    line = next(t for t in table.splitlines() if t.startswith("| models/no-gnll | qa_nog | none | g_nll |"))
    assert line.count("| — ") == len(CONFIDENCE_COLUMNS) and "no answer in this row has this score" in line
    line = next(t for t in table.splitlines() if t.startswith("| models/all-right | qa_all | none | semgrad |"))
    assert line.count("| — ") == 3 and "| 1.000 (CI n/a) |" not in line and "all 30 answers are correct" in line
    line = next(t for t in table.splitlines() if t.startswith("| models/few |"))
    assert "--confidence_folds 5" in line
    json_only = [t for t in table.splitlines() if t.startswith("| models/json-only |")]
    assert len(json_only) == 1 and "| semgrad |" in json_only[0] and "results JSON only" in json_only[0]
    assert "| 0.000" not in table


# --------------------------------------------------------------------------- text, HTML and plots


def test_markdown_states_method_folds_seed_bins_and_fixed_map(one_run, data, capsys):
    code, out, err = report([one_run, "--confidence", "--confidence_bins", "7", "--confidence_folds", "4",
                             "--confidence_seed", "11", "--bootstrap_iters", BOOT, "--seed", 5], capsys)
    assert code == 0, err
    assert out.index("## All metrics") < out.index("## Calibrated confidence") < out.index("## Runs without")
    section = out.split("## Calibrated confidence", 1)[1]
    assert "isotonic map" in section and "4 folds stratified by correctness (fold seed 11)" in section
    assert "ECE over 7 equal-mass bins" in section and "hold the fitted map fixed" in section
    assert f"({BOOT} resamples, seed 5)" in section
    header = "| Model | Task | Filter | Method | N | ECE ↓ | Brier ↓ | Log loss ↓ | Sel. acc @50% ↑ |"
    assert header in section
    correct, scores = data
    p = sklearn_cross_fit(scores["semgrad"], correct, "isotonic", 4, 11)
    line = next(t for t in section.splitlines() if t.startswith("| models/tiny-a | qa_syn | none | semgrad | 160 |"))
    assert f"| {hand_ece(p, correct, 7):.3f} [" in line


def test_html_has_the_table_and_the_reliability_diagram(one_run, tmp_path, capsys):
    plots, target = tmp_path / "plots", tmp_path / "board.html"
    code, _, err = report([one_run, "--confidence", "--plots", plots, "--format", "html", "-o", target,
                           "--bootstrap_iters", 0], capsys)
    assert code == 0, err
    page = target.read_text()
    assert "<h2>Calibrated confidence</h2>" in page and page.count('<table class="sortable">') == 3
    assert "10 equal-mass bins" in page and "No intervals (--bootstrap_iters 0)." in page
    calibration = plots / f"models_tiny-a__qa_syn__none__{CONFIDENCE_PLOT_KIND}.png"
    embedded = re.findall(r'base64,([A-Za-z0-9+/=]+)" alt="([^"]+)"', page)
    assert len(embedded) == len(PLOT_KINDS) + 1
    data, alt = embedded[-1]
    assert base64.b64decode(data) == calibration.read_bytes()
    assert alt.startswith("reliability diagram of the calibrated (cross-fitted) P(correct)")


def test_plots_add_a_calibration_diagram_per_row_and_keep_the_others(one_run, tmp_path, capsys):
    plots = tmp_path / "plots"
    code, out, err = report([one_run, "--confidence", "--plots", plots, "--bootstrap_iters", 0], capsys)
    assert code == 0, err
    names = {p.name for p in plots.iterdir()}
    assert names == {f"models_tiny-a__qa_syn__none__{kind}.png" for kind in (*PLOT_KINDS, CONFIDENCE_PLOT_KIND)}
    content = (plots / f"models_tiny-a__qa_syn__none__{CONFIDENCE_PLOT_KIND}.png").read_bytes()
    assert content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) > 2000
    assert f"[{CONFIDENCE_PLOT_KIND}](" in out and f"__none__{CONFIDENCE_PLOT_KIND}.png)" in out
    code, _, err = report([one_run, "--plots", tmp_path / "plain", "--bootstrap_iters", 0], capsys)
    assert code == 0 and len(list((tmp_path / "plain").iterdir())) == len(PLOT_KINDS)


def test_no_calibration_diagram_where_no_probability_is_defined(edge_runs, tmp_path, capsys):
    plots = tmp_path / "plots"
    code, _, err = report([edge_runs, "--confidence", "--plots", plots, "--bootstrap_iters", 0], capsys)
    assert code == 0, err
    diagrams = sorted(p.name for p in plots.glob(f"*__{CONFIDENCE_PLOT_KIND}.png"))
    assert diagrams == [f"models_no-gnll__qa_nog__none__{CONFIDENCE_PLOT_KIND}.png"]


# --------------------------------------------------------------------------- the installed command


@pytest.mark.e2e
def test_console_script_report_with_confidence(one_run, data, tmp_path):
    script = Path(sys.executable).with_name("lm-eval-semgrad")
    assert script.exists(), f"lm-eval-semgrad is not installed next to {sys.executable}"
    target = tmp_path / "board.csv"
    result = subprocess.run(
        [str(script), "report", str(one_run), "--confidence", "--confidence_folds", "4", "--format", "csv",
         "-o", str(target), "--bootstrap_iters", "50"],
        env=offline_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = {line["method"]: line for line in csv_lines(target.read_text())}
    correct, scores = data
    p = sklearn_cross_fit(scores["semgrad"], correct, "isotonic", 4, 0)
    assert float(lines["semgrad"]["brier"]) == pytest.approx(brier_score_loss(correct, p), abs=1e-12)
    assert float(lines["semgrad"]["ece"]) == pytest.approx(hand_ece(p, correct, 10), abs=1e-12)
