"""The diverse-beam port against transformers 4.55.4's own group beam search (docs/method.md §3.0.2, §3.8).

tests/data/diverse_beams/make_reference.py ran 4.55.4's `generate` on two tiny random models (Llama,
GPT-2) saved next to it; here the same weights, loaded by the installed transformers, must give the
same beams: the same tokens exactly, and the same scores up to float32 rounding.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from lm_eval_semgrad.sampling.diverse_beams import diverse_beams

DATA = Path(__file__).parent / "data" / "diverse_beams"
REFERENCE = json.loads((DATA / "reference.json").read_text())
CASES = REFERENCE["cases"]


@pytest.fixture(scope="module")
def models():
    return {name: AutoModelForCausalLM.from_pretrained(DATA / name).eval() for name in REFERENCE["models"]}


@pytest.mark.parametrize("name", sorted(REFERENCE["models"]))
def test_the_tiny_models_load_every_weight_and_compute_what_they_computed_in_4_55(name):
    model, info = AutoModelForCausalLM.from_pretrained(DATA / name, output_loading_info=True)
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    probe = REFERENCE["models"][name]
    with torch.no_grad():
        logits = model.eval()(torch.tensor([probe["probe_ids"]])).logits[0, -1, :8]
    assert logits.tolist() == pytest.approx(probe["probe_logits"], abs=1e-5)


def test_the_reference_exercises_eos_and_groups_of_several_beams():
    assert sum(case["finished_by_eos"] for case in CASES) > 50
    assert any(case["finished_by_eos"] and case["settings"]["num_beams"] > case["settings"]["num_beam_groups"]
               for case in CASES)
    assert any(len(case["settings"]["eos_token_id"]) > 1 and case["finished_by_eos"] for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[f"{c['model']}-{i}" for i, c in enumerate(CASES)])
def test_the_beams_are_those_of_transformers_4_55(models, case):
    s = case["settings"]
    beams = diverse_beams(
        models[case["model"]], case["prompt_ids"], num_beams=s["num_beams"], num_beam_groups=s["num_beam_groups"],
        diversity_penalty=s["diversity_penalty"], max_new_tokens=s["max_new_tokens"], eos_token_ids=s["eos_token_id"],
        pad_token_id=s["pad_token_id"], length_penalty=s["length_penalty"], early_stopping=s["early_stopping"],
    )
    expected = [row[len(case["prompt_ids"]):] for row in case["sequences"]]
    width = len(expected[0])
    assert [list(b.token_ids) + [s["pad_token_id"]] * (width - len(b.token_ids)) for b in beams] == expected
    for beam in beams:  # no padding kept: a beam ends with an EOS or runs to max_new_tokens
        assert beam.token_ids[-1] in s["eos_token_id"] or len(beam.token_ids) == s["max_new_tokens"]
    # float32 rounding of the forward passes: scores reach -160 where length_penalty=-1 multiplies by the length
    assert [b.score for b in beams] == pytest.approx(case["sequences_scores"], abs=1e-5, rel=1e-6)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_beams": 10, "num_beam_groups": 3}, r"num_beams \(10\) must be divisible by num_beam_groups \(3\)"),
    ({"num_beams": 4, "num_beam_groups": 1}, "num_beam_groups must be at least 2"),
    ({"max_new_tokens": 0}, "max_new_tokens must be at least 1, got 0"),
    ({"diversity_penalty": 0.0}, "diversity_penalty must be > 0"),
    ({"early_stopping": "sometimes"}, "early_stopping must be True, False or 'never'"),
])
def test_bad_settings_are_refused(models, kwargs, message):
    settings = {"max_new_tokens": 3, "eos_token_ids": [2], "pad_token_id": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        diverse_beams(models["llama"], [5, 6, 7], **settings)


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("repetition_penalty", 1.2, "sets repetition_penalty=1.2: .* this port does not"),
    ("min_new_tokens", 2, "sets min_new_tokens=2"),
    ("no_repeat_ngram_size", 3, "sets no_repeat_ngram_size=3"),
    ("length_penalty", 2.0, "sets length_penalty=2.0, .* but length_penalty=1.0 was passed"),
])
def test_a_generation_config_that_4_55_would_follow_and_the_port_cannot_is_refused(setting, value, message):
    model = AutoModelForCausalLM.from_pretrained(DATA / "llama")
    setattr(model.generation_config, setting, value)
    with pytest.raises(ValueError, match=message):
        diverse_beams(model, [5, 6, 7], max_new_tokens=3, eos_token_ids=[2], pad_token_id=0)
