"""Calibrated confidence end to end: a dev run of `lm_eval`, `lm-eval-semgrad confidence fit` on it, then
`semgrad_confidence=FILE` in later `lm_eval` runs (one resumed from the request cache with another file)
and in `lm-eval-semgrad rescore`, all real processes on a tiny random chat model.

Every logged p_correct must be scikit-learn's map (fitted here on the dev run's logged scores and labels)
of the logged score, and the results' calibration metrics those of the logged samples, computed here.
"""

from __future__ import annotations

import glob
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from harness_fixtures import lm_eval_command, read_results, read_samples, run_cli, write_tasks
from sklearn.isotonic import IsotonicRegression
from tiny_models import save_tiny_chat_model

pytestmark = pytest.mark.e2e

METHODS = ("semgrad", "hybridgrad", "g_nll")  # semgrad-hf's default semgrad_methods
FOREIGN_COEF, FOREIGN_INTERCEPT = -0.7, 0.4


def semgrad_command() -> list[str]:
    script = Path(sys.executable).with_name("lm-eval-semgrad")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lm_eval_semgrad.cli"]


def lm_eval(model_dir: Path, tasks_dir: Path, output: Path, tasks: str, cache: Path, extra: str = "") -> list[str]:
    return [
        *lm_eval_command(), "--model", "semgrad-hf", "--model_args", f"pretrained={model_dir},semgrad_batch_size=4{extra}",
        "--tasks", tasks, "--include_path", str(tasks_dir), "--limit", "12", "--apply_chat_template",
        "--log_samples", "--output_path", str(output), "--use_cache", str(cache),
    ]


def logged(rows: list[dict], method: str) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([row["uncertainty"]["scores"][method] for row in rows]),
            np.array([row["uncertainty"]["correct"] for row in rows]))


def equal_mass_ece(p: np.ndarray, c: np.ndarray, bins: int = 10) -> float:
    order = np.argsort(p, kind="stable")
    return sum(len(b) / len(p) * abs(c[b].mean() - p[b].mean()) for b in np.array_split(order, bins))


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("confidence")
    model_dir = save_tiny_chat_model(root / "model")
    tasks_dir = write_tasks(root / "tasks")
    cache = root / "cache" / "lm"
    run_cli(lm_eval(model_dir, tasks_dir, root / "dev", "qa_parity", cache), cwd=root)
    fitted = run_cli([*semgrad_command(), "confidence", "fit", str(root / "dev"), "-o", str(root / "isotonic.json")],
                     cwd=root).stderr
    # Platt maps of other values, as if fitted for another model and task: they apply, with warnings
    isotonic = json.loads((root / "isotonic.json").read_text())
    foreign = {method: {"method": "platt", "n": 12, "coef": FOREIGN_COEF, "intercept": FOREIGN_INTERCEPT}
               for method in METHODS}
    (root / "foreign.json").write_text(json.dumps(
        {**isotonic, "model": "org/another-model", "task": "another_task", "maps": foreign}
    ))
    applied = run_cli(lm_eval(model_dir, tasks_dir, root / "applied", "qa_parity,qa_filters", cache,
                              f",semgrad_confidence={root / 'isotonic.json'}"), cwd=root)
    resumed = run_cli(lm_eval(model_dir, tasks_dir, root / "resumed", "qa_parity", cache,
                              f",semgrad_confidence={root / 'foreign.json'}"), cwd=root)
    plain = root / "plain.jsonl"  # the dev answers as plain rows
    plain.write_text("".join(json.dumps({
        "prompt": row["arguments"]["gen_args_0"]["arg_0"], "response": row["resps"][0][0],
        "correct": row["uncertainty"]["correct"],
    }) + "\n" for row in read_samples(root / "dev", "qa_parity")))
    rescored = run_cli([*semgrad_command(), "rescore", "--model_args",
                        f"pretrained={model_dir},semgrad_confidence={root / 'isotonic.json'}", str(root / "dev"),
                        "--jsonl", str(plain), "--output_path", str(root / "rescored"), "--no_progress"], cwd=root)
    return dict(root=root, fitted=fitted, applied=applied, resumed=resumed, rescored=rescored)


def test_fit_reports_each_method_and_records_the_run(chain):
    root = chain["root"]
    saved = json.loads((root / "isotonic.json").read_text())
    assert saved["task"] == "qa_parity" and saved["model"] == str(root / "model")
    assert set(METHODS) <= set(saved["maps"]) and saved["fitted_on"][0].endswith(".jsonl")
    dev = read_samples(root / "dev", "qa_parity")
    for method in METHODS:
        assert saved["maps"][method]["n"] == len(dev) == 12
        assert f"  {method}: N=12; P(correct) from " in chain["fitted"]


def test_logged_p_correct_is_the_dev_maps_of_the_logged_score(chain):
    root = chain["root"]
    dev, rows = read_samples(root / "dev", "qa_parity"), read_samples(root / "applied", "qa_parity")
    for method in METHODS:
        reference = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(*logged(dev, method))
        u, _ = logged(rows, method)
        got = np.array([row["uncertainty"]["p_correct"][method] for row in rows])
        np.testing.assert_allclose(got, reference.predict(u), atol=1e-9)
    assert set(rows[0]["uncertainty"]["p_correct"]) == set(METHODS)  # free scores' maps are not applied
    assert "the maps of mean_entropy, max_prob_nll, response_len are not applied" in chain["applied"].stderr


def test_results_hold_the_calibration_of_the_logged_samples_per_task_and_filter(chain):
    root = chain["root"]
    results = read_results(root / "applied")["results"]
    dev, rows = read_samples(root / "dev", "qa_parity"), read_samples(root / "applied", "qa_parity")
    for method in METHODS:
        reference = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(*logged(dev, method))
        u, c = logged(rows, method)
        p = reference.predict(u)
        entry = results["qa_parity"]
        assert entry[f"{method}_ece,none"] == pytest.approx(equal_mass_ece(p, c), abs=1e-9)
        assert entry[f"{method}_brier,none"] == pytest.approx(float(np.mean((p - c) ** 2)), abs=1e-9)
        assert entry[f"{method}_selective_accuracy_50,none"] == pytest.approx(c[np.argsort(u, kind="stable")[:6]].mean())
        assert isinstance(entry[f"{method}_ece_stderr,none"], float)
        for filter_name in ("strict-match", "flexible-extract"):
            assert math.isfinite(results["qa_filters"][f"{method}_log_loss,{filter_name}"])
    assert "fitted on task 'qa_parity', applied to task 'qa_filters'" in chain["applied"].stderr
    recorded = read_results(root / "applied")["config"]["semgrad"]["confidence"]
    assert recorded["file"] == str(root / "isotonic.json") and recorded["methods"] == list(METHODS)


def test_a_cached_rerun_with_other_maps_logs_the_new_ones_and_warns_of_model_and_task(chain):
    root = chain["root"]
    rows, before = read_samples(root / "resumed", "qa_parity"), read_samples(root / "applied", "qa_parity")
    assert "cached answer(s) have no uncertainty scores" not in chain["resumed"].stderr  # scores from the cache
    for method in METHODS:
        u, _ = logged(rows, method)
        np.testing.assert_allclose(logged(before, method)[0], u)  # the same cached answers and scores ...
        got = np.array([row["uncertainty"]["p_correct"][method] for row in rows])
        np.testing.assert_allclose(got, 1 / (1 + np.exp(-(FOREIGN_INTERCEPT + FOREIGN_COEF * u))), atol=1e-12)  # ... new maps
    stderr = chain["resumed"].stderr
    assert "fitted for model 'org/another-model'" in stderr
    assert "fitted on task 'another_task', applied to task 'qa_parity'" in stderr


def test_rescore_logs_p_correct_and_the_same_metrics(chain):
    root = chain["root"]
    dev = read_samples(root / "dev", "qa_parity")
    (samples_path,) = glob.glob(str(root / "rescored" / "*" / "samples_qa_parity_*.jsonl"))
    rows = [json.loads(line) for line in Path(samples_path).read_text().splitlines() if line.strip()]
    (results_path,) = glob.glob(str(root / "rescored" / "*" / "results_*.json"))
    results = json.loads(Path(results_path).read_text())
    for method in METHODS:
        reference = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(*logged(dev, method))
        u, c = logged(rows, method)
        p = reference.predict(u)
        np.testing.assert_allclose([row["uncertainty"]["p_correct"][method] for row in rows], p, atol=1e-9)
        entry = results["results"]["qa_parity"]
        assert entry[f"{method}_ece,none"] == pytest.approx(equal_mass_ece(p, c), abs=1e-9)
        assert entry[f"{method}_brier,none"] == pytest.approx(float(np.mean((p - c) ** 2)), abs=1e-9)
        assert results["higher_is_better"]["qa_parity"][f"{method}_ece"] is False
    assert results["config"]["semgrad"]["confidence"]["methods"] == list(METHODS)


def test_rescored_plain_rows_get_p_correct_and_their_summary_the_metrics(chain):
    root = chain["root"]
    dev = read_samples(root / "dev", "qa_parity")
    rows = [json.loads(line) for line in (root / "rescored" / "plain.jsonl").read_text().splitlines() if line.strip()]
    summary = json.loads((root / "rescored" / "plain.summary.json").read_text())
    for method in METHODS:
        reference = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(*logged(dev, method))
        u = np.array([row["scores"][method] for row in rows])
        c = np.array([row["correct"] for row in rows])
        p = reference.predict(u)
        np.testing.assert_allclose([row["p_correct"][method] for row in rows], p, atol=1e-9)
        assert summary["metrics"][f"{method}_brier"] == pytest.approx(float(np.mean((p - c) ** 2)), abs=1e-9)
        assert summary["higher_is_better"][f"{method}_selective_accuracy_90"] is True


def test_maps_fitted_on_one_filter_warn_when_applied_to_the_tasks_other_filter(chain, tmp_path):
    root = chain["root"]
    strict = tmp_path / "strict.json"  # as if fitted with --task qa_filters --filter strict-match (its answers are all wrong)
    strict.write_text(json.dumps({**json.loads((root / "isotonic.json").read_text()), "task": "qa_filters",
                                  "filter": "strict-match"}))
    applied = run_cli(lm_eval(root / "model", root / "tasks", tmp_path / "run", "qa_filters",
                              tmp_path / "cache" / "lm", f",semgrad_confidence={strict}"), cwd=tmp_path)
    rescored = run_cli([*semgrad_command(), "rescore", "--model_args",
                        f"pretrained={root / 'model'},semgrad_confidence={strict}", str(root / "applied"),
                        "--output_path", str(tmp_path / "rescored"), "--no_progress"], cwd=tmp_path)
    for process in (applied, rescored):
        warned = "the maps were fitted on filter 'strict-match' of task 'qa_filters', applied to its filter"
        assert process.stderr.count(f"{warned} 'flexible-extract'") == 1
        assert f"{warned} 'strict-match'" not in process.stderr
