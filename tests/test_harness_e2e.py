"""`semgrad-hf` through the real `lm_eval` CLI on a tiny random chat model and local tasks."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from harness_fixtures import lm_eval_command, offline_env, read_results, read_samples, run_cli, write_tasks
from tiny_models import save_tiny_chat_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_semgrad import score
from lm_eval_semgrad.metrics import METRICS

pytestmark = pytest.mark.e2e  # every test here reads lm_eval runs made by subprocesses

METHODS = ("semgrad", "hybridgrad", "g_nll")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("harness")
    model_dir = save_tiny_chat_model(root / "model")
    tasks_dir = write_tasks(root / "tasks")
    return root, model_dir, tasks_dir


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli_args(model_dir, tasks_dir, output, tasks, extra_model_args="") -> list[str]:
    return [
        "--model", "semgrad-hf",
        "--model_args", f"pretrained={model_dir},semgrad_batch_size=4{extra_model_args}",
        "--tasks", tasks, "--include_path", str(tasks_dir), "--limit", "8",
        "--apply_chat_template", "--log_samples", "--output_path", str(output),
    ]


@pytest.fixture(scope="module")
def first_run(setup):
    """One run with a free-form task, a two-filter task and a multiple-choice task, with a request cache."""
    root, model_dir, tasks_dir = setup
    output = root / "run1"
    args = cli_args(model_dir, tasks_dir, output, "qa_parity,qa_filters,qa_choice")
    result = run_cli([*lm_eval_command(), *args, "--use_cache", str(root / "cache" / "lm")], cwd=root)
    return output, result


def test_results_have_every_uncertainty_metric_with_stderr(first_run):
    output, _ = first_run
    results = read_results(output)["results"]
    for task, filters in (("qa_parity", ["none"]), ("qa_filters", ["strict-match", "flexible-extract"])):
        for filter_key in filters:
            for method in METHODS:
                for metric in METRICS:
                    key = f"{method}_{metric},{filter_key}"
                    assert key in results[task], key
                    assert f"{method}_{metric}_stderr,{filter_key}" in results[task]
        # half-correct labels: every metric is defined and has a bootstrap standard error
    for method in METHODS:
        for metric in METRICS:
            assert math.isfinite(results["qa_parity"][f"{method}_{metric},none"])
            assert isinstance(results["qa_parity"][f"{method}_{metric}_stderr,none"], float)
    assert results["qa_parity"]["semgrad_auroc_stderr,none"] > 0


def test_multiple_choice_task_runs_unchanged_with_one_warning(first_run):
    output, result = first_run
    results = read_results(output)["results"]["qa_choice"]
    assert "acc,none" in results
    assert not any(key.startswith(METHODS) for key in results)
    assert result.stderr.count("no uncertainty is computed for non-generative tasks") == 1


def test_the_log_shows_the_settings_and_what_the_grad_passes_cost(first_run):
    """Our INFO lines reach lm-eval's log (they sit under its `lm_eval` logger)."""
    _, result = first_run
    assert re.search(r"semgrad-hf: position -?\d+ \(", result.stderr)
    match = re.search(r"semgrad-hf: generation took ([\d.]+) s, the grad passes ([\d.]+) s", result.stderr)
    assert match and float(match.group(1)) > 0 and float(match.group(2)) > 0


def test_sample_log_has_scores_and_the_correctness_label_used(first_run):
    output, _ = first_run
    rows = read_samples(output, "qa_parity")
    assert len(rows) == 8
    for row in rows:
        info = row["uncertainty"]
        # the default methods plus the free baselines; ExGrad only when semgrad_methods asks for it
        assert set(info["scores"]) == {"semgrad", "hybridgrad", "g_nll", "mean_entropy", "max_prob_nll", "response_len"}
        assert info["correct"] == int(row["parity"] >= 0.5)
        assert info["correctness"] == "parity >= 0.5"
        assert info["position"] == -3  # ChatML assistant header, found from the chat template
        assert not any(key.startswith(METHODS) for key in row)  # metric keys are folded into `uncertainty`
    assert {row["uncertainty"]["correct"] for row in rows} == {0, 1}


def test_logged_scores_equal_score_on_the_same_token_ids(setup, first_run):
    _, model_dir, _ = setup
    output, _ = first_run
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    for row in read_samples(output, "qa_parity"):
        prompt = row["arguments"]["gen_args_0"]["arg_0"]
        info = row["uncertainty"]
        prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
        assert len(prompt_ids) == info["prompt_len"]
        response_ids = info["response_ids"]
        # the answer text lm-eval kept is the decoded answer tokens up to the stop string
        decoded = tokenizer.decode(response_ids, skip_special_tokens=True)
        assert decoded.startswith(row["resps"][0][0])
        assert response_ids[-1] == tokenizer.eos_token_id or "\n\n" in decoded or len(response_ids) == 10
        expected = score(model, [prompt_ids], [response_ids], position=-3, scores=tuple(info["scores"]))[0]
        assert set(expected) == set(info["scores"])
        for key, value in expected.items():
            assert info["scores"][key] == pytest.approx(value, rel=1e-4, abs=1e-12), key


def test_every_filter_sees_the_same_scores(first_run):
    output, _ = first_run
    by_filter: dict[str, dict[int, dict]] = {}
    for row in read_samples(output, "qa_filters"):
        by_filter.setdefault(row["filter"], {})[row["doc_id"]] = row["uncertainty"]["scores"]
    assert set(by_filter) == {"strict-match", "flexible-extract"}
    assert by_filter["strict-match"] == by_filter["flexible-extract"]


def test_use_cache_resume_keeps_the_scores(setup, first_run):
    root, model_dir, tasks_dir = setup
    output, _ = first_run
    resumed = root / "run2"
    args = cli_args(model_dir, tasks_dir, resumed, "qa_parity")
    result = run_cli([*lm_eval_command(), *args, "--use_cache", str(root / "cache" / "lm")], cwd=root)
    assert "Cached requests: 8, Requests remaining: 0" in result.stderr + result.stdout
    before = {row["doc_id"]: row["uncertainty"]["scores"] for row in read_samples(output, "qa_parity")}
    after = {row["doc_id"]: row["uncertainty"]["scores"] for row in read_samples(resumed, "qa_parity")}
    assert after == before
    assert read_results(resumed)["results"]["qa_parity"]["semgrad_auroc,none"] == pytest.approx(
        read_results(output)["results"]["qa_parity"]["semgrad_auroc,none"]
    )


def test_data_parallel_on_two_cpu_processes_equals_one_process(setup, first_run):
    root, model_dir, tasks_dir = setup
    output, _ = first_run
    parallel = root / "dp"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
    command = [*launcher, "-m", "lm_eval_semgrad", *cli_args(model_dir, tasks_dir, parallel, "qa_parity")]
    os.environ["ACCELERATE_USE_CPU"] = "true"
    try:
        result = run_cli(command, cwd=root)
    finally:
        del os.environ["ACCELERATE_USE_CPU"]
    assert "on rank 1" in result.stderr  # the data really was split
    single = {row["doc_id"]: row for row in read_samples(output, "qa_parity")}
    rows = read_samples(parallel, "qa_parity")
    assert sorted(row["doc_id"] for row in rows) == sorted(single)
    for row in rows:
        assert row["resps"] == single[row["doc_id"]]["resps"]
        for key, value in single[row["doc_id"]]["uncertainty"]["scores"].items():
            assert row["uncertainty"]["scores"][key] == pytest.approx(value, rel=1e-4, abs=1e-12)
    for key, value in read_results(output)["results"]["qa_parity"].items():
        if key.startswith(METHODS) and "stderr" not in key:
            assert read_results(parallel)["results"]["qa_parity"][key] == pytest.approx(value, rel=1e-6)


def test_correctness_override_and_method_choice(setup):
    root, model_dir, tasks_dir = setup
    output = root / "override"
    extra = ",semgrad_methods=exgrad:mean_entropy,semgrad_correctness=parity:0.75"
    run_cli([*lm_eval_command(), *cli_args(model_dir, tasks_dir, output, "qa_parity", extra)], cwd=root)
    results = read_results(output)["results"]["qa_parity"]
    assert "exgrad_auroc,none" in results and "mean_entropy_prr,none" in results
    assert "semgrad_auroc,none" not in results
    for row in read_samples(output, "qa_parity"):
        assert row["uncertainty"]["correctness"] == "parity >= 0.75"
        assert row["uncertainty"]["correct"] == int(row["parity"] >= 0.75)
        assert "exgrad" in row["uncertainty"]["scores"] and "hybridgrad" not in row["uncertainty"]["scores"]


def test_scores_without_generation_cache_reuse_are_the_same(setup, first_run):
    root, model_dir, tasks_dir = setup
    output, _ = first_run
    fresh = root / "no_reuse"
    run_cli([*lm_eval_command(), *cli_args(model_dir, tasks_dir, fresh, "qa_parity", ",semgrad_reuse_cache=false")], cwd=root)
    reused = {row["doc_id"]: row["uncertainty"]["scores"] for row in read_samples(output, "qa_parity")}
    for row in read_samples(fresh, "qa_parity"):
        for key, value in reused[row["doc_id"]].items():
            assert row["uncertainty"]["scores"][key] == pytest.approx(value, rel=1e-4, abs=1e-12), key


def test_options_typed_as_space_separated_pairs_and_a_cache_made_with_other_settings(setup, first_run):
    """The first run's --use_cache was written at the chat template's -3: its records must not be reused at -2."""
    from lm_eval_semgrad import __version__

    root, model_dir, tasks_dir = setup
    output = root / "typed"
    command = [
        *lm_eval_command(), "--model", "semgrad-hf", "--model_args", f"pretrained={model_dir}", "semgrad_position=-2",
        "semgrad_layers=1:3", "semgrad_methods=semgrad:exgrad:g_nll", "--tasks", "qa_parity", "--include_path",
        str(tasks_dir), "--limit", "8", "--apply_chat_template", "--log_samples", "--output_path", str(output),
        "--use_cache", str(root / "cache" / "lm"),
    ]
    result = run_cli(command, cwd=root)
    assert "Cached requests: 8, Requests remaining: 0" in result.stderr + result.stdout
    assert "8 cached answer(s) were scored with other settings" in result.stderr
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    for row in read_samples(output, "qa_parity"):
        info = row["uncertainty"]
        assert (info["position"], info["layers"]) == (-2, [1, 3])
        assert set(info["scores"]) == {"semgrad", "exgrad", "g_nll", "mean_entropy", "max_prob_nll", "response_len"}
        prompt_ids = tokenizer(row["arguments"]["gen_args_0"]["arg_0"], add_special_tokens=False).input_ids
        fresh = score(model, [prompt_ids], [info["response_ids"]], position=-2, layers=[1, 3], scores=tuple(info["scores"]))[0]
        for key, value in fresh.items():
            assert info["scores"][key] == pytest.approx(value, rel=1e-4, abs=1e-12), key
    config = read_results(output)["config"]["semgrad"]
    assert config == {**config, "position": -2, "position_source": "semgrad_position", "layers": [1, 3],
                      "layers_source": "semgrad_layers", "methods": ["semgrad", "exgrad", "g_nll"], "version": __version__}
    results = read_results(output)["results"]["qa_parity"]
    assert "exgrad_auroc,none" in results and "hybridgrad_auroc,none" not in results


def test_identical_prompts_sampled_get_each_their_own_answers_scores(setup):
    root, model_dir, tasks_dir = setup
    repeat_dir = root / "repeat_tasks"
    repeat_dir.mkdir()
    data = repeat_dir / "same.jsonl"
    data.write_text("".join(json.dumps({"question": "what gas do plants absorb ?", "answer": "x"}) + "\n" for _ in range(6)))
    (repeat_dir / "qa_same.yaml").write_text(
        (tasks_dir / "qa_parity.yaml").read_text().replace("task: qa_parity", "task: qa_same")
        .replace(str(tasks_dir / "questions.jsonl"), str(data))
    )
    (repeat_dir / "utils.py").write_text((tasks_dir / "utils.py").read_text())
    output = root / "sampled"
    run_cli([
        *lm_eval_command(), "--model", "semgrad-hf", "--model_args", f"pretrained={model_dir},semgrad_batch_size=4",
        "--tasks", "qa_same", "--include_path", str(repeat_dir), "--apply_chat_template", "--log_samples",
        "--gen_kwargs", "do_sample=true,temperature=2.0", "--seed", "7", "--output_path", str(output),
    ], cwd=root)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = read_samples(output, "qa_same")
    assert len(rows) == 6 and len({row["resps"][0][0] for row in rows}) > 1  # the samples differ
    for row in rows:
        decoded = tokenizer.decode(row["uncertainty"]["response_ids"], skip_special_tokens=True)
        assert decoded.split("\n\n")[0] == row["resps"][0][0]  # each row's scores are those of its own answer


def test_a_cache_written_by_stock_hf_gives_missing_scores_with_cause_and_fix(setup):
    root, model_dir, tasks_dir = setup
    cache = root / "cache_hf" / "lm"
    common = ["--tasks", "qa_parity", "--include_path", str(tasks_dir), "--limit", "4", "--apply_chat_template",
              "--log_samples", "--use_cache", str(cache)]
    run_cli([*lm_eval_command(), "--model", "hf", "--model_args", f"pretrained={model_dir}", *common,
             "--output_path", str(root / "hf_cached")], cwd=root)
    output = root / "semgrad_on_hf_cache"
    result = run_cli([*lm_eval_command(), "--model", "semgrad-hf", "--model_args", f"pretrained={model_dir}", *common,
                      "--output_path", str(output)], cwd=root)
    assert "4 cached answer(s) have no uncertainty scores" in result.stderr
    assert "use a new --use_cache path" in result.stderr and "lm-eval-semgrad rescore" in result.stderr
    for row in read_samples(output, "qa_parity"):
        assert row["uncertainty"]["scores"] is None
        assert set(row["uncertainty"]["missing"]) == set(METHODS)
        assert "holds no scores" in row["uncertainty"]["missing"]["semgrad"]


def test_data_parallel_with_fewer_documents_than_processes_says_why(setup):
    root, model_dir, tasks_dir = setup
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
    args = cli_args(model_dir, tasks_dir, root / "dp_one", "qa_parity")
    args[args.index("--limit") + 1] = "1"
    os.environ["ACCELERATE_USE_CPU"] = "true"
    try:
        result = subprocess.run([*launcher, "-m", "lm_eval_semgrad", *args], cwd=root, env=offline_env(),
                                capture_output=True, text=True, timeout=300)
    finally:
        del os.environ["ACCELERATE_USE_CPU"]
    assert result.returncode != 0
    assert "task 'qa_parity' has 1 document(s) for 2 processes" in result.stderr


SAMPLED = ",semgrad_methods=semgrad:ln_pe:p_true:inside:mi:lex_sim,semgrad_samples=3,semgrad_sample_seed=5"


@pytest.fixture(scope="module")
def sampled_run(setup):
    root, model_dir, tasks_dir = setup
    output = root / "sampled_baselines"
    args = cli_args(model_dir, tasks_dir, output, "qa_parity", SAMPLED)
    result = run_cli([*lm_eval_command(), *args, "--use_cache", str(root / "cache_sampled" / "lm")], cwd=root)
    return output, result


def test_sampling_baselines_are_logged_with_what_they_were_computed_from(sampled_run):
    output, _ = sampled_run
    results = read_results(output)["results"]["qa_parity"]
    for method in ("ln_pe", "p_true", "inside", "mi", "lex_sim"):
        assert math.isfinite(results[f"{method}_auroc,none"]) and f"{method}_auroc_stderr,none" in results
    config = read_results(output)["config"]["semgrad"]
    assert (config["samples"], config["sample_seed"]) == (3, 5)
    for row in read_samples(output, "qa_parity"):
        info = row["uncertainty"]
        assert set(info["samples"]) == {"se", "inside", "mi"} and info["question"] and info["question_source"]
        assert info["sampling"]["inside"] == {"k": 3, "temperature": 0.5, "top_p": 0.99, "top_k": 5,
                                              "max_new_tokens": 10, "seed": 5}
        se = [sample["token_logprobs"] for sample in info["samples"]["se"]]
        assert len(se) == 3 and info["scores"]["ln_pe"] == pytest.approx(-np.mean([np.mean(lp) for lp in se]), rel=1e-12)
        for sample in info["samples"]["se"]:
            assert len(sample["token_ids"]) == len(sample["token_logprobs"]) and isinstance(sample["text"], str)
        assert all(name in info["scores"] or name in info.get("missing", {}) for name in ("p_true", "mi", "lex_sim"))


def test_use_cache_resume_keeps_the_samples_and_their_scores(setup, sampled_run):
    root, model_dir, tasks_dir = setup
    output, _ = sampled_run
    resumed = root / "sampled_resumed"
    args = cli_args(model_dir, tasks_dir, resumed, "qa_parity", SAMPLED)
    result = run_cli([*lm_eval_command(), *args, "--use_cache", str(root / "cache_sampled" / "lm")], cwd=root)
    assert "Cached requests: 8, Requests remaining: 0" in result.stderr + result.stdout
    assert "scored with other settings" not in result.stderr
    before = {row["doc_id"]: row["uncertainty"] for row in read_samples(output, "qa_parity")}
    for row in read_samples(resumed, "qa_parity"):
        assert row["uncertainty"]["scores"] == before[row["doc_id"]]["scores"]
        assert row["uncertainty"]["samples"] == before[row["doc_id"]]["samples"]


def test_data_parallel_sampling_equals_one_process(setup, sampled_run):
    root, model_dir, tasks_dir = setup
    output, _ = sampled_run
    parallel = root / "dp_sampled"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
    os.environ["ACCELERATE_USE_CPU"] = "true"
    try:
        run_cli([*launcher, "-m", "lm_eval_semgrad", *cli_args(model_dir, tasks_dir, parallel, "qa_parity", SAMPLED)], cwd=root)
    finally:
        del os.environ["ACCELERATE_USE_CPU"]
    single = {row["doc_id"]: row["uncertainty"] for row in read_samples(output, "qa_parity")}
    rows = read_samples(parallel, "qa_parity")
    assert sorted(row["doc_id"] for row in rows) == sorted(single)
    for row in rows:
        for name, samples in single[row["doc_id"]]["samples"].items():
            for got, want in zip(row["uncertainty"]["samples"][name], samples, strict=True):
                assert (got["text"], got["token_ids"]) == (want["text"], want["token_ids"])  # the same draws
                assert got["token_logprobs"] == pytest.approx(want["token_logprobs"], rel=1e-4, abs=1e-6)
        for key, value in single[row["doc_id"]]["scores"].items():
            assert row["uncertainty"]["scores"][key] == pytest.approx(value, rel=1e-4, abs=1e-12), key


def test_nli_and_cross_encoder_baselines_log_what_they_compared(setup, tmp_path):
    from tiny_models import save_tiny_cross_encoder, save_tiny_nli_model

    root, model_dir, tasks_dir = setup
    nli, ce = save_tiny_nli_model(tmp_path / "nli"), save_tiny_cross_encoder(tmp_path / "ce")
    output = root / "nli_run"
    extra = (f",semgrad_methods=semgrad:se:discrete_se:self_con:deg:eigv:ecc:sar:token_sar:sentence_sar:sd,semgrad_samples=3,"
             f"semgrad_nli={nli},semgrad_cross_encoder={ce},semgrad_aux_batch_size=16")
    run_cli([*lm_eval_command(), *cli_args(model_dir, tasks_dir, output, "qa_parity", extra)], cwd=root)
    results = read_results(output)["results"]["qa_parity"]
    for method in ("se", "self_con", "deg", "sar", "sd"):
        assert f"{method}_auroc,none" in results
    recorded = read_results(output)["config"]["semgrad"]
    assert (recorded["nli"], recorded["cross_encoder"]) == (str(nli), str(ce))
    assert (recorded["aux_device"], recorded["aux_batch_size"]) == ("cpu", 16)
    for row in read_samples(output, "qa_parity"):
        info = row["uncertainty"]
        assert set(info["samples"]) == {"se", "sc", "sar", "sd"}
        assert len(info["samples"]["sd"]) == 10  # diverse beams: 10 beams in 10 groups, whatever semgrad_samples says
        assert info["sampling"]["sd"]["num_beam_groups"] == 10 and info["sampling"]["sd"]["do_sample"] is False
        assert len(info["clusters"]["se"]) == 3 and np.array(info["similarity"]["se"]).shape == (3, 3)
        assert np.diag(info["similarity"]["se"]).tolist() == [2, 2, 2]
        w = np.array(info["similarity"]["sc"])
        assert w.shape == (3, 3) and np.allclose(w, w.T) and np.allclose(np.diag(w), 1)
        for method in ("se", "discrete_se", "self_con", "deg", "eigv", "ecc", "sar", "token_sar", "sentence_sar", "sd"):
            assert method in info["scores"] or method in info["missing"], method


class Interrupted(Exception):
    """Stands for whatever stops a run midway (a crash, Ctrl-C, a lost machine)."""


def test_a_run_interrupted_in_the_sampling_stage_resumes_with_the_questions_it_finished(setup, tmp_path, monkeypatch):
    """Each question's record is kept (`--use_cache`) when its grad pass is done and again as soon as its sampling
    methods are scored: a resumed run samples only the questions the interrupted one had not finished, and runs no
    grad pass again."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from lm_eval_semgrad.sampling.scorer import SamplingScorer

    root, model_dir, tasks_dir = setup
    score_questions = SamplingScorer.score
    sampled: list[int] = []

    def interrupted_at_the_second_call(self, questions, progress=None):
        if len(sampled) == 1:
            raise Interrupted
        sampled.append(len(questions))
        return score_questions(self, questions, progress)

    run = dict(model="semgrad-hf", tasks=["qa_parity"], limit=8, device="cpu", apply_chat_template=True, log_samples=True,
               model_args=f"pretrained={model_dir},semgrad_batch_size=2,semgrad_methods=semgrad:ln_pe,semgrad_samples=2",
               use_cache=str(tmp_path / "cache" / "lm"), task_manager=TaskManager(include_path=str(tasks_dir)))
    monkeypatch.setattr(SamplingScorer, "score", interrupted_at_the_second_call)
    with pytest.raises(Interrupted):
        simple_evaluate(**run)
    assert sampled == [2]  # two questions were sampled and scored before the interruption

    def counted(self, questions, progress=None):
        sampled.append(len(questions))
        return score_questions(self, questions, progress)

    from lm_eval_semgrad.harness.model import SemGradHFLM

    score_with_backoff = SemGradHFLM._score_with_backoff
    grad_pass_rows: list[int] = []

    def counted_grad_passes(self, prompts, answers):
        grad_pass_rows.append(len(prompts))
        return score_with_backoff(self, prompts, answers)

    monkeypatch.setattr(SamplingScorer, "score", counted)
    monkeypatch.setattr(SemGradHFLM, "_score_with_backoff", counted_grad_passes)
    rows = simple_evaluate(**run)["samples"]["qa_parity"]
    assert sum(sampled[1:]) == 6  # the resumed run sampled the other six only ...
    assert grad_pass_rows == []  # ... and kept every answer's grad-pass scores
    assert len(rows) == 8
    for row in rows:
        info = row["uncertainty"]
        assert math.isfinite(info["scores"]["semgrad"]) and math.isfinite(info["scores"]["ln_pe"])
        assert len(info["samples"]["se"]) == 2
