"""Local lm-eval tasks and CLI helpers for end-to-end tests of `semgrad-hf` (offline, tiny model)."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

QUESTIONS = [
    "what gas do plants absorb ?", "what is the hottest planet ?", "what is water made of ?",
    "who proposed gravity ?", "what is the boiling point of water ?", "which organ pumps blood ?",
    "what is the centre of an atom ?", "what carries a negative charge ?", "what do bees make ?",
    "what is the largest ocean ?", "what is frozen water ?", "what is the capital of france ?",
]

PARITY_UTILS = '''
def process_results(doc, results):
    answer = results[0]
    return {"parity": float(len(answer) % 2 == 0), "exact_match": float(answer.strip() == doc["answer"])}
'''

TASK_YAMLS = {
    # a free-form task whose first metric labels about half of any model's answers correct
    "qa_parity.yaml": """
task: qa_parity
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "Please directly answer the following question with one or few words:\\n{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
process_results: !function utils.process_results
generation_kwargs:
  until: ["\\n\\n"]
  max_gen_toks: 10
  do_sample: false
metric_list:
  - metric: parity
    aggregation: mean
    higher_is_better: true
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
""",
    # stock-style: exact_match from lm-eval's metric registry, a regex filter and a second filter
    "qa_filters.yaml": """
task: qa_filters
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "(\\\\w+)"
      - function: take_first
  - name: flexible-extract
    filter:
      - function: take_first
""",
    # a loglikelihood (multiple-choice) task: runs unchanged, without uncertainty metrics
    "qa_choice.yaml": """
task: qa_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: ["yes", "no", "water"]
doc_to_target: 0
metric_list:
  - metric: acc
""",
}


def write_tasks(directory: Path) -> Path:
    """The three tasks above over a 12-question JSONL file, in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "questions.jsonl"
    answers = ["carbon dioxide", "venus", "hydrogen and oxygen", "newton", "100", "heart"] * 2
    data.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in zip(QUESTIONS, answers)))
    (directory / "utils.py").write_text(PARITY_UTILS)
    for name, text in TASK_YAMLS.items():
        (directory / name).write_text(text.format(data=data))
    return directory


def offline_env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def lm_eval_command() -> list[str]:
    """The stock `lm_eval` console script of this environment (what users type)."""
    script = Path(sys.executable).with_name("lm_eval")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lm_eval"]


def run_cli(command: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=offline_env(), capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


def read_results(output_dir: Path) -> dict:
    (path,) = glob.glob(str(output_dir / "*" / "results_*.json"))
    return json.loads(Path(path).read_text())


def read_samples(output_dir: Path, task: str) -> list[dict]:
    (path,) = glob.glob(str(output_dir / "*" / f"samples_{task}_*.jsonl"))
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
