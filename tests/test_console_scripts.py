"""The installed `lm-eval-semgrad` console script and `lm_eval`, as a user types them, one chain of real processes.

calibrate -> the `lm_eval` command calibrate prints (run as printed, plus --limit) -> rescore of that
run with the same calibration -> report -> sweep --dry_run. Every documented option of the
subcommands is typed at least once; each step checks that what was asked is what was recorded.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from harness_fixtures import offline_env
from tiny_models import save_tiny_chat_model

pytestmark = pytest.mark.e2e


def console_script(name: str) -> str:
    script = Path(sys.executable).with_name(name)
    assert script.exists(), f"{name} is not installed next to {sys.executable}"
    return str(script)


def run(command: list[str] | str, cwd: Path, expect: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command, cwd=cwd, env=offline_env(), capture_output=True, text=True, timeout=600, shell=isinstance(command, str)
    )
    assert result.returncode == expect, f"{command} -> {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def rows_of(folder: Path, task: str) -> list[dict]:
    (path,) = glob.glob(str(folder / "**" / f"samples_{task}_*.jsonl"), recursive=True)
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("console")
    model_dir = save_tiny_chat_model(root / "model")
    return root, model_dir


def test_version(chain):
    root, _ = chain
    from lm_eval_semgrad import __version__

    assert run([console_script("lm-eval-semgrad"), "--version"], root).stdout.startswith(f"lm-eval-semgrad {__version__} (")


def test_calibrate_then_the_printed_command_then_rescore_report_and_sweep(chain):
    root, model_dir = chain
    semgrad = console_script("lm-eval-semgrad")
    calibration = root / "calib.json"
    result = run([
        semgrad, "calibrate", "--model_args", f"pretrained={model_dir},dtype=float32", "--apply_chat_template",
        "--limit", "4", "--paraphrases_per_question", "2", "--positions", "-4..-1", "--layer_rule", "best_band",
        "--batch_size", "4", "--device", "cpu", "--seed", "3", "--output_path", str(calibration), "--plot",
        str(root / "sps.png"),
    ], root)
    data = json.loads(calibration.read_text())
    assert data["positions"] == [-1, -2, -3, -4] and data["layers_rule"] == "best_band" and data["n_questions"] == 4
    # a choice distinct from the chat template's -3 and the upper half, so that its use is visible below
    data.update(position=-2, layers=[1, 2])
    calibration.write_text(json.dumps(data))
    printed = re.search(r"^use it with: (lm_eval .*)$", result.stdout, re.M)
    assert printed, result.stdout
    command = printed.group(1)
    assert "--tasks semgrad_sciq" in command and "--apply_chat_template" in command

    run(f"{shlex.quote(str(Path(sys.executable).parent))}/{command} --limit 3 --batch_size 2", root)
    inline = rows_of(root / "out", "semgrad_sciq")
    assert len(inline) == 3
    assert {(row["uncertainty"]["position"], tuple(row["uncertainty"]["layers"])) for row in inline} == {(-2, (1, 2))}
    (results_path,) = glob.glob(str(root / "out" / "**" / "results_*.json"), recursive=True)
    recorded = json.loads(Path(results_path).read_text())["config"]["semgrad"]
    assert recorded["position"] == -2 and recorded["layers"] == [1, 2]
    assert recorded["position_source"] == recorded["layers_source"] == f"calibration {calibration.resolve()}"

    result = run([
        semgrad, "rescore", "--model_args", f"pretrained={model_dir},semgrad_calibration={calibration},semgrad_reuse_cache=false",
        str(root / "out"), "--output_path", str(root / "rescored"), "--limit", "2", "--batch_size", "2", "--device",
        "cpu", "--skip_bad", "--overwrite", "--bootstrap_iters", "0", "--no_progress",
    ], root)
    assert "ignoring model arg(s) semgrad_reuse_cache" in result.stderr
    rescored = rows_of(root / "rescored", "semgrad_sciq")
    assert [row["doc_id"] for row in rescored] == [row["doc_id"] for row in inline][:2]
    for row, logged in zip(rescored, inline):
        assert (row["uncertainty"]["position"], row["uncertainty"]["layers"]) == (-2, [1, 2])
        for key, value in logged["uncertainty"]["scores"].items():
            assert row["uncertainty"]["scores"][key] == pytest.approx(value, rel=1e-4, abs=1e-12), key

    result = run([semgrad, "rescore", "--model_args", f"pretrained={model_dir},semgrad_calibration={root / 'none.json'}",
                  str(root / "out"), "--output_path", str(root / "never")], root, expect=1)
    assert "none.json" in result.stderr and "not found" in result.stderr and "loading" not in result.stderr

    report = root / "report.csv"
    run([semgrad, "report", str(root / "rescored"), str(root / "out"), "--format", "csv", "--output_path", str(report),
         "--plots", str(root / "plots"), "--methods", "semgrad,g_nll", "--bootstrap_iters", "0", "--seed", "5",
         "--all_runs"], root)
    table = list(csv.DictReader(io.StringIO(report.read_text())))
    assert {row["method"] for row in table} == {"semgrad", "g_nll"} and {row["task"] for row in table} == {"semgrad_sciq"}
    assert glob.glob(str(root / "plots" / "*.png"))
    run([semgrad, "report", str(root / "out"), "--format", "csv", "--output_path", str(report), "--confidence",
         "--confidence_method", "platt", "--confidence_folds", "2", "--confidence_seed", "1", "--confidence_bins", "4",
         "--bootstrap_iters", "0"], root)
    table = list(csv.DictReader(io.StringIO(report.read_text())))
    assert table and all("too few answers for --confidence_folds 2" in row["confidence_note"] for row in table)

    models = root / "models.txt"
    models.write_text(f"tiny pretrained={model_dir}\n")
    result = run([semgrad, "sweep", "--models", str(models), "--tasks", "semgrad_sciq", "--output_path", str(root / "sweep"),
                  "--launcher", sys.executable, "--model", "semgrad-hf", "--report_format", "csv",
                  "--bootstrap_iters", "0", "--dry_run", "--", "--limit", "2"], root)
    assert "would run" in result.stdout and "--limit 2" in result.stdout
