"""`lm-eval-semgrad reproduce`: the paper's numbers as docs/method.md has them, the grid's settings
through the real parser, the tables from given rows, and one real grid on a tiny model."""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lm_eval_semgrad import methods as registry
from lm_eval_semgrad.cli import main as plugin_main
from lm_eval_semgrad.metrics.bootstrap import BootstrapResult
from lm_eval_semgrad.report.table import MethodResult, Row
from lm_eval_semgrad.reproduce.paper import PAPER_N, TABLE_1, TABLE_1_AVERAGE, paper_auroc, paper_model
from lm_eval_semgrad.reproduce.tables import GridCell, collect, render_csv, render_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_the_paper_numbers_are_docs_method_section_7_1():
    """The tables in code and the ones in docs/method.md §7.1 (copied from the paper) are the same."""
    text = (ROOT / "docs" / "method.md").read_text(encoding="utf-8")
    section = text[text.index("### 7.1 Table 1"):text.index("### 7.2")]
    header = next(line for line in section.splitlines() if line.startswith("| method |"))
    models = [cell.strip() for cell in header.strip("|").split("|")[1:-1]]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] not in ("method",) and not set(cells[0]) <= {"-"}:
            rows[cells[0]] = ({m: tuple(float(v) for v in c.split(" / ")) for m, c in zip(models, cells[1:-1])},
                              float(cells[-1]))
    assert {row: values for row, (values, _) in rows.items()} == TABLE_1
    averages = {row: avg for row, (_, avg) in rows.items()}
    others = re.search(r"Other rows, average only: (.*?\d)\.\s", section.replace("\n", " "))
    assert others is not None
    for name, value in re.findall(r"([A-Za-z().\- ]+?) (\d+\.\d+)", others.group(1)):
        averages[name.strip(", ")] = float(value)
    assert averages == TABLE_1_AVERAGE
    assert set(TABLE_1_AVERAGE) == set(registry.PAPER_TABLE_1)


def test_paper_models_and_cells():
    assert paper_model("meta-llama/Llama-3.1-8B-Instruct") == "Llama-3.1-8B"
    assert paper_model("/models/Qwen3-4B-Instruct-2507/") == "Qwen3-4B"
    assert paper_model("mistralai/Mistral-Nemo-Instruct-2407") == "Mistral-Nemo-12B"
    assert paper_model("HuggingFaceTB/SmolLM2-135M-Instruct") is None
    assert paper_auroc("SemGrad", "Llama-3.1-8B", "semgrad_truthfulqa") == 69.42
    assert paper_auroc("M.I.", "Llama-3.1-8B", "semgrad_sciq") is None  # published as an average only
    assert paper_auroc("SemGrad", None, "semgrad_sciq") is None


# -- the grid's settings, through the real command-line parser ------------------------------------


def test_dry_run_shows_the_papers_settings_added_where_the_line_is_silent(tmp_path, capsys):
    models = tmp_path / "models.txt"
    models.write_text(
        "llama pretrained=meta-llama/Llama-3.1-8B-Instruct,dtype=bfloat16\n"
        "own pretrained=my/model,semgrad_position=-5,semgrad_methods=semgrad:g_nll,semgrad_correctness=f1:0.3\n"
    )
    code = plugin_main([
        "reproduce", "--models", str(models), "--output_path", str(tmp_path / "grid"), "--bem_model", "org/bem",
        "--nli", "org/nli", "--dry_run", "--", "--limit", "5", "--metadata", '{"semgrad_triviaqa_data_files": "t.jsonl"}',
    ])
    assert code == 0
    commands = [shlex.split(line.split("would run: ", 1)[1]) for line in capsys.readouterr().out.splitlines()
                if "would run: " in line]
    assert len(commands) == 6  # 2 models x the paper's 3 data sets
    tasks = [c[c.index("--tasks") + 1] for c in commands]
    assert tasks == ["semgrad_sciq", "semgrad_triviaqa", "semgrad_truthfulqa"] * 2
    llama, own = commands[0], commands[3]
    llama_args = dict(p.split("=", 1) for p in llama[llama.index("--model_args") + 1].split(","))
    assert llama_args == {"pretrained": "meta-llama/Llama-3.1-8B-Instruct", "dtype": "bfloat16",
                          "semgrad_methods": "paper", "semgrad_position": "auto", "semgrad_correctness": "bem",
                          "semgrad_nli": "org/nli"}
    own_args = dict(p.split("=", 1) for p in own[own.index("--model_args") + 1].split(","))
    assert own_args["semgrad_position"] == "-5" and own_args["semgrad_methods"] == "semgrad:g_nll"
    assert own_args["semgrad_correctness"] == "f1:0.3"  # the line wins
    for command in commands:
        assert "--apply_chat_template" in command and "--log_samples" in command
        metadata = json.loads(command[command.index("--metadata") + 1])
        assert metadata == {"semgrad_triviaqa_data_files": "t.jsonl", "bem_model": "org/bem"}
        assert command[command.index("--limit") + 1] == "5"


def test_bad_input_is_refused_before_anything_runs(tmp_path, capsys):
    models = tmp_path / "models.txt"
    models.write_text("pretrained=a\n")
    assert plugin_main(["reproduce", "--models", str(models), "-o", str(tmp_path / "g"), "--bem_model", "./nowhere"]) == 2
    assert "--bem_model ./nowhere: no such folder" in capsys.readouterr().err
    assert plugin_main(["reproduce", "--models", str(models), "-o", str(tmp_path / "g"), "--bem_model", "b", "--",
                        "--metadata", "a=1"]) == 2
    assert "give it as JSON" in capsys.readouterr().err
    assert plugin_main(["reproduce", "--models", str(models), "-o", str(tmp_path / "g"), "--", "--tasks", "x"]) == 2
    assert "sets --tasks itself" in capsys.readouterr().err


# -- the tables, from given report rows ------------------------------------------------------------


def _row(directory: Path, n: int, correctness: str, values: dict[str, float]) -> Row:
    row = Row(model="m", task="t", filter="none", source="samples", directory=directory, timestamp="", n=n, n_scored=n,
              accuracy=0.5, accuracy_from="", correctness=correctness)
    for name, value in values.items():
        metrics = {"auroc": BootstrapResult(value, value - 0.05, value + 0.05, 0.02, n, 100),
                   "aurc": BootstrapResult(1 - value, 0.4, 0.6, 0.02, n, 100)}
        row.methods[name] = MethodResult(name, n, metrics)
    return row


def test_tables_put_ours_beside_the_papers_and_mark_what_differs(tmp_path):
    grid = [
        GridCell("llama", "meta-llama/Llama-3.1-8B-Instruct", "Llama-3.1-8B", "semgrad_sciq", tmp_path / "llama" / "sciq"),
        GridCell("llama", "meta-llama/Llama-3.1-8B-Instruct", "Llama-3.1-8B", "semgrad_truthfulqa", tmp_path / "llama" / "tqa"),
        GridCell("small", "HuggingFaceTB/SmolLM2-135M-Instruct", None, "semgrad_sciq", tmp_path / "small" / "sciq"),
        GridCell("small", "HuggingFaceTB/SmolLM2-135M-Instruct", None, "semgrad_truthfulqa", tmp_path / "small" / "tqa"),
    ]
    for cell in grid:
        cell.directory.mkdir(parents=True)
    (grid[1].directory / "results_x.json").write_text(json.dumps(
        {"config": {"semgrad": {"left_out": {"se": "needs semgrad_nli=PATH_OR_ID"}}}}))
    rows = [
        _row(grid[0].directory / "run", PAPER_N["semgrad_sciq"], "bem >= 0.5", {"semgrad": 0.7612, "g_nll": 0.70}),
        _row(grid[1].directory / "run", 40, "bem >= 0.5", {"semgrad": 0.69, "g_nll": 0.60}),
        _row(grid[2].directory / "run", 1000, "contains >= 0.5", {"semgrad": 0.55}),
    ]
    cells = collect(grid, rows, "auroc", {grid[3].directory: "exit code 1"})
    table = render_markdown(cells, "auroc", "Table 1")
    line = next(line for line in table.splitlines() if line.startswith("| SemGrad"))
    entries = [cell.strip() for cell in line.strip("|").split("|")]
    assert entries[1] == "76.12 [71.1, 81.1] (paper 75.76)"  # the paper's set-up: no mark
    assert entries[2] == "69.00 [64.0, 74.0] (paper 69.42)‡"  # 40 questions, not the paper's 817
    assert entries[3] == "55.00 [50.0, 60.0]†"  # contains, not BEM; not a paper model
    assert entries[4] == "—"
    assert entries[5] == f"{(76.12 + 69 + 55) / 3:.2f}" and entries[6] == "75.75"
    se = next(line for line in table.splitlines() if line.startswith("| S.E."))
    assert [c.strip() for c in se.strip("|").split("|")][1:5] == ["n/a (paper 70.27)", "not run", "n/a", "—"]
    assert "† labelled by contains >= 0.5" in table and "N = 40 (paper 817)" in table
    assert "small TruthfulQA: exit code 1" in table and "needs semgrad_nli" in table
    assert "Not one of the paper's models" in table and "small" in table.split("Not one of the paper's models")[1]

    records = list(csv.DictReader(io.StringIO(render_csv(cells, "auroc"))))
    assert len(records) == len(registry.PAPER_TABLE_1) * len(grid)
    semgrad = [r for r in records if r["method"] == "semgrad"]
    assert [float(r["value"]) if r["value"] else None for r in semgrad] == [0.7612, 0.69, 0.55, None]
    assert [r["stand_in"] for r in semgrad] == ["0", "0", "1", "0"] and semgrad[1]["subset"] == "1"
    assert float(semgrad[0]["paper_value"]) == pytest.approx(0.7576) and semgrad[2]["paper_value"] == ""
    assert semgrad[3]["note"] == "exit code 1"
    aurc = render_markdown(collect(grid, rows, "aurc", {}), "aurc", "Table 5")
    assert "Table 5 (AURC) values are not transcribed" in aurc
    assert not any("(paper" in line for line in aurc.splitlines() if line.startswith("| "))


# -- one real grid ------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_reproduce_runs_a_resumable_grid_and_writes_the_tables(tmp_path, capsys):
    from harness_fixtures import offline_env, write_tasks
    from tiny_models import save_tiny_chat_model

    model_dir = save_tiny_chat_model(tmp_path / "model")
    tasks_dir = write_tasks(tmp_path / "tasks")
    data = tmp_path / "tqa.jsonl"  # the reference repository's format, 5 questions
    data.write_text("".join(json.dumps({"query": q, "truthful answer": ["water"]}) + "\n" for q in (
        "what is frozen water ?", "what is water made of ?", "what do bees make ?", "what is rain ?", "what is ice ?")))
    models = tmp_path / "models.txt"
    models.write_text(f"tiny pretrained={model_dir},semgrad_samples=2,semgrad_batch_size=4\n")
    argv = [
        "reproduce", "--models", str(models), "--output_path", str(tmp_path / "grid"), "--tasks",
        "qa_parity,semgrad_truthfulqa", "--bootstrap_iters", "20", "--", "--include_path", str(tasks_dir),
        "--limit", "6", "--gen_kwargs", "max_gen_toks=6", "--metadata", json.dumps({"semgrad_truthfulqa_data_files": str(data)}),
    ]
    with pytest.MonkeyPatch.context() as patch:
        for key, value in offline_env().items():
            patch.setenv(key, value)
        assert plugin_main(argv) == 0
        first = capsys.readouterr().out
        assert plugin_main(argv) == 0  # resumed: every cell finished, tables written again
        second = capsys.readouterr().out
    assert first.count(" done in ") == 2 and second.count("skipped (finished: ") == 2
    grid = tmp_path / "grid"
    table = (grid / "table1.md").read_text()
    assert "| method | tiny qa_parity | tiny TruthfulQA | avg (ours) | avg (paper) |" in table
    assert "N = 5 (paper 817)" in table  # the TruthfulQA file has 5 questions, not the paper's 817

    records = list(csv.DictReader(io.StringIO((grid / "table1.csv").read_text())))
    (samples_path,) = (grid / "tiny" / "qa_parity").rglob("samples_qa_parity_*.jsonl")
    samples = [json.loads(line) for line in samples_path.read_text().splitlines()]
    correct = np.array([s["uncertainty"]["correct"] for s in samples])
    assert 0 < correct.sum() < len(correct)
    for name in ("semgrad", "g_nll", "ln_pe"):
        scores = np.array([s["uncertainty"]["scores"][name] for s in samples], dtype=float)
        (record,) = [r for r in records if r["method"] == name and r["task"] == "qa_parity"]
        assert float(record["value"]) == pytest.approx(roc_auc_score(1 - correct, scores), abs=1e-9)
        assert record["correctness"] == "parity >= 0.5" and record["stand_in"] == "1"
    (results_path,) = (grid / "tiny" / "qa_parity").rglob("results_*.json")
    semgrad = json.loads(results_path.read_text())["config"]["semgrad"]
    assert semgrad["position"] == -3  # semgrad_position=auto: the ChatML reference position
    assert set(semgrad["left_out"]) == {"sar", "se", "self_con", "deg", "sd"}  # no NLI model or cross-encoder given
    assert "p_true" in semgrad["methods"] and "mi" in semgrad["methods"]
    assert (grid / "table5.md").is_file() and (grid / "table5.csv").is_file()
