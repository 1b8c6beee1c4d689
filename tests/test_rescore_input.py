"""`lm-eval-semgrad rescore` on bad input: every problem a clear message naming file:line or the arg, found early."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_models import save_tiny_chat_model

from lm_eval_semgrad.rescore import cli


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_chat_model(tmp_path_factory.mktemp("rescore_input") / "model")


def rescore(*args) -> int:
    return cli.main([*map(str, args), "--no_progress"])


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_jsonl_rows_the_model_cannot_score_are_bad_rows_by_file_and_line(model_dir, tmp_path, capsys):
    rows = [
        {"prompt": "Question: what is water ?\nAnswer:", "response": " water", "correct": 1},
        {"prompt": "hi", "response": " water", "correct": 0},  # shorter than |semgrad_position| = 8
        {"prompt": "Question: what ?\nAnswer:", "response": " water", "response_ids": [5, 99999], "correct": 1},
        {"prompt": "water " * 3000, "response": " water", "correct": 0},  # longer than the model's 2048 positions
        {"prompt": "Question: what is ice ?\nAnswer:", "response": " ice", "correct": 0},
    ]
    source = write_jsonl(tmp_path / "rows.jsonl", rows)
    model_args = f"pretrained={model_dir},semgrad_position=-8"
    assert rescore("--model_args", model_args, "--jsonl", source, "--output_path", tmp_path / "strict") == 1
    error = capsys.readouterr().err
    assert f"{source}:2: the prompt has" in error and "fewer than |semgrad_position| = 8" in error
    assert "Traceback" not in error and "sample 0" not in error

    assert rescore("--model_args", model_args, "--jsonl", source, "--output_path", tmp_path / "lenient", "--skip_bad") == 0
    printed = capsys.readouterr().out
    assert f"skipped {source}:2: the prompt has" in printed
    assert f"skipped {source}:3: token ids [99999] are outside the model's vocabulary" in printed
    assert f"skipped {source}:4: prompt + answer are" in printed and "more than the model's 2048 positions" in printed
    written = [json.loads(line) for line in (tmp_path / "lenient" / "rows.jsonl").read_text().splitlines()]
    assert [row["rescore"]["line"] for row in written] == [1, 5] and all(row["scores"] for row in written)


def test_a_results_file_given_as_input_is_named_as_such(model_dir, tmp_path, capsys):
    results = tmp_path / "results_2025-01-01T00-00-00.000000.json"
    results.write_text(json.dumps({"results": {}}))
    assert rescore("--model_args", f"pretrained={model_dir}", results, "--output_path", tmp_path / "out") == 1
    error = capsys.readouterr().err
    assert "is an lm-eval results file" in error and "samples_<task>_<timestamp>.jsonl" in error


def test_nothing_scorable_writes_no_empty_results_file(model_dir, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    sample = run / "samples_qa_2025-01-01T00-00-00.000000.jsonl"
    sample.write_text(json.dumps({"doc_id": 0, "arguments": {"gen_args_0": {"arg_0": "q", "arg_1": None}},
                                  "resps": [["a"]], "contains": 1.0}) + "\n")
    out = tmp_path / "out"
    assert rescore("--model_args", f"pretrained={model_dir}", run, "--output_path", out, "--skip_bad") == 1
    assert "no row could be scored" in capsys.readouterr().err
    assert not list(out.rglob("results_*.json"))


@pytest.mark.parametrize("dtype", ["bogus", "load", "int8"])
def test_a_dtype_that_is_no_floating_point_torch_dtype_is_refused(model_dir, tmp_path, capsys, dtype):
    assert rescore("--model_args", f"pretrained={model_dir},dtype={dtype}", "--jsonl", tmp_path / "x.jsonl",
                   "--output_path", tmp_path / "out") == 1
    error = capsys.readouterr().err
    assert f"dtype={dtype!r} is not a floating-point torch dtype" in error and "Traceback" not in error


def test_an_output_path_that_cannot_be_written_fails_before_the_model_loads(model_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert rescore("--model_args", f"pretrained={model_dir}", "--jsonl", tmp_path / "x.jsonl",
                   "--output_path", blocker / "out") == 1
    error = capsys.readouterr().err
    assert "--output_path: cannot write" in error and "loading" not in error
