"""The confidence file, `lm-eval-semgrad confidence fit` on run folders, and `semgrad_confidence` as parsed and applied.

Maps are checked against scikit-learn fitted on the same logged scores; the calibration metrics
of the shared aggregation against numpy computations written out here.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss as sk_log_loss

from lm_eval_semgrad.cli import main as cli_main
from lm_eval_semgrad.confidence import (
    FORMAT_VERSION,
    ConfidenceFile,
    load_confidence,
    resolve_confidence,
    save_confidence,
)
from lm_eval_semgrad.hf.options import pop_settings
from lm_eval_semgrad.metrics import ConfidenceMap
from lm_eval_semgrad.sample_metrics import CONFIDENCE_METRICS, ConfidenceAggregation, UncertaintySample

TS = "2025-01-02T03-04-05.678901"
TS_LATER = "2025-02-02T03-04-05.678901"


# --------------------------------------------------------------------------- helpers


def synthetic(n: int = 120, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    correct = (rng.random(n) < 0.6).astype(int)
    return correct, {
        "semgrad": (1 - correct) + rng.normal(0, 0.7, n),
        "g_nll": np.round((1 - correct) * 0.8 + rng.normal(0, 0.7, n), 1),  # ties
    }


def write_run(root: Path, folder: str, correct, scores, *, task: str = "qa", model: str = "org/tiny",
              ts: str = TS, filters=("none",), missing: int = 0) -> Path:
    """One lm-eval output folder as semgrad-hf writes it; the first `missing` rows have "scores": null."""
    directory = root / folder
    directory.mkdir(parents=True, exist_ok=True)
    results = {"results": {task: {"alias": task}}, "config": {"model": "semgrad-hf",
               "model_args": {"pretrained": model, "semgrad_batch_size": 4}}, "model_name": model}
    (directory / f"results_{ts}.json").write_text(json.dumps(results))
    rows = []
    for filter_name in filters:
        for i in range(len(correct)):
            row_scores = None if i < missing else {m: float(v[i]) for m, v in scores.items()}
            rows.append({"doc_id": i, "filter": filter_name, "resps": [["a"]], "contains": float(correct[i]),
                         "uncertainty": {"scores": row_scores, "correct": int(correct[i]),
                                         "correctness": "contains >= 0.5"}})
    (directory / f"samples_{task}_{ts}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return directory


def fit(argv: list[str], capsys) -> tuple[int, str]:
    code = cli_main(["confidence", "fit", *argv])
    return code, capsys.readouterr().err


def example_file(**overrides) -> ConfidenceFile:
    maps = {"semgrad": ConfidenceMap("isotonic", n=4, x=[0.1, 0.5], y=[0.9, 0.2]),
            "g_nll": ConfidenceMap("platt", n=4, coef=-2.0, intercept=1.0)}
    return ConfidenceFile(**{"model": "org/tiny", "task": "qa", "maps": maps, "fitted_on": ("run/s.jsonl",),
                             **overrides})


# --------------------------------------------------------------------------- the file


def test_round_trip_keeps_every_field(tmp_path):
    original = example_file(correctness="contains >= 0.5", filter="strict-match")
    path = save_confidence(original, tmp_path / "sub" / "conf.json")
    data = json.loads(path.read_text())
    assert data["format"] == "lm-eval-semgrad-confidence" and data["format_version"] == FORMAT_VERSION
    assert data["maps"]["semgrad"] == {"method": "isotonic", "n": 4, "x": [0.1, 0.5], "y": [0.9, 0.2]}
    assert load_confidence(path) == original


def _write(tmp_path, data) -> Path:
    path = tmp_path / "conf.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.mark.parametrize("change, message", [
    (lambda d: "{not json", "not valid JSON"),
    (lambda d: {**d, "format": "lm-eval-semgrad-calibration"}, "is not a confidence file"),
    (lambda d: [d], "is not a confidence file"),
    (lambda d: {**d, "format_version": FORMAT_VERSION + 1}, "newer than this lm-eval-semgrad reads"),
    (lambda d: {**d, "format_version": "1"}, "'format_version' must be a positive integer"),
    (lambda d: {k: v for k, v in d.items() if k != "model"}, "field 'model' must be a string"),
    (lambda d: {**d, "fitted_on": "run"}, "'fitted_on' must be a list of paths"),
    (lambda d: {**d, "maps": {}}, "'maps' must be a non-empty object"),
    (lambda d: {**d, "maps": {**d["maps"], "nope": d["maps"]["semgrad"]}}, "maps of unknown method(s) nope"),
    (lambda d: {**d, "maps": {"semgrad": {**d["maps"]["semgrad"], "y": [0.1, 0.9]}}},
     "map of 'semgrad' is invalid: ConfidenceMap.y must be non-increasing"),
    (lambda d: {**d, "maps": {"g_nll": {**d["maps"]["g_nll"], "x": [1.0]}}}, "map of 'g_nll' is invalid"),
    (lambda d: {**d, "maps": {"g_nll": {"method": "beta"}}}, "map of 'g_nll' is invalid: method must be one of"),
])
def test_bad_files_are_refused_naming_the_file_and_the_field(tmp_path, change, message):
    path = _write(tmp_path, change(example_file().to_json()))
    with pytest.raises(ValueError) as error:
        load_confidence(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ValueError, match=r"not found\. Fit one with `lm-eval-semgrad confidence fit"):
        load_confidence(tmp_path / "absent.json")


def test_the_file_modules_import_neither_torch_nor_lm_eval():
    code = ("import sys, lm_eval_semgrad.confidence, lm_eval_semgrad.confidence.cli, lm_eval_semgrad.confidence.fitting; "
            "print('torch' in sys.modules, 'lm_eval' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# --------------------------------------------------------------------------- applied to a run


def test_only_methods_both_asked_for_and_in_the_file_are_applied_and_the_rest_named(tmp_path, caplog):
    path = save_confidence(example_file(), tmp_path / "conf.json")
    with caplog.at_level(logging.WARNING):
        setup = resolve_confidence(str(path), ("semgrad", "hybridgrad"))
    assert setup.methods == ("semgrad",)
    text = caplog.text
    assert "no map for hybridgrad, which are left without p_correct" in text
    assert "the maps of g_nll are not applied" in text


def test_a_file_without_any_of_the_runs_methods_is_refused(tmp_path):
    path = save_confidence(example_file(), tmp_path / "conf.json")
    with pytest.raises(ValueError, match=r"has maps of semgrad, g_nll, and this run computes none of them"):
        resolve_confidence(str(path), ("hybridgrad", "exgrad"))


def test_maps_of_another_model_or_task_warn(tmp_path, caplog):
    setup = resolve_confidence(str(save_confidence(example_file(), tmp_path / "conf.json")), ("semgrad", "g_nll"))
    with caplog.at_level(logging.WARNING):
        setup.warn_if_other_model("/local/copy/of/tiny")  # same final name: the same model
        setup.warn_if_other_task("qa")
    assert not caplog.text
    with caplog.at_level(logging.WARNING):
        setup.warn_if_other_model("org/other")
        setup.warn_if_other_task("trivia")
        setup.warn_if_other_task("trivia")
    assert "fitted for model 'org/tiny', this run's is 'org/other'" in caplog.text
    assert caplog.text.count("fitted on task 'qa', applied to task 'trivia'") == 1


def test_answers_labelled_by_another_rule_warn_once(tmp_path, caplog):
    confidence = example_file(correctness="contains >= 0.5")
    setup = resolve_confidence(str(save_confidence(confidence, tmp_path / "conf.json")), ("semgrad", "g_nll"))
    with caplog.at_level(logging.WARNING):
        setup.warn_if_other_correctness("contains >= 0.5")
        setup.warn_if_other_correctness(None)
    assert not caplog.text
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            setup.warn_if_other_correctness("exact_match >= 0.5")
    assert caplog.text.count("labelled by 'contains >= 0.5', this run labels them by 'exact_match >= 0.5'") == 1


def test_p_correct_is_the_map_of_the_score_and_null_without_one(tmp_path):
    setup = resolve_confidence(str(save_confidence(example_file(), tmp_path / "conf.json")), ("semgrad", "g_nll"))
    got = setup.p_correct({"semgrad": 0.3, "g_nll": 0.25})
    assert got["semgrad"] == pytest.approx(0.55)  # halfway between (0.1, 0.9) and (0.5, 0.2)
    assert got["g_nll"] == pytest.approx(1 / (1 + math.exp(-(1.0 - 2.0 * 0.25))))
    assert setup.p_correct({"semgrad": float("nan")}) == {"semgrad": None, "g_nll": None}
    assert setup.p_correct(None) == {"semgrad": None, "g_nll": None}


def equal_mass_ece(p: np.ndarray, c: np.ndarray, bins: int = 10) -> float:
    """ECE over bins of equal count, lowest probability first (the first n % bins bins one answer larger)."""
    order = np.argsort(p, kind="stable")
    return sum(len(b) / len(p) * abs(c[b].mean() - p[b].mean()) for b in np.array_split(order, bins))


def test_the_aggregation_computes_the_calibration_of_the_saved_map():
    correct, scores = synthetic(97)
    u = scores["semgrad"].copy()
    u[:5] = np.nan  # no score: left out
    confidence_map = ConfidenceMap("platt", n=50, coef=-1.5, intercept=0.7)
    samples = [UncertaintySample(record=None if np.isnan(v) else {"scores": {"semgrad": float(v)}}, correct=int(k),
                                 label="l") for v, k in zip(u, correct)]
    keep = ~np.isnan(u)
    p = 1 / (1 + np.exp(-(0.7 - 1.5 * u[keep])))
    c = correct[keep]
    order = np.argsort(u[keep], kind="stable")
    expected = {
        "ece": equal_mass_ece(p, c), "brier": float(np.mean((p - c) ** 2)), "log_loss": sk_log_loss(c, p),
        **{f"selective_accuracy_{k}": c[order[: math.ceil(k / 100 * len(c))]].mean() for k in (50, 80, 90)},
    }
    assert set(expected) == set(CONFIDENCE_METRICS)
    for metric, want in expected.items():
        aggregation = ConfidenceAggregation("semgrad", metric, confidence_map)
        assert aggregation(samples) == pytest.approx(want, abs=1e-12), metric
        assert aggregation.stderr(samples, 100) > 0


# --------------------------------------------------------------------------- `confidence fit`


@pytest.fixture()
def dev_run(tmp_path):
    correct, scores = synthetic()
    write_run(tmp_path, "out/org__tiny", correct, scores, missing=3)
    return tmp_path / "out", correct[3:], {m: v[3:] for m, v in scores.items()}


def test_isotonic_maps_equal_sklearn_on_the_logged_scores(dev_run, tmp_path, capsys):
    root, correct, scores = dev_run
    code, err = fit([str(root), "-o", str(tmp_path / "conf.json")], capsys)
    assert code == 0, err
    saved = load_confidence(tmp_path / "conf.json")
    assert (saved.model, saved.task, saved.filter, saved.correctness) == ("org/tiny", "qa", "none", "contains >= 0.5")
    assert saved.fitted_on[0].endswith(f"samples_qa_{TS}.jsonl")
    assert list(saved.maps) == ["semgrad", "g_nll"]
    grid = np.linspace(-3, 4, 301)
    for method, u in scores.items():
        reference = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(u, correct)
        assert saved.maps[method].n == len(u) == 117
        np.testing.assert_allclose(saved.maps[method].predict(grid), reference.predict(grid), atol=1e-12)
        assert f"{method}: N=117, 3 row(s) without a score or label left out" in err


def test_platt_maps_equal_logistic_regression(dev_run, tmp_path, capsys):
    root, correct, scores = dev_run
    code, err = fit([str(root), "-o", str(tmp_path / "conf.json"), "--methods", "g_nll",
                     "--confidence_method", "platt"], capsys)
    assert code == 0, err
    saved = load_confidence(tmp_path / "conf.json")
    assert list(saved.maps) == ["g_nll"] and saved.maps["g_nll"].method == "platt"
    u = scores["g_nll"]
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=100_000).fit(u[:, None], correct)
    grid = np.linspace(-3, 4, 50)
    np.testing.assert_allclose(saved.maps["g_nll"].predict(grid), reference.predict_proba(grid[:, None])[:, 1], atol=1e-5)


def test_several_tasks_need_task_and_the_task_is_recorded(tmp_path, capsys):
    correct, scores = synthetic()
    write_run(tmp_path, "out/m", correct, scores, task="qa")
    write_run(tmp_path, "out/m", correct, scores, task="trivia")
    code, err = fit([str(tmp_path / "out"), "-o", str(tmp_path / "conf.json")], capsys)
    assert code == 1 and "several tasks (qa, trivia)" in err and "pass --task" in err
    code, err = fit([str(tmp_path / "out"), "-o", str(tmp_path / "conf.json"), "--task", "trivia"], capsys)
    assert code == 0, err
    assert load_confidence(tmp_path / "conf.json").task == "trivia"


def test_the_latest_run_of_one_model_is_fitted_and_several_models_are_refused(tmp_path, capsys):
    correct, scores = synthetic()
    write_run(tmp_path, "out/m", correct, scores)
    write_run(tmp_path, "out/m", correct[:60], {k: v[:60] for k, v in scores.items()}, ts=TS_LATER)
    code, err = fit([str(tmp_path / "out"), "-o", str(tmp_path / "conf.json")], capsys)
    assert code == 0 and load_confidence(tmp_path / "conf.json").maps["semgrad"].n == 60
    write_run(tmp_path, "out/other", correct, scores, model="org/other")
    code, err = fit([str(tmp_path / "out"), "-o", str(tmp_path / "conf.json")], capsys)
    assert code == 1 and "several models or settings" in err and "org/other" in err


@pytest.mark.parametrize("labels, message", [
    (np.ones(40, dtype=int), "semgrad: all 40 answers are correct, so the score cannot be mapped"),
    (np.zeros(40, dtype=int), "semgrad: all 40 answers are wrong"),
    (np.array([0, 1] * 4), "semgrad: only 8 answer(s) with a score and a 0/1 label; a map needs at least 10"),
])
def test_one_class_or_too_few_answers_cannot_be_fitted(tmp_path, capsys, labels, message):
    write_run(tmp_path, "out/m", labels, {"semgrad": np.arange(len(labels), dtype=float)})
    code, err = fit([str(tmp_path / "out"), "-o", str(tmp_path / "conf.json")], capsys)
    assert code == 1 and message in err
    assert not (tmp_path / "conf.json").exists()


def test_nan_scores_are_left_out_and_counted(tmp_path, capsys):
    correct, scores = synthetic(60)
    scores["semgrad"][:7] = np.nan
    write_run(tmp_path, "out/m", correct, scores)
    code, err = fit([str(tmp_path / "out"), "-o", str(tmp_path / "conf.json"), "--methods", "semgrad"], capsys)
    assert code == 0 and "semgrad: N=53, 7 row(s) without a score or label left out" in err


def test_several_filters_need_filter(tmp_path, capsys):
    correct, scores = synthetic()
    write_run(tmp_path, "out/m", correct, scores, filters=("strict-match", "flexible-extract"))
    code, err = fit([str(tmp_path / "out"), "-o", str(tmp_path / "conf.json")], capsys)
    assert code == 1 and "several filters (strict-match, flexible-extract)" in err
    code, err = fit([str(tmp_path / "out"), "-o", str(tmp_path / "conf.json"), "--filter", "flexible-extract"], capsys)
    assert code == 0 and load_confidence(tmp_path / "conf.json").filter == "flexible-extract"


def test_no_sample_logs_and_unknown_or_absent_methods_are_errors(tmp_path, dev_run, capsys):
    (tmp_path / "empty").mkdir()
    code, err = fit([str(tmp_path / "empty"), "-o", str(tmp_path / "conf.json")], capsys)
    assert code == 1 and "no lm-eval sample logs" in err
    root, _, _ = dev_run
    code, err = fit([str(root), "-o", str(tmp_path / "conf.json"), "--methods", "semgrad,nope"], capsys)
    assert code == 1 and "unknown method(s) nope" in err
    code, err = fit([str(root), "-o", str(tmp_path / "conf.json"), "--methods", "exgrad"], capsys)
    assert code == 1 and "no exgrad scores in the sample log (it has semgrad, g_nll)" in err


# --------------------------------------------------------------------------- the model arg, as lm-eval parses it


def parsed_model_args(*tokens: str) -> dict:
    from lm_eval._cli import HarnessCLI

    namespace = HarnessCLI()._parser.parse_args(["run", "--model", "semgrad-hf", "--model_args", *tokens, "--tasks", "t"])
    return namespace.model_args


@pytest.mark.parametrize("tokens", [
    ["pretrained=m,semgrad_confidence=conf.json"],
    ["pretrained=m", "semgrad_confidence=conf.json"],
    [json.dumps({"pretrained": "m", "semgrad_confidence": "conf.json"})],
], ids=["comma-separated", "space-separated", "json"])
def test_semgrad_confidence_in_every_model_args_form(tokens):
    settings = pop_settings(dict(parsed_model_args(*tokens)))
    assert settings.confidence == "conf.json" and "semgrad_confidence" in settings.given


@pytest.mark.parametrize("typed", ["semgrad_confidence=true", '{"pretrained": "m", "semgrad_confidence": ["a"]}'])
def test_a_value_that_is_not_a_path_is_refused(typed):
    tokens = [typed] if typed.startswith("{") else [f"pretrained=m,{typed}"]
    with pytest.raises(ValueError, match="semgrad_confidence=.* is not valid: pass the path of a file"):
        pop_settings(parsed_model_args(*tokens))


def test_semgrad_hf_refuses_a_missing_or_foreign_file_before_loading_any_model(tmp_path):
    from lm_eval_semgrad.harness.model import SemGradHFLM

    absent = tmp_path / "absent.json"
    with pytest.raises(ValueError, match="confidence file .*absent.json.* not found"):
        SemGradHFLM.create_from_arg_obj(parsed_model_args(f"pretrained=/no/model,semgrad_confidence={absent}"))
    path = save_confidence(example_file(), tmp_path / "conf.json")
    with pytest.raises(ValueError, match="this run computes none of them"):
        SemGradHFLM.create_from_arg_obj(parsed_model_args(
            f"pretrained=/no/model,semgrad_confidence={path},semgrad_methods=exgrad"
        ))


def test_rescore_refuses_a_missing_or_foreign_file_before_loading_any_model(dev_run, tmp_path, capsys):
    root, _, _ = dev_run
    absent = tmp_path / "absent.json"
    code = cli_main(["rescore", "--model_args", f"pretrained=/no/model,semgrad_confidence={absent}", str(root),
                     "--output_path", str(tmp_path / "rescored")])
    assert code == 1 and "absent.json' not found" in capsys.readouterr().err
    path = save_confidence(example_file(), tmp_path / "conf.json")
    code = cli_main(["rescore", "--model_args", f"pretrained=/no/model,semgrad_confidence={path},semgrad_methods=exgrad",
                     str(root), "--output_path", str(tmp_path / "rescored")])
    assert code == 1 and "this run computes none of them" in capsys.readouterr().err
