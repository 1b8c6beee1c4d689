"""`lm-eval-semgrad sweep`: a models x tasks grid that fails, resumes and completes.

The resume protocol is exercised over a 2 x 2 grid with a stand-in for lm_eval passed as
`--launcher` (a real subprocess, but no torch: instant); one cell then runs the real
`python -m lm_eval_semgrad` on a tiny model.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from harness_fixtures import write_tasks
from tiny_models import save_tiny_chat_model

from lm_eval_semgrad import cli as plugin_cli
from lm_eval_semgrad.sweep import SweepError, parse_models_file, parse_tasks
from lm_eval_semgrad.sweep import main as sweep_main

FAKE_LM_EVAL = textwrap.dedent(
    '''
    """Stand-in for `python -m lm_eval_semgrad`: writes lm-eval-shaped output, or fails like a bad model."""
    import argparse, json, random, sys
    from pathlib import Path

    parser = argparse.ArgumentParser()
    parser.add_argument("-m")
    parser.add_argument("--model")
    parser.add_argument("--model_args")
    parser.add_argument("--tasks")
    parser.add_argument("--output_path")
    parser.add_argument("--log_samples", action="store_true")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    pretrained = dict(p.split("=", 1) for p in args.model_args.split(","))["pretrained"]
    print(f"evaluating {pretrained} on {args.tasks}", flush=True)
    if "broken" in pretrained:
        print("Traceback (most recent call last):", file=sys.stderr)
        print(f"OSError: cannot load model from {pretrained}", file=sys.stderr)
        sys.exit(3)
    rng = random.Random(pretrained + args.tasks)
    out = Path(args.output_path) / pretrained.strip("/").replace("/", "__")
    out.mkdir(parents=True)
    ts = "2025-01-01T00-00-00.000000"
    rows = []
    for i in range(args.limit):
        correct = int(rng.random() < 0.5)
        scores = {"semgrad": rng.random() + (1 - correct), "g_nll": rng.random()}
        rows.append({"doc_id": i, "filter": "none", "contains": float(correct),
                     "uncertainty": {"scores": scores, "correct": correct, "correctness": "contains >= 0.5"}})
    (out / f"samples_{args.tasks}_{ts}.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
    results = {"results": {args.tasks: {"alias": args.tasks}}, "config": {"model": args.model,
               "model_args": args.model_args}, "model_name": pretrained, "configs": {}}
    (out / f"results_{ts}.json").write_text(json.dumps(results))
    '''
)


def sweep(argv, capsys) -> tuple[int, str, str]:
    code = sweep_main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_models_file_format(tmp_path):
    path = tmp_path / "models.txt"
    path.write_text(textwrap.dedent(
        """\
        # name   model_args
        small    pretrained=/models/a,semgrad_position=-4   # a comment
        pretrained=Org/Big-Model#rev,dtype=bfloat16

        """
    ))
    first, second = parse_models_file(path)
    assert (first.name, first.model_args) == ("small", "pretrained=/models/a,semgrad_position=-4")
    assert first.args == {"pretrained": "/models/a", "semgrad_position": "-4"}
    assert (second.name, second.model_args) == ("Big-Model_rev", "pretrained=Org/Big-Model#rev,dtype=bfloat16")

    for text, message in [
        ("a pretrained=/x\na pretrained=/y\n", f"{path}:2: model name 'a' is already used at {path}:1"),
        ("pretrained=/x/m\npretrained=/y/m\n", f"{path}:2: model name 'm' is already used"),
        ("a b pretrained=/x\n", f"{path}:1: expected 'MODEL_ARGS' or 'NAME MODEL_ARGS'"),
        ("dtype=float16\n", f"{path}:1: model args 'dtype=float16' have no pretrained="),
        ("name pretrained\n", f"{path}:1: model args 'pretrained' are not comma-separated key=value pairs"),
        ("# nothing\n", f"{path}: no models"),
    ]:
        path.write_text(text)
        with pytest.raises(SweepError) as info:
            parse_models_file(path)
        assert message in str(info.value)


def test_bad_arguments_exit_2(tmp_path, capsys):
    models = tmp_path / "models.txt"
    models.write_text("m pretrained=/x\n")
    code, _, err = sweep(["--models", models, "--tasks", "t", "--output_path", tmp_path / "o", "--", "--tasks", "u"],
                         capsys)
    assert code == 2 and "the sweep sets --tasks itself" in err
    code, _, err = sweep(["--models", tmp_path / "none.txt", "--tasks", "t", "--output_path", tmp_path / "o"], capsys)
    assert code == 2 and "none.txt: cannot read models file" in err


def test_failed_cells_are_reported_and_a_rerun_resumes(tmp_path, capsys, monkeypatch):
    fake = tmp_path / "fake_lm_eval.py"
    fake.write_text(FAKE_LM_EVAL)
    for name in ("good-a", "broken-b", "good-b"):
        (tmp_path / name).mkdir()
    models = tmp_path / "models.txt"
    models.write_text(f"a pretrained={tmp_path / 'good-a'}\nb pretrained={tmp_path / 'broken-b'}\n")
    out = tmp_path / "sweep"
    # through the plugin's real subcommand table, as `lm-eval-semgrad sweep ...` runs it
    argv = ["sweep", "--models", str(models), "--tasks", "t1,t2", "--output_path", str(out),
            "--launcher", f"{sys.executable} {fake}", "--bootstrap_iters", "0", "--", "--limit", "20"]

    # 1: model b fails in both tasks; a's cells finish; the grid goes on and the exit status says so
    code = plugin_cli.main(argv)
    text = capsys.readouterr().out
    assert code == 1
    assert "[1/4] a x t1 ... done in" in text and "[2/4] a x t2 ... done in" in text
    assert "[3/4] b x t1 ... FAILED (exit code 3)" in text and "[4/4] b x t2 ... FAILED (exit code 3)" in text
    assert f"    | OSError: cannot load model from {tmp_path / 'broken-b'}" in text
    assert "sweep: 4 cells: 2 done, 0 skipped (finished earlier), 2 failed" in text
    log = out / "b" / "t1" / "lm_eval.log"
    assert "OSError: cannot load model" in log.read_text()
    state = json.loads((out / "b" / "t1" / "semgrad_cell.json").read_text())
    assert (state["status"], state["returncode"]) == ("failed", 3)
    command = json.loads((out / "a" / "t2" / "semgrad_cell.json").read_text())["command"]
    assert command[-5:] == ["--output_path", str(out / "a" / "t2"), "--log_samples", "--limit", "20"]
    report = (out / "report.md").read_text()
    assert "| a | t1 | none |" in report and "| a | t2 | none |" in report
    assert "| b | t1 | * | sweep cell failed (exit code 3); log: " in report

    finished = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("a/*/*/results_*.json")}
    assert len(finished) == 2

    # 2: rerun unchanged: finished cells are skipped untouched, b fails again
    code = plugin_cli.main(argv)
    text = capsys.readouterr().out
    assert code == 1
    assert "[1/4] a x t1 ... skipped (finished: " in text and "[2/4] a x t2 ... skipped" in text
    assert "2 skipped (finished earlier), 2 failed" in text
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("a/*/*/results_*.json")} == finished

    # 3: fix model b: only its cells run, everything finishes, the report has no failed cell left
    models.write_text(f"a pretrained={tmp_path / 'good-a'}\nb pretrained={tmp_path / 'good-b'}\n")
    code = plugin_cli.main(argv)
    text = capsys.readouterr().out
    assert code == 0, text
    assert "sweep: 4 cells: 2 done, 2 skipped (finished earlier), 0 failed" in text
    assert f"report: {out / 'report.md'}" in text
    report = (out / "report.md").read_text()
    for model in ("a", "b"):
        for task in ("t1", "t2"):
            assert f"| {model} | {task} | none |" in report
    assert "None: every run found has uncertainty scores." in report
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("a/*/*/results_*.json")} == finished

    # 4: other lm_eval args, then other model args: a finished cell is refused, never reported under new settings
    code = plugin_cli.main([*argv[:-1], "10"])
    text = capsys.readouterr().out
    assert code == 1 and "[1/4] a x t1 ... REFUSED: finished earlier with other settings (lm_eval_args: " in text
    assert f"Delete {out / 'a' / 't1'} to run it again" in text
    models.write_text(f"a pretrained={tmp_path / 'good-a'},dtype=float32\nb pretrained={tmp_path / 'good-b'}\n")
    code = plugin_cli.main(argv)
    text = capsys.readouterr().out
    assert code == 1 and "[1/4] a x t1 ... REFUSED: finished earlier with other settings (model_args: " in text
    assert "[3/4] b x t1 ... skipped" in text
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("a/*/*/results_*.json")} == finished


@pytest.mark.parametrize("name", [".", "..", "..."])
def test_dot_task_names_are_refused(name):
    with pytest.raises(SweepError, match="not a plain task name"):
        parse_tasks([f"qa,{name}"])


@pytest.mark.e2e
def test_real_lm_eval_cell_and_missing_model_path(tmp_path, capsys):
    """One real `python -m lm_eval_semgrad` cell on a tiny model; a model whose path does not exist fails at once."""
    model_dir = save_tiny_chat_model(tmp_path / "tiny")
    tasks_dir = write_tasks(tmp_path / "tasks")
    models = tmp_path / "models.txt"
    models.write_text(f"tiny pretrained={model_dir},semgrad_batch_size=4\ngone pretrained={tmp_path / 'gone'}\n")
    out = tmp_path / "sweep"
    argv = ["--models", models, "--tasks", "qa_parity", "--output_path", out, "--bootstrap_iters", "100",
            "--", "--limit", "4", "--include_path", tasks_dir, "--apply_chat_template"]
    code, text, _ = sweep(argv, capsys)
    assert code == 1, text
    assert "[1/2] tiny x qa_parity ... done in" in text
    assert "[2/2] gone x qa_parity ... FAILED (not started)" in text
    assert f"pretrained path {tmp_path / 'gone'} does not exist ({models}:2)" in text
    (samples,) = out.glob("tiny/qa_parity/*/samples_qa_parity_*.jsonl")
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(rows) == 4 and all(set(row["uncertainty"]["scores"]) >= {"semgrad", "g_nll"} for row in rows)
    report = (out / "report.md").read_text()
    assert "| tiny | qa_parity | none |" in report
    assert "| gone | qa_parity | * | sweep cell failed: not started: pretrained path" in report

    models.write_text(f"tiny pretrained={model_dir},semgrad_batch_size=4\n")
    code, text, _ = sweep(argv, capsys)
    assert code == 0, text
    assert "[1/1] tiny x qa_parity ... skipped (finished: " in text
    assert "None: every run found has uncertainty scores." in (out / "report.md").read_text()
