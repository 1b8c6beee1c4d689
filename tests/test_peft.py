"""score() on a PEFT (LoRA) model, as `semgrad-hf` gets it with `peft=ADAPTER`, equals the merged model."""

from __future__ import annotations

import pytest

peft = pytest.importorskip("peft", reason="peft is not installed (it comes with the test extra)")

from tiny_models import save_tiny_chat_model  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from lm_eval_semgrad import score  # noqa: E402


def test_lora_adapter_scores_equal_the_merged_model(tmp_path):
    base = save_tiny_chat_model(tmp_path / "base")
    lora = peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft.get_peft_model(AutoModelForCausalLM.from_pretrained(base), lora).save_pretrained(tmp_path / "adapter")
    adapted = peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), tmp_path / "adapter")
    merged = peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), tmp_path / "adapter")
    merged = merged.merge_and_unload()
    plain = AutoModelForCausalLM.from_pretrained(base)
    prompts, responses = [[1, 5, 6, 7, 9], [1, 10, 11]], [[8, 9, 2], [12, 2]]
    with_adapter = score(adapted, prompts, responses, position=-2, batch_size=2)
    for got, want, base_scores in zip(with_adapter, score(merged, prompts, responses, position=-2), score(plain, prompts, responses, position=-2)):
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-4), key
        assert got["semgrad"] != pytest.approx(base_scores["semgrad"], rel=1e-3)  # the adapter is really used
