"""`lm-eval-semgrad report`: metrics recomputed from synthetic sample logs, output formats, plots, damaged files."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
from pathlib import Path

import matplotlib.figure
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score

from lm_eval_semgrad import cli as plugin_cli
from lm_eval_semgrad.report import ReportError, build_report
from lm_eval_semgrad.report import plots as plots_module
from lm_eval_semgrad.report.cli import main as report_main
from lm_eval_semgrad.report.plots import (
    PLOT_KINDS,
    histogram_bins,
    oracle_reliability_curve,
    reliability_curve,
    roc_curve,
)

TS = "2025-01-02T03-04-05.678901"
TS_LATER = "2025-02-02T03-04-05.678901"
METHODS = ("semgrad", "hybridgrad", "exgrad", "g_nll", "mean_entropy", "max_prob_nll", "response_len")
BOOT = 200  # resamples in tests: enough for a CI, fast


def synthetic(n: int = 200, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Correctness labels and one score per method with different amounts of signal (and ties)."""
    rng = np.random.default_rng(seed)
    correct = (rng.random(n) < 0.6).astype(int)
    wrong = 1 - correct
    scores = {
        "semgrad": wrong * 1.0 + rng.normal(0, 0.7, n),
        "hybridgrad": wrong * 0.5 + rng.normal(0, 0.7, n),
        "exgrad": rng.normal(0, 1, n),
        "g_nll": wrong * 0.8 + rng.normal(0, 0.7, n),
        "mean_entropy": rng.normal(0, 1, n) - wrong * 0.2,
        "max_prob_nll": np.round(wrong + rng.normal(0, 1, n), 1),  # coarse: many ties
        "response_len": rng.integers(1, 8, n).astype(float),  # integer: heavy ties
    }
    return correct, scores


def sample_row(doc_id: int, filter_name: str, correct: int | None, scores: dict | None, **extra) -> dict:
    row = {
        "doc_id": doc_id, "doc": {"q": f"question {doc_id}"}, "target": "x", "resps": [["answer"]],
        "filtered_resps": ["answer"], "filter": filter_name, "metrics": ["contains"],
        "contains": float(correct or 0),
    }
    if correct is not None or scores is not None:
        row["uncertainty"] = {
            "scores": scores, "correct": correct, "correctness": "contains >= 0.5", "response_ids": [1, 2],
            "prompt_len": 10, "position": -3, "layers": "upper_half",
        }
    row.update(extra)
    return row


def results_json(model_name: str, tasks: dict[str, dict], *, model: str = "semgrad-hf", model_args=None,
                 n: int = 200) -> dict:
    return {
        "results": {task: {"alias": task, **values} for task, values in tasks.items()},
        "configs": {task: {"task": task, "output_type": "generate_until", "metric_list": [{"metric": "contains"}]}
                    for task in tasks},
        "config": {"model": model, "model_args": model_args or {"pretrained": model_name, "semgrad_batch_size": 4}},
        "model_name": model_name, "n-samples": {task: {"original": n, "effective": n} for task in tasks},
        "higher_is_better": {},
    }


def write_run(root: Path, folder: str, model_name: str, samples: dict[str, list[dict]], *, ts: str = TS,
              model: str = "semgrad-hf", model_args=None, results: dict | None = None) -> Path:
    """One lm-eval output folder: results_<ts>.json plus samples_<task>_<ts>.jsonl per task."""
    directory = root / folder
    directory.mkdir(parents=True, exist_ok=True)
    data = results if results is not None else results_json(
        model_name, {task: {"contains,none": 0.5} for task in samples}, model=model, model_args=model_args
    )
    (directory / f"results_{ts}.json").write_text(json.dumps(data))
    for task, rows in samples.items():
        (directory / f"samples_{task}_{ts}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return directory


def rows_for(correct, scores, filter_name="none") -> list[dict]:
    return [
        sample_row(i, filter_name, int(correct[i]), {m: float(v[i]) for m, v in scores.items()})
        for i in range(len(correct))
    ]


def hand_aurc(u: np.ndarray, c: np.ndarray) -> float:
    order = np.argsort(u, kind="stable")
    errors = 1 - c[order]
    return float(np.mean([errors[: k + 1].mean() for k in range(len(u))]))


def hand_prr(u: np.ndarray, c: np.ndarray) -> float:
    def kept_mean(order):
        q = c[order].astype(float)
        return np.mean([q[: len(q) - j].mean() for j in range(len(q))])

    raw = kept_mean(np.argsort(u, kind="stable"))
    oracle = kept_mean(np.argsort(-c, kind="stable"))
    random = c.mean()
    return float((raw - random) / (oracle - random))


@pytest.fixture(scope="module")
def data():
    return synthetic()


@pytest.fixture(scope="module")
def one_run(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("report")
    correct, scores = data
    rows = rows_for(correct, scores) + rows_for(correct[::-1], {m: v[::-1] for m, v in scores.items()}, "strict")
    write_run(root / "out", "models__tiny-a", "models/tiny-a", {"qa_syn": rows})
    return root / "out"


def run_report(argv, capsys) -> tuple[int, str, str]:
    code = report_main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- metric values


def test_metrics_match_sklearn_scipy_and_hand_computations(one_run, data):
    correct, scores = data
    report = build_report([one_run], n_bootstrap=BOOT, seed=7)
    assert [(r.model, r.task, r.filter) for r in report.rows] == [
        ("models/tiny-a", "qa_syn", "none"), ("models/tiny-a", "qa_syn", "strict"),
    ]
    row = report.rows[0]
    assert (row.n, row.n_scored, row.n_missing) == (200, 200, 0)
    assert row.accuracy == pytest.approx(correct.mean())
    assert list(row.methods) == list(METHODS)  # every score in the samples, in the standard order
    for method in METHODS:
        u = scores[method]
        result = row.methods[method]
        assert result.n == 200
        assert result.value("auroc") == pytest.approx(roc_auc_score(1 - correct, u), abs=1e-12)
        assert result.value("auprc") == pytest.approx(average_precision_score(1 - correct, u), abs=1e-12)
        assert result.value("aurc") == pytest.approx(hand_aurc(u, correct), abs=1e-12)
        assert result.value("prr") == pytest.approx(hand_prr(u, correct), abs=1e-9)
        assert result.value("spearman") == pytest.approx(spearmanr(u, 1 - correct).statistic, abs=1e-12)
        for metric, ci in result.metrics.items():
            assert ci.low <= ci.value <= ci.high, (method, metric)
            assert ci.n_resamples_used == BOOT and ci.stderr > 0
    aurocs = {m: roc_auc_score(1 - correct, scores[m]) for m in METHODS}
    assert row.best == [max(aurocs, key=aurocs.get)] == ["semgrad"]
    aurcs = {m: hand_aurc(scores[m], correct) for m in METHODS}
    assert row.best_per_metric["aurc"] == [min(aurcs, key=aurcs.get)]  # lower is better
    # the second filter holds the same answers in another order: order-free metrics agree
    other = report.rows[1].methods["semgrad"]
    assert other.value("auroc") == pytest.approx(row.methods["semgrad"].value("auroc"))


def test_seed_makes_cis_reproducible_and_methods_selectable(one_run):
    a = build_report([one_run], n_bootstrap=BOOT, seed=3, methods=["g_nll", "semgrad"])
    b = build_report([one_run], n_bootstrap=BOOT, seed=3, methods=["g_nll", "semgrad"])
    assert list(a.rows[0].methods) == ["g_nll", "semgrad"]
    assert a.rows[0].methods["g_nll"].metrics == b.rows[0].methods["g_nll"].metrics


# --------------------------------------------------------------------------- output formats


def test_markdown_has_rows_cis_and_best_marks(one_run, data, capsys):
    code, out, err = run_report([one_run, "--bootstrap_iters", BOOT], capsys)
    assert code == 0, err
    assert "## Leaderboard (AUROC)" in out and "## All metrics" in out
    leaderboard = [line for line in out.splitlines() if line.startswith("| models/tiny-a | qa_syn |")]
    assert len(leaderboard) == 2 + 2 * len(METHODS)
    assert "| models/tiny-a | qa_syn | none | 0.5" in out or "| models/tiny-a | qa_syn | none | 0.6" in out
    best_lines = [line for line in out.splitlines() if "★" in line and line.startswith("|")]
    assert len(best_lines) == 2 and all("| semgrad ★ |" in line for line in best_lines)
    semgrad_line = next(line for line in out.splitlines() if "| none | semgrad ★ |" in line)
    correct, scores = data
    assert f"**{roc_auc_score(1 - correct, scores['semgrad']):.3f}** [" in semgrad_line
    assert "None: every run found has uncertainty scores." in out


def test_csv_is_long_form_with_cis_and_one_best_method_per_row(one_run, data, tmp_path, capsys):
    target = tmp_path / "board.csv"
    code, _, err = run_report([one_run, "--output_path", target, "--bootstrap_iters", BOOT], capsys)  # format from suffix
    assert code == 0, err
    lines = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(lines) == 2 * len(METHODS)
    correct, scores = data
    for line in lines:
        assert line["has_uncertainty_scores"] == "yes" and line["source"] == "samples"
        assert float(line["auroc_low"]) <= float(line["auroc"]) <= float(line["auroc_high"])
        assert line["n"] == "200" and line["n_unscored"] == "0"
    none_rows = {line["method"]: line for line in lines if line["filter"] == "none"}
    for method in METHODS:
        assert float(none_rows[method]["auroc"]) == pytest.approx(roc_auc_score(1 - correct, scores[method]))
    assert [m for m, line in none_rows.items() if line["best_by_auroc"] == "yes"] == ["semgrad"]


def test_html_is_self_contained_and_sortable(one_run, tmp_path, capsys):
    target = tmp_path / "board.html"
    code, _, err = run_report([one_run, "--format", "html", "-o", target, "--bootstrap_iters", "0"], capsys)
    assert code == 0, err
    page = target.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count('<table class="sortable">') == 2  # leaderboard and all metrics (no runs without scores)
    assert "addEventListener('click'" in page and 'data-sort="' in page
    assert "<script src" not in page and "<link" not in page and "http" not in page
    assert '<tr class="bestrow">' in page and "semgrad ★" in page
    assert "no confidence intervals (--bootstrap 0)" in page


def test_plots_are_written_per_row(one_run, tmp_path, capsys):
    plots = tmp_path / "plots"
    code, out, err = run_report([one_run, "--plots", plots, "--bootstrap_iters", "0", "--methods", "semgrad,g_nll"], capsys)
    assert code == 0, err
    files = sorted(p.name for p in plots.iterdir())
    expected = {f"models_tiny-a__qa_syn__{f}__{kind}.png" for f in ("none", "strict")
                for kind in ("roc", "risk_coverage", "scores", "reliability")}
    assert set(files) == expected
    for name in files:
        content = (plots / name).read_bytes()
        assert content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) > 2000
    assert "## Plots" in out and "models_tiny-a__qa_syn__none__roc.png" in out


def test_html_embeds_every_plot_and_links_no_file(one_run, tmp_path, capsys):
    """Replaces the old `<a href=...png>` links: the page must show its plots when moved alone."""
    plots, target = tmp_path / "plots", tmp_path / "page" / "board.html"
    code, _, err = run_report([one_run, "--plots", plots, "--format", "html", "-o", target, "--bootstrap_iters", "0",
                               "--methods", "semgrad,g_nll"], capsys)
    assert code == 0, err
    page = target.read_text()
    embedded = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]+)"', page)
    files = sorted(plots.iterdir())
    assert len(files) == 8 and page.count("data:image/png;base64,") == len(files) == len(embedded)
    assert sorted(base64.b64decode(data) for data, _ in embedded) == sorted(p.read_bytes() for p in files)
    # grouped: each row's heading, then that row's four plots, alt text naming the plot and the row
    sections = re.split(r"<h3>models/tiny-a / qa_syn / (none|strict)</h3>", page.split("<h2>Plots</h2>", 1)[1])
    assert sections[1::2] == ["none", "strict"]
    for name, section in zip(sections[1::2], sections[2::2]):
        found = re.findall(r'base64,([A-Za-z0-9+/=]+)" alt="([^"]+)"', section)
        assert [base64.b64decode(data) for data, _ in found] == [
            (plots / f"models_tiny-a__qa_syn__{name}__{kind}.png").read_bytes() for kind in PLOT_KINDS
        ]
        assert all(alt.endswith(f": models/tiny-a / qa_syn / {name}") for _, alt in found)
    assert "max-width" in page
    assert ".png" not in page and not re.search(r'(href|src)="(?!data:)', page)  # nothing beside the page
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert "http" not in text and "<link" not in text
    code, out, _ = run_report([one_run, "--plots", plots, "--bootstrap_iters", "0", "--methods", "semgrad"], capsys)
    assert code == 0 and "data:image" not in out  # markdown still links the files
    assert "[roc](" in out and "models_tiny-a__qa_syn__none__roc.png)" in out


def test_histogram_bins_log_for_positive_decades_linear_otherwise():
    decades = 10 ** np.linspace(-4, 1, 200)
    edges, log = histogram_bins(np.r_[decades, np.inf])  # inf does not spoil the rule (clipped when drawn)
    assert log and edges[0] == decades.min() and edges[-1] == decades.max()
    assert np.allclose(edges[1:] / edges[:-1], edges[1] / edges[0]) and 5 <= len(edges) - 1 <= 30

    narrow = np.random.default_rng(0).normal(5, 1, 200)  # positive, but max/min < 100
    edges, log = histogram_bins(narrow)
    assert not log and edges[0] == narrow.min() and edges[-1] == narrow.max()
    assert np.allclose(np.diff(edges), edges[1] - edges[0]) and 5 <= len(edges) - 1 <= 30

    for values in (np.r_[-decades, decades], np.r_[-1e-3, decades], np.r_[0.0, decades]):
        edges, log = histogram_bins(values)
        assert not log and np.allclose(np.diff(edges), edges[1] - edges[0])
    edges, log = histogram_bins(np.array([1.0, 3, 3, 7, 2]))  # small integers: one bin per value
    assert not log and edges.tolist() == [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5]
    assert histogram_bins(np.full(4, 2.5))[0].tolist() == [2.0, 3.0]
    rng = np.random.default_rng(1)  # bin count: Freedman–Diaconis between 5 and min(n/5, 30)
    assert [len(histogram_bins(rng.normal(size=n))[0]) - 1 for n in (7, 100, 100_000)] == [5, 11, 30]  # n/5: 20


def test_oracle_reliability_curve_by_hand():
    correct = np.array([0, 1] * 6 + [1] * 8)  # 20 answers, 14 correct, shuffled
    x, y = oracle_reliability_curve(correct)
    assert np.allclose(x, np.arange(0.05, 1, 0.1))  # two answers per tenth, mean rank percentile
    assert y.tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]
    x, y = oracle_reliability_curve(np.array([1, 0, 1, 1, 0]), bins=2)  # uneven split: 3 + 2 answers
    assert np.allclose(x, [0.3, 0.8]) and y.tolist() == [0, 1]
    _, y = reliability_curve(np.array([5.0, 4, 3, 2, 1]), np.array([1, 0, 1, 1, 0]), bins=2)
    assert np.allclose(y, [1 / 3, 1 / 2])  # most confident first: answers 5, 4, 3 then 2, 1


def test_roc_curve_keeps_infinite_ties_together():
    fpr, tpr = roc_curve(np.array([np.inf, np.inf, 0.0]), np.array([0, 1, 1]))
    assert fpr.tolist() == [0, 0.5, 1] and tpr.tolist() == [0, 1, 1]


def test_plot_axes_caption_and_reference_lines(tmp_path, data, monkeypatch):
    correct, scores = data
    spread = 10 ** (np.random.default_rng(1).normal(-2, 1, len(correct)) + (1 - correct))  # ~1e-5 .. 1e2
    write_run(tmp_path / "runs", "m", "org/m", {"qa_syn": rows_for(correct, {"semgrad": spread,
                                                                            "g_nll": scores["g_nll"]})})
    figures = {}
    original = matplotlib.figure.Figure.savefig

    def keep(fig, path, **kwargs):
        original(fig, path, **kwargs)
        figures[Path(path).stem.rsplit("__", 1)[-1]] = fig

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    written = plots_module.write_plots(build_report([tmp_path / "runs"], n_bootstrap=0), tmp_path / "plots")
    assert written[("org/m", "qa_syn", "none")][-1].name == "org_m__qa_syn__none__reliability.png"

    semgrad_ax, g_nll_ax = figures["scores"].axes[:2]
    assert semgrad_ax.get_xscale() == "log" and g_nll_ax.get_xscale() == "linear"  # g_nll has negative values
    assert all(ax.get_ylabel().startswith("density (share of answers per ") for ax in (semgrad_ax, g_nll_ax))

    fig = figures["reliability"]
    (ax,) = fig.axes
    labels = [line.get_label() for line in ax.get_lines()]
    assert "oracle (perfect ranking)" in labels and "overall error rate (no information)" in labels
    oracle = ax.get_lines()[labels.index("oracle (perfect ranking)")]
    assert np.allclose(oracle.get_ydata(), oracle_reliability_curve(correct.astype(float))[1])
    (caption,) = [t for t in fig.texts if " ".join(t.get_text().split()) == plots_module.RELIABILITY_CAPTION]
    renderer = FigureCanvasAgg(fig).get_renderer()  # the figure was closed after saving: a fresh canvas
    box, axes_box, page = caption.get_window_extent(renderer), ax.get_tightbbox(renderer), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 < axes_box.y0  # not cut off


def test_subcommand_table_wiring(one_run, capsys):
    assert plugin_cli.main(["report", str(one_run), "--bootstrap_iters", "0", "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("model,task,filter,method,")


# --------------------------------------------------------------------------- runs and answers without scores


def test_runs_without_scores_are_listed_not_skipped(tmp_path, data, capsys):
    correct, scores = data
    root = tmp_path / "runs"
    # a stock `hf` run: samples without an "uncertainty" field
    write_run(root, "hf_model", "org/stock", {"qa_syn": [sample_row(i, "none", None, None) for i in range(5)]},
              model="hf", model_args={"pretrained": "org/stock"})
    # a semgrad-hf run where nothing was scored
    write_run(root, "nulls", "org/nulls", {"qa_syn": [sample_row(i, "none", 1, None) for i in range(6)]})
    # partial: 3 answers unscored, one row without the field at all
    rows = rows_for(correct[:40], {m: v[:40] for m, v in scores.items()})
    for i in (1, 5, 9):
        rows[i]["uncertainty"]["scores"] = None
    del rows[12]["uncertainty"]
    write_run(root, "partial", "org/partial", {"qa_syn": rows})
    # a results JSON of a stock run without samples
    write_run(root, "hf_nosamples", "org/plain", {}, results=results_json("org/plain", {"qa_mc": {"acc,none": 0.3}},
                                                                          model="hf"))

    code, out, err = run_report([root, "--bootstrap_iters", BOOT], capsys)
    assert code == 0, err
    section = out.split("## Runs without uncertainty scores", 1)[1]
    assert "| org/stock [model=hf] | qa_syn | none | a `hf` run, not semgrad-hf" in section
    assert '| org/nulls | qa_syn | none | all 6 answers have "scores": null' in section
    assert "| org/plain [model=hf] | qa_mc | * | a `hf` run, not semgrad-hf; no samples file" in section
    for name in ("org/stock [model=hf]", "org/nulls", "org/plain [model=hf]"):
        assert f"no uncertainty scores: {name} / " in err
    assert "partial scores: org/partial / qa_syn / none: 36 of 40 answers scored, 4 without scores" in err
    assert "| org/partial | qa_syn | none | " in out and "| 40 | 4 |" in out
    assert "1 of 40 rows have no 'uncertainty' field" in err  # the odd row is named, not hidden

    report = build_report([root], n_bootstrap=0)
    (row,) = report.rows
    assert (row.n, row.n_scored, row.n_missing) == (40, 36, 4)
    keep = np.ones(40, dtype=bool)
    keep[[1, 5, 9, 12]] = False
    assert row.methods["semgrad"].value("auroc") == pytest.approx(
        roc_auc_score(1 - correct[:40][keep], scores["semgrad"][:40][keep])
    )
    code, out, _ = run_report([root, "--bootstrap_iters", "0", "--format", "csv"], capsys)
    flagged = [line for line in csv.DictReader(io.StringIO(out)) if line["has_uncertainty_scores"] == "no"]
    assert {line["model"] for line in flagged} == {"org/stock [model=hf]", "org/nulls", "org/plain [model=hf]"}
    assert all(line["note"] for line in flagged)


def test_results_json_alone_gives_the_runs_metrics_without_cis(tmp_path, capsys):
    values = {"contains,none": 0.55, "semgrad_auroc,none": 0.71, "semgrad_auroc_stderr,none": 0.03,
              "semgrad_aurc,none": 0.2, "semgrad_aurc_stderr,none": "N/A", "g_nll_auroc,none": 0.65,
              "g_nll_auroc_stderr,none": 0.04}
    write_run(tmp_path, "m", "org/model", {}, results=results_json("org/model", {"qa_syn": values}, n=123))
    report = build_report([tmp_path], n_bootstrap=BOOT)
    (row,) = report.rows
    assert row.source == "results" and row.n == 123 and row.n_scored is None and row.accuracy == 0.55
    semgrad = row.methods["semgrad"].metrics
    assert semgrad["auroc"].value == 0.71 and semgrad["auroc"].stderr == 0.03 and math.isnan(semgrad["auroc"].low)
    assert math.isnan(semgrad["aurc"].stderr) and math.isnan(semgrad["prr"].value)
    assert row.best == ["semgrad"]
    code, out, err = run_report([tmp_path], capsys)
    assert code == 0
    assert "**0.710** (CI n/a)" in out and "no samples file" in err


# --------------------------------------------------------------------------- damaged files


def test_truncated_last_jsonl_line_warns_with_file_and_line(tmp_path, data, capsys):
    correct, scores = data
    directory = write_run(tmp_path, "m", "org/m", {"qa_syn": rows_for(correct[:30], {"semgrad": scores["semgrad"][:30]})})
    path = directory / f"samples_qa_syn_{TS}.jsonl"
    path.write_text(path.read_text() + '{"doc_id": 30, "filter": "none", "uncer')  # interrupted write
    code, out, err = run_report([tmp_path, "--bootstrap_iters", "0"], capsys)
    assert code == 0
    assert f"{path}:31: last line is not complete JSON" in err
    assert "| org/m | qa_syn | none | " in out and "| 30 | 0 |" in out


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda p: p.write_text('{"doc_id": 0}\n{not json}\n{"doc_id": 2}\n'), ":2: not valid JSON"),
        (lambda p: p.write_text('{"doc_id": 0}\n[1, 2]\n'), ":2: expected a JSON object per line, found list"),
    ],
)
def test_corrupt_jsonl_is_an_error_naming_file_and_line(tmp_path, capsys, damage, expected):
    directory = write_run(tmp_path, "m", "org/m", {"qa_syn": []})
    path = directory / f"samples_qa_syn_{TS}.jsonl"
    damage(path)
    code, _, err = run_report([tmp_path], capsys)
    assert code == 2
    assert f"error: {path}{expected}" in err
    with pytest.raises(ReportError, match=str(path)):
        build_report([tmp_path])


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"results": {"qa": ', "not valid JSON"),
        ('{"config": {}}', 'no "results" object'),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_results_json_is_an_error_naming_the_file(tmp_path, capsys, content, expected):
    directory = tmp_path / "m"
    directory.mkdir()
    path = directory / f"results_{TS}.json"
    path.write_text(content)
    code, _, err = run_report([tmp_path], capsys)
    assert code == 2
    assert f"error: {path}: {expected}" in err


def test_rows_without_correct_label_count_as_unscored(tmp_path, data, capsys):
    correct, scores = data
    rows = rows_for(correct[:20], {"semgrad": scores["semgrad"][:20]})
    del rows[3]["uncertainty"]["correct"]
    rows[4]["uncertainty"]["correct"] = "yes"
    directory = write_run(tmp_path, "m", "org/m", {"qa_syn": rows})
    code, out, err = run_report([tmp_path, "--bootstrap_iters", "0"], capsys)
    assert code == 0
    assert f"{directory / f'samples_qa_syn_{TS}.jsonl'}: filter 'none': no 0/1 'uncertainty.correct' on line(s) 4, 5" in err
    assert "18 of 20 answers scored, 2 without scores" in err


def test_nothing_found_and_missing_folder(tmp_path, capsys):
    code, _, err = run_report([tmp_path], capsys)
    assert code == 1 and "no lm-eval results_*.json or samples_*.jsonl found" in err
    code, _, err = run_report([tmp_path / "nope"], capsys)
    assert code == 2 and f"{tmp_path / 'nope'}: no such file or folder" in err


# --------------------------------------------------------------------------- which runs


def test_latest_run_per_model_and_task_unless_all_runs(tmp_path, data, capsys):
    correct, scores = data
    first = {"semgrad": scores["semgrad"][:50]}
    later = {"semgrad": -scores["semgrad"][:50]}
    write_run(tmp_path / "a", "org__m", "org/m", {"qa_syn": rows_for(correct[:50], first)}, ts=TS)
    write_run(tmp_path / "b", "org__m", "org/m", {"qa_syn": rows_for(correct[:50], later)}, ts=TS_LATER)
    # the same checkpoint at another semantic position is another model
    write_run(tmp_path / "c", "org__m", "org/m", {"qa_syn": rows_for(correct[:50], first)}, ts=TS,
              model_args={"pretrained": "org/m", "semgrad_position": -4})
    report = build_report([tmp_path], n_bootstrap=0)
    labels = sorted(row.model for row in report.rows)
    assert labels == ["org/m", "org/m [semgrad_position=-4]"]
    latest = next(row for row in report.rows if row.model == "org/m")
    assert latest.timestamp == TS_LATER
    assert latest.methods["semgrad"].value("auroc") == pytest.approx(roc_auc_score(1 - correct[:50], later["semgrad"]))

    every = build_report([tmp_path], n_bootstrap=0, all_runs=True)
    assert sorted(row.model for row in every.rows) == [f"org/m @ {TS}", f"org/m @ {TS_LATER}", "org/m [semgrad_position=-4]"]


def test_two_runs_of_one_model_differing_in_a_non_semgrad_arg_with_two_tasks(tmp_path, data, capsys):
    """Labels are made per run, not per (run, task): a run with two tasks once raised KeyError here."""
    correct, scores = data
    rows = rows_for(correct[:30], scores)
    for folder, dtype in (("a", "float32"), ("b", "bfloat16")):
        write_run(tmp_path, folder, "org/m", {"qa_one": rows, "qa_two": rows},
                  model_args={"pretrained": "org/m", "dtype": dtype})
    code, out, err = run_report([tmp_path, "--bootstrap_iters", "0", "--format", "csv"], capsys)
    assert code == 0, err
    labels = {line["model"] for line in csv.DictReader(io.StringIO(out))}
    assert len(labels) == 2 and all("dtype=" in label for label in labels)


def test_output_paths_that_cannot_be_written_fail_first_with_a_message(one_run, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for option in (["-o", blocker / "report.md"], ["--plots", blocker / "plots"], ["-o", tmp_path]):
        code, out, err = run_report([one_run, *option, "--bootstrap_iters", "0"], capsys)
        assert code == 2 and out == "" and "Traceback" not in err
        assert "cannot write" in err or "is a folder" in err
