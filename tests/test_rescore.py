"""`lm-eval-semgrad rescore`: SemGrad for saved sample logs, checked against inline semgrad-hf scores.

Sample logs come from the real `lm_eval` CLI (`--model hf` and `--model semgrad-hf`) on a tiny chat
model whose output head only ever picks whole-word tokens or EOS, so that
the re-tokenised answers are exactly the generated tokens (a random head emits byte pieces whose
canonical tokenisation differs, and then rescored ids cannot equal generated ids).
"""

from __future__ import annotations

import glob
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from harness_fixtures import offline_env, write_tasks
from tiny_models import build_chat_tokenizer, save_tiny_chat_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_semgrad import score
from lm_eval_semgrad.metrics import METRICS
from lm_eval_semgrad.rescore import cli, engine
from lm_eval_semgrad.rescore.encoding import PromptEncoder

pytestmark = pytest.mark.e2e  # every test here reads lm_eval runs made by subprocesses

METHODS = ("semgrad", "hybridgrad", "g_nll")
#: what semgrad-hf and rescore compute by default: the default methods plus the free baselines
INLINE_SCORES = ("semgrad", "hybridgrad", "g_nll", "mean_entropy", "max_prob_nll", "response_len")
LIMIT = 6
MAX_GEN_TOKS = 10  # qa_parity's generation_kwargs


def word_only_chat_model(directory: Path) -> Path:
    """The tiny chat model, its output head restricted to ' word' tokens and EOS (same argmax set always)."""
    save_tiny_chat_model(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    allowed = [
        index for token, index in tokenizer.get_vocab().items()
        if token.startswith("Ġ") and token[1:].isalpha() and len(token) >= 4
        and tokenizer.encode(" " + token[1:], add_special_tokens=False) == [index]
    ]
    assert len(allowed) >= 5
    allowed.append(tokenizer.eos_token_id)
    with torch.no_grad():
        weight = model.lm_head.weight
        others = torch.ones(weight.shape[0], dtype=torch.bool)
        others[allowed] = False
        weight[others] = weight[allowed].mean(0)  # their logit is the mean of the allowed ones: never the max
    model.save_pretrained(directory)
    return directory


SAMPLED_ARGS = ",semgrad_methods=semgrad:ln_pe:p_true:mi:lex_sim,semgrad_samples=3"


def lm_eval_args(model: str, model_dir: Path, tasks_dir: Path, output: Path, extra_model_args: str = "") -> list[str]:
    return [
        "--model", model, "--model_args", f"pretrained={model_dir}{extra_model_args}",
        "--tasks", "qa_parity,qa_filters", "--include_path", str(tasks_dir), "--limit", str(LIMIT),
        "--apply_chat_template", "--log_samples", "--output_path", str(output),
    ]


# The stock CLI entry point (what the `lm_eval` console script calls), run twice in one interpreter:
# the runs are independent, and the imports (most of a tiny run's time) are paid once.
TWO_RUNS = """
import json, sys
from lm_eval.__main__ import cli_evaluate
for argv in json.loads(sys.argv[1]):
    sys.argv = ["lm_eval", *argv]
    cli_evaluate()
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One `--model hf` and two `--model semgrad-hf` runs (the second with sampling baselines) of the same model,
    tasks and limit."""
    root = tmp_path_factory.mktemp("rescore")
    model_dir = word_only_chat_model(root / "model")
    tasks_dir = write_tasks(root / "tasks")
    hf, sg, sampled = root / "hf", root / "sg", root / "sampled"
    argv = [lm_eval_args("hf", model_dir, tasks_dir, hf), lm_eval_args("semgrad-hf", model_dir, tasks_dir, sg),
            lm_eval_args("semgrad-hf", model_dir, tasks_dir, sampled, SAMPLED_ARGS)]
    result = subprocess.run(
        [sys.executable, "-c", TWO_RUNS, json.dumps(argv)], cwd=root, env=offline_env(),
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"lm_eval runs failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return SimpleNamespace(root=root, model_dir=model_dir, hf=hf, sg=sg, sampled=sampled)


@pytest.fixture(scope="module")
def tiny(runs):
    tokenizer = AutoTokenizer.from_pretrained(runs.model_dir)
    model = AutoModelForCausalLM.from_pretrained(runs.model_dir, dtype=torch.float32).eval()
    return model, tokenizer


def samples_file(output: Path, task: str) -> Path:
    (path,) = glob.glob(str(output / "*" / f"samples_{task}_*.jsonl"))
    return Path(path)


def results_file(output: Path) -> Path:
    (path,) = glob.glob(str(output / "*" / "results_*.json"))
    return Path(path)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rescore(*args: str) -> int:
    return cli.main([*map(str, args), "--no_progress"])


def assert_scores_close(actual: dict, expected: dict, rel: float = 1e-4) -> None:
    assert set(actual) == set(expected)
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, rel=rel, abs=1e-12), key


def assert_rescored_match_inline(rescored: dict, inline: dict) -> None:
    """rescore computes what semgrad-hf computes: the asked-for methods plus the free baselines."""
    assert set(rescored) == set(inline)
    assert_scores_close(rescored, inline)


def copy_run_files(source_dir: Path, task: str, destination: Path) -> Path:
    """A samples file and its results JSON, copied into destination/<run folder>/."""
    sample = samples_file(source_dir, task)
    folder = destination / sample.parent.name
    folder.mkdir(parents=True)
    shutil.copy(sample, folder / sample.name)
    shutil.copy(results_file(source_dir), folder)
    return folder / sample.name


# --------------------------------------------------------------------------- hf log vs inline semgrad-hf


@pytest.fixture(scope="module")
def rescored_hf(runs):
    out = runs.root / "rescored_hf"
    assert rescore("--model_args", f"pretrained={runs.model_dir}", runs.hf, "--output_path", out) == 0
    return out


def test_sample_log_layout_of_lm_eval_0_4_13(runs):
    row = read_rows(samples_file(runs.hf, "qa_parity"))[0]
    request = row["arguments"]["gen_args_0"]
    assert isinstance(request["arg_0"], str) and request["arg_0"].endswith("<|im_start|>assistant\n")
    assert request["arg_1"]["max_gen_toks"] == MAX_GEN_TOKS
    assert isinstance(row["resps"][0][0], str) and row["filter"] == "none" and row["metrics"][0] == "parity"


def test_hf_log_rescored_equals_inline_semgrad_hf_scores(runs, rescored_hf, tiny):
    _, tokenizer = tiny
    inline = {row["doc_id"]: row for row in read_rows(samples_file(runs.sg, "qa_parity"))}
    rows = read_rows(samples_file(rescored_hf, "qa_parity"))
    assert len(rows) == LIMIT
    matched, endings = 0, set()
    for row in rows:
        info, expected = row["uncertainty"], inline[row["doc_id"]]
        assert row["resps"] == expected["resps"]  # greedy: both runs generated the same answers
        assert info["rescored"] is True and info["position"] == -3 and info["layers"] == "upper_half"
        assert info["correct"] == int(row["parity"] >= 0.5) and info["correctness"] == "parity >= 0.5"
        assert info["prompt_len"] == expected["uncertainty"]["prompt_len"]
        if info["roundtrip"] and info["response_ids"] == expected["uncertainty"]["response_ids"]:
            matched += 1
            assert_rescored_match_inline(info["scores"], expected["uncertainty"]["scores"])
            endings.add("eos" if info["response_ids"][-1] == tokenizer.eos_token_id else "limit")
    assert matched == LIMIT  # whole-word answers round-trip, so every row is the generated token sequence
    assert endings == {"eos", "limit"}  # both ways generation ends were rebuilt (EOS appended / not)

    # the Python API on the same rows gives the same scores and labels
    from lm_eval_semgrad.rescore import rescore_samples

    model, _ = tiny
    result = rescore_samples(model, tokenizer, read_rows(samples_file(runs.hf, "qa_parity")), correctness="parity")
    assert result.counts["scored_rows"] == LIMIT and not result.bad_rows
    for row, written in zip(result.rows, rows):
        assert row["uncertainty"]["correct"] == written["uncertainty"]["correct"]
        assert_scores_close(row["uncertainty"]["scores"], written["uncertainty"]["scores"], rel=1e-6)
    assert result.metrics["none"]["semgrad_auroc"] == pytest.approx(
        json.loads(results_file(rescored_hf).read_text())["results"]["qa_parity"]["semgrad_auroc,none"]
    )


def test_results_json_reads_like_a_semgrad_hf_run(runs, rescored_hf):
    results = json.loads(results_file(rescored_hf).read_text())
    inline = json.loads(results_file(runs.sg).read_text())
    parity = results["results"]["qa_parity"]
    assert parity["alias"] == "qa_parity" and parity["sample_len"] == LIMIT
    assert parity["parity,none"] == inline["results"]["qa_parity"]["parity,none"]  # the task's own metric, copied
    for method in METHODS:
        for metric in METRICS:
            key = f"{method}_{metric},none"
            assert parity[key] == pytest.approx(inline["results"]["qa_parity"][key], rel=1e-6, nan_ok=True)
            assert f"{method}_{metric}_stderr,none" in parity
            for filter_key in ("strict-match", "flexible-extract"):
                assert f"{method}_{metric},{filter_key}" in results["results"]["qa_filters"]
    assert results["config"]["model"] == "semgrad-rescore"
    assert results["config"]["model_args"] == {"pretrained": str(runs.model_dir)}
    assert results["config"]["source_model"] == "hf"
    assert sorted(Path(p).name for p in results["config"]["source_files"]) == sorted(
        samples_file(runs.hf, task).name for task in ("qa_filters", "qa_parity")
    )
    assert results["rescore"]["roundtrip_mismatches"] == 0 and results["rescore"]["bad_rows"] == 0
    assert results["higher_is_better"]["qa_parity"]["semgrad_auroc"] is True


def test_filters_of_one_document_share_one_score(rescored_hf):
    by_filter: dict[str, dict] = {}
    for row in read_rows(samples_file(rescored_hf, "qa_filters")):
        by_filter.setdefault(row["filter"], {})[row["doc_id"]] = row["uncertainty"]["scores"]
    assert set(by_filter) == {"strict-match", "flexible-extract"}
    assert by_filter["strict-match"] == by_filter["flexible-extract"]
    summary = json.loads(results_file(rescored_hf).read_text())["rescore"]["tasks"]["qa_filters"]
    assert summary["rows"] == 2 * LIMIT and summary["grad_pass_samples"] == LIMIT


# --------------------------------------------------------------------------- semgrad-hf logs: logged ids


def test_semgrad_hf_log_scores_its_logged_ids_exactly_without_a_roundtrip_mismatch(runs, tiny, tmp_path, capsys):
    """Logged response_ids are the generated ids: scoring them is exact, whatever re-tokenising the text gives."""
    model, tokenizer = tiny
    source = copy_run_files(runs.sg, "qa_parity", tmp_path / "in")
    rows = read_rows(source)
    original = rows[0]["uncertainty"]["response_ids"]
    # the same text in single-byte tokens: what a non-canonical generation looks like
    text_ids = original[:-1] if original[-1] == tokenizer.eos_token_id else original
    chars = "".join(tokenizer.convert_ids_to_tokens(text_ids))
    split = tokenizer.convert_tokens_to_ids(list(chars)) + original[len(text_ids):]
    assert split != original and tokenizer.decode(split, skip_special_tokens=True) == rows[0]["resps"][0][0]
    rows[0]["uncertainty"]["response_ids"] = split
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))

    out = tmp_path / "out"
    assert rescore("--model_args", f"pretrained={runs.model_dir}", source, "--output_path", out) == 0
    rescored = read_rows(samples_file(out, "qa_parity"))
    first = rescored[0]["uncertainty"]
    assert first["roundtrip"] is True and first["roundtrip_issue"] is None
    assert first["response_ids"] == split  # the logged ids are what is scored
    prompt_ids = tokenizer(rows[0]["arguments"]["gen_args_0"]["arg_0"]).input_ids
    assert_scores_close(first["scores"], score(model, [prompt_ids], [split], position=-3, scores=INLINE_SCORES)[0])
    for row, logged in zip(rescored[1:], rows[1:]):
        assert row["uncertainty"]["roundtrip"] is True
        assert_rescored_match_inline(row["uncertainty"]["scores"], logged["uncertainty"]["scores"])
    assert json.loads(results_file(out).read_text())["rescore"]["roundtrip_mismatches"] == 0
    assert "0 token round-trip mismatches" in capsys.readouterr().out


# --------------------------------------------------------------------------- plain JSONL


def test_plain_jsonl_with_chat_messages(runs, tiny, tmp_path):
    model, tokenizer = tiny
    questions = ["what is water made of ?", "which organ pumps blood ?", "what do bees make ?"]
    answers = [" water", " blood type", " energy made"]
    rows = [
        {"id": i, "messages": [{"role": "user", "content": q}], "response": a, "correct": i % 2}
        for i, (q, a) in enumerate(zip(questions, answers))
    ]
    rows.append({"id": 3, "prompt": "Question: what is the largest ocean ?\nAnswer:", "response": " atom", "correct": 1})
    source = tmp_path / "answers.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "out"
    assert rescore("--model_args", f"pretrained={runs.model_dir},semgrad_position=-2", "--jsonl", source,
                   "--output_path", out) == 0

    written = read_rows(out / "answers.jsonl")
    assert [row["id"] for row in written] == [0, 1, 2, 3]
    prompts = [
        tokenizer.apply_chat_template(row["messages"], add_generation_prompt=True, tokenize=True) for row in rows[:3]
    ]
    prompts = [list(p["input_ids"]) if hasattr(p, "keys") else list(p) for p in prompts]
    prompts.append(tokenizer(rows[3]["prompt"]).input_ids)
    responses = [tokenizer(row["response"], add_special_tokens=False).input_ids + [tokenizer.eos_token_id] for row in rows]
    expected = score(model, prompts, responses, position=-2, scores=INLINE_SCORES)
    for row, prompt, response, want in zip(written, prompts, responses, expected):
        assert row["rescore"]["prompt_len"] == len(prompt) and row["rescore"]["response_ids"] == response
        assert row["rescore"]["roundtrip"] is True and row["rescore"]["position"] == -2
        assert_scores_close(row["scores"], want, rel=1e-5)
    summary = json.loads((out / "answers.summary.json").read_text())
    assert summary["rows"] == 4 and summary["scored_rows"] == 4 and summary["bad_rows"] == 0
    assert math.isfinite(summary["metrics"]["semgrad_auroc"])

    # the Python API gives the same scores
    from lm_eval_semgrad.rescore import rescore_jsonl

    result = rescore_jsonl(model, tokenizer, rows, position=-2, bootstrap_iters=0)
    for row, want in zip(result.rows, written):
        assert_scores_close(row["scores"], want["scores"], rel=1e-5)


# --------------------------------------------------------------------------- bad rows


def test_bad_rows_stop_with_file_and_line_or_are_skipped_and_counted(runs, tmp_path, capsys):
    source = copy_run_files(runs.hf, "qa_parity", tmp_path / "in")
    lines = source.read_text().splitlines()
    multiple_choice = json.loads(lines[1])
    multiple_choice["arguments"]["gen_args_0"]["arg_1"] = " carbon dioxide"  # a loglikelihood request
    lines[1] = json.dumps(multiple_choice)
    lines[3] = lines[3][: len(lines[3]) // 2]  # a truncated line 4
    source.write_text("\n".join(lines) + "\n")
    model_args = f"pretrained={runs.model_dir}"

    assert rescore("--model_args", model_args, source, "--output_path", tmp_path / "strict") == 1
    error = capsys.readouterr().err
    assert f"{source}:2:" in error and "loglikelihood" in error and "--skip_bad" in error

    assert rescore("--model_args", model_args, source, "--output_path", tmp_path / "lenient", "--skip_bad") == 0
    printed = capsys.readouterr().out
    assert f"skipped {source}:2:" in printed and f"skipped {source}:4: not valid JSON" in printed
    rows = read_rows(samples_file(tmp_path / "lenient", "qa_parity"))
    assert [row["doc_id"] for row in rows] == [0, 2, 4, 5]
    summary = json.loads(results_file(tmp_path / "lenient").read_text())["rescore"]["tasks"]["qa_parity"]
    assert summary["bad_rows"] == 2 and summary["rows"] == LIMIT and summary["scored_rows"] == LIMIT - 2
    assert [bad["line"] for bad in summary["bad_row_list"]] == [2, 4]


# --------------------------------------------------------------------------- resume


class Interrupted(Exception):
    pass


def test_resume_after_interruption_scores_only_the_remaining_rows(runs, tmp_path, monkeypatch):
    source = samples_file(runs.hf, "qa_parity")
    model_args = f"pretrained={runs.model_dir},semgrad_memory=unbounded"  # one grad pass per batch of 2
    full = tmp_path / "full"
    assert rescore("--model_args", model_args, source, "--output_path", full, "--batch_size", "2") == 0

    real_score = engine.score
    calls: list[int] = []

    def interrupted_score(model, prompts, responses, **kwargs):
        if len(calls) == 1:
            raise Interrupted  # dies during the second grad-pass batch
        calls.append(len(prompts))
        return real_score(model, prompts, responses, **kwargs)

    partial = tmp_path / "partial"
    monkeypatch.setattr(engine, "score", interrupted_score)
    with pytest.raises(Interrupted):
        rescore("--model_args", model_args, source, "--output_path", partial, "--batch_size", "2")
    output = samples_file(partial, "qa_parity")
    assert [row["doc_id"] for row in read_rows(output)] == [0, 1]  # the first batch was flushed
    with open(output, "a") as handle:
        handle.write('{"doc_id": 2, "doc": {"quest')  # and half of a row was being written

    scored: list[int] = []

    def counting_score(model, prompts, responses, **kwargs):
        scored.append(len(prompts))
        return real_score(model, prompts, responses, **kwargs)

    monkeypatch.setattr(engine, "score", counting_score)
    assert rescore("--model_args", model_args, source, "--output_path", partial, "--batch_size", "2") == 0
    assert sum(scored) == LIMIT - 2
    assert read_rows(samples_file(partial, "qa_parity")) == read_rows(samples_file(full, "qa_parity"))
    done = json.loads(results_file(partial).read_text())
    assert done["rescore"]["tasks"]["qa_parity"]["kept_from_previous_run"] == 2
    assert done["results"] == json.loads(results_file(full).read_text())["results"]

    # a rerun with settings that change the scores must not mix rows of two configurations
    scored.clear()
    other = f"{model_args},semgrad_position=-1"
    assert rescore("--model_args", other, source, "--output_path", partial) == 1
    assert rescore("--model_args", other, source, "--output_path", partial, "--overwrite") == 0
    assert sum(scored) == LIMIT


# --------------------------------------------------------------------------- prompt encoding rule


@pytest.mark.parametrize("add_bos_token", [None, True, False])
def test_prompt_encoding_matches_hflm_tok_batch_encode(add_bos_token):
    from lm_eval.models.huggingface import HFLM
    from tokenizers import processors

    tokenizer = build_chat_tokenizer()  # give it a BOS that the tokenizer adds, as Llama tokenizers do
    tokenizer.bos_token = "<|endoftext|>"
    bos_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", bos_id)]
    )
    hflm = SimpleNamespace(tokenizer=tokenizer, backend="causal", add_bos_token=add_bos_token)
    prompts = [
        "Question: what is the answer ?\nAnswer:",  # plain prompt: the tokenizer's default adds BOS
        "<|endoftext|>what is water ?",  # starts with BOS already (a template that writes it)
        "<|im_start|>user\nwhat is water ?<|im_end|>\n<|im_start|>assistant\n",  # chat-templated
    ]
    for prompt in prompts:
        for truncate, max_length in ((None, 4096), (6, 6 + MAX_GEN_TOKS)):
            ids, mask = HFLM.tok_batch_encode(hflm, [prompt], left_truncate_len=truncate)
            expected = ids[0][mask[0].bool()].tolist()
            encoder = PromptEncoder(tokenizer, add_bos_token, max_length)
            assert encoder.encode(prompt, {"max_gen_toks": MAX_GEN_TOKS}) == expected, (prompt, truncate)


def test_subcommand_module_plugs_into_the_plugin_cli():
    from lm_eval_semgrad import cli as plugin_cli

    args = plugin_cli.build_parser().parse_args(
        ["rescore", "--model_args", "pretrained=x", "a.jsonl", "--output_path", "out", "--skip_bad"]
    )
    assert args._module is cli and args.samples == ["a.jsonl"] and args.skip_bad and args.batch_size is None


def test_rescore_draws_the_same_samples_as_the_inline_run(runs, tmp_path):
    """Per-row random streams: rescoring an hf log with the same seed and K gives semgrad-hf's own sampling scores."""
    out = tmp_path / "rescored_sampled"
    assert rescore("--model_args", f"pretrained={runs.model_dir}{SAMPLED_ARGS}", runs.hf, "--output_path", out) == 0
    inline = {row["doc_id"]: row["uncertainty"] for row in read_rows(samples_file(runs.sampled, "qa_parity"))}
    rows = read_rows(samples_file(out, "qa_parity"))
    assert len(rows) == LIMIT
    for row in rows:
        info, want = row["uncertainty"], inline[row["doc_id"]]
        assert set(info["samples"]) == {"se", "mi"} and info["sampling"] == want["sampling"]
        for name, samples in want["samples"].items():
            assert [s["token_ids"] for s in info["samples"][name]] == [s["token_ids"] for s in samples]
        for method in ("ln_pe", "p_true", "mi", "lex_sim"):
            assert info["scores"][method] == pytest.approx(want["scores"][method], rel=1e-4, abs=1e-9), method
    # a rerun keeps every row that already has the sampling methods ...
    assert rescore("--model_args", f"pretrained={runs.model_dir}{SAMPLED_ARGS}", runs.hf, "--output_path", out) == 0
    assert read_rows(samples_file(out, "qa_parity")) == rows


def test_a_resumed_rescore_that_adds_sampling_methods_scores_them(runs, rescored_hf, tmp_path):
    """... and rows of an earlier rescore without them are not kept as if they had them."""
    out = tmp_path / "added"
    shutil.copytree(rescored_hf, out)
    assert rescore("--model_args", f"pretrained={runs.model_dir}{SAMPLED_ARGS}", runs.hf, "--output_path", out) == 0
    for row in read_rows(samples_file(out, "qa_parity")):
        assert {"ln_pe", "p_true", "mi", "lex_sim"} <= set(row["uncertainty"]["scores"]) | set(row["uncertainty"].get("missing", {}))


def test_why_a_metric_is_undefined_is_logged_once_not_once_per_method_and_metric(caplog):
    from lm_eval_semgrad.metrics import fit_confidence_map
    from lm_eval_semgrad.rescore.results import metric_values
    from lm_eval_semgrad.sample_metrics import UncertaintySample

    samples = [UncertaintySample(record={"scores": {"semgrad": float(i), "g_nll": 2.0 * i}}, correct=0, label="x")
               for i in range(4)]
    samples.append(UncertaintySample(record={"scores": {"g_nll": 1.0}}, correct=1, label="x"))  # no semgrad score
    fitted = fit_confidence_map([0.0, 1.0, 2.0, 3.0], [1, 0, 1, 0], method="platt")
    with caplog.at_level("WARNING"):
        values = metric_values(samples, ["semgrad", "g_nll"], bootstrap_iters=0, confidence_maps={"semgrad": fitted})
    assert math.isnan(values["semgrad_auroc"]) and math.isfinite(values["semgrad_brier"])
    said = [record.getMessage() for record in caplog.records]
    assert len([m for m in said if "scored answers are wrong" in m]) == 1, said
    # the calibration metrics' aggregations share the run's warned set: the missing score is said once too
    assert len([m for m in said if "1 of 5 answers have no semgrad score" in m]) == 1, said


def test_the_python_api_takes_the_auxiliary_models_of_the_nli_and_cross_encoder_baselines(tiny, tmp_path):
    from tiny_models import save_tiny_cross_encoder, save_tiny_nli_model

    from lm_eval_semgrad.rescore import rescore_jsonl

    model, tokenizer = tiny
    nli, ce = save_tiny_nli_model(tmp_path / "nli"), save_tiny_cross_encoder(tmp_path / "ce")
    rows = [{"messages": [{"role": "user", "content": q}], "response": " water", "correct": i % 2, "max_tokens": 12}
            for i, q in enumerate(["what is water made of ?", "what do bees make ?"])]
    result = rescore_jsonl(model, tokenizer, rows, methods=["semgrad", "self_con", "deg", "sar"], samples=2,
                           nli=str(nli), cross_encoder=str(ce), aux_device="cpu", aux_batch_size=3, bootstrap_iters=0)
    for row in result.rows:
        extras = row["rescore"]
        assert set(extras["samples"]) == {"sc", "sar"} and len(extras["samples"]["sc"]) == 2
        assert np.array(extras["similarity"]["sc"]).shape == (2, 2)
        for method in ("self_con", "deg", "sar"):
            assert method in row["scores"] or method in extras["missing"], method
    with pytest.raises(ValueError, match="could not be loaded"):  # the default hub id is not reachable offline
        rescore_jsonl(model, tokenizer, rows, methods=["self_con"], samples=2, bootstrap_iters=0)


def test_answers_whose_generated_ids_cannot_be_rebuilt_are_flagged(tiny):
    """Text that re-encodes to itself can still not be what was generated: U+FFFD stands for bytes that were not
    valid UTF-8, and more tokens than max_gen_toks allowed cannot have been generated."""
    from lm_eval_semgrad.rescore import rescore_jsonl

    model, tokenizer = tiny
    rows = [{"prompt": "what is water made of ?", "response": " water \ufffd ice"},
            {"prompt": "what is water made of ?", "response": " water and ice", "max_tokens": 2},
            {"prompt": "what is water made of ?", "response": " water and ice", "max_tokens": 20}]
    assert tokenizer.decode(tokenizer(rows[0]["response"], add_special_tokens=False).input_ids) == rows[0]["response"]
    assert len(tokenizer(rows[1]["response"], add_special_tokens=False).input_ids) > 2
    result = rescore_jsonl(model, tokenizer, rows, methods=["semgrad"])
    first, second, third = (row["rescore"] for row in result.rows)
    assert first["roundtrip"] is False and "U+FFFD" in first["roundtrip_issue"]
    assert second["roundtrip"] is False and "more than the 2 generation allowed" in second["roundtrip_issue"]
    assert third["roundtrip"] is True and third["roundtrip_issue"] is None
