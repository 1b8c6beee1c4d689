"""score() against a plain, unbatched autograd computation of the definitions (docs/method.md)."""

from __future__ import annotations

import copy
import math
import random

import pytest
import torch
from support import assert_close
from tiny_models import VOCAB, tiny_gemma2_softcapped, tiny_llama, tiny_qwen2, tiny_qwen3_tied
from torch import nn

from lm_eval_semgrad import score


def reference_scores(model: nn.Module, prompt: list[int], response: list[int], position: int, layers) -> dict:
    """The definitions written out directly: full graph from the embeddings, one sample, no padding.

    The output projection gets its own parameter so that, for tied models, dL/dW_out is the
    output-projection path only (docs/method.md), not the embedding path too.
    """
    model = copy.deepcopy(model)
    model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())
    ids = torch.tensor([prompt + response])
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    out = model(inputs_embeds=embeds, output_hidden_states=True, use_cache=False)
    num_layers = model.config.num_hidden_layers
    if layers is None:
        layers = list(range(num_layers - num_layers // 2, num_layers))
    P, R = len(prompt), len(response)
    logits = out.logits[0, P - 1 : P + R - 1].float()
    targets = torch.tensor(response)
    log_q = torch.log_softmax(logits, -1)
    nll = -log_q[torch.arange(R), targets]
    q = log_q.detach().exp()
    entropy = -(q * torch.log(torch.clamp(q, min=1e-15))).sum(-1)
    loss_w = (entropy * nll).sum() / R
    loss_ce = nll.sum() / R
    hidden = [out.hidden_states[i] for i in layers]
    grads = torch.autograd.grad(loss_w, hidden + [model.lm_head.weight], retain_graph=True)
    (ce_weight_grad,) = torch.autograd.grad(loss_ce, model.lm_head.weight)
    semgrad = torch.cat([g[0, P + position].abs() for g in grads[:-1]]).mean().item()
    g_w = grads[-1].abs().mean().item()
    mean_entropy = entropy.mean().item()
    alpha = math.exp(-mean_entropy)
    return {
        "semgrad": semgrad,
        "hybridgrad": alpha * g_w + (1 - alpha) * semgrad,
        "paragrad": g_w,
        "exgrad": ce_weight_grad.abs().mean().item(),
        "g_nll": nll.sum().item(),
        "mean_entropy": mean_entropy,
        "max_prob_nll": nll.max().item(),
        "response_len": float(R),
    }


def random_samples(seed: int, n: int, max_prompt: int = 20, max_response: int = 9):
    rng = random.Random(seed)
    prompts = [[rng.randrange(VOCAB) for _ in range(rng.randint(4, max_prompt))] for _ in range(n)]
    responses = [[rng.randrange(VOCAB) for _ in range(rng.randint(1, max_response))] for _ in range(n)]
    return prompts, responses


@pytest.mark.parametrize("build", [tiny_llama, tiny_qwen3_tied, tiny_qwen2])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batched_scores_equal_plain_autograd(build, batch_size):
    model = build()
    prompts, responses = random_samples(seed=batch_size, n=7)
    for position in (-1, -3):
        got = score(model, prompts, responses, position=position, batch_size=batch_size)
        for i, (p, r) in enumerate(zip(prompts, responses)):
            assert_close(got[i], reference_scores(model, p, r, position, None), i)


def test_explicit_layers_including_embeddings_and_final_output():
    model = tiny_qwen2()
    prompts, responses = random_samples(seed=11, n=4)
    for layers in ([0, 1], [2, 4], [6], [3, 6]):
        got = score(model, prompts, responses, position=-2, layers=layers, batch_size=4)
        for i, (p, r) in enumerate(zip(prompts, responses)):
            assert_close(got[i], reference_scores(model, p, r, -2, layers), i)


def test_left_padding_does_not_change_scores():
    """A short sample scored beside a much longer one gets the same scores as alone."""
    model = tiny_llama()
    short = ([5, 6, 7, 8], [9, 10])
    long = (list(range(1, 60)), list(range(20, 40)))
    alone = score(model, [short[0]], [short[1]], position=-2)[0]
    together = score(model, [long[0], short[0]], [long[1], short[1]], position=-2, batch_size=2)[1]
    assert_close(together, alone, 1)


def test_works_inside_inference_mode_and_restores_parameters():
    model = tiny_llama()
    model.lm_head.weight.requires_grad_(True)
    model.model.layers[0].mlp.up_proj.weight.requires_grad_(False)
    model.train()
    prompts, responses = random_samples(seed=3, n=2)
    with torch.inference_mode():
        got = score(model, prompts, responses, position=-1)
    assert model.lm_head.weight.requires_grad and not model.model.layers[0].mlp.up_proj.weight.requires_grad
    assert model.training
    model.eval()
    assert_close(got[0], reference_scores(model, prompts[0], responses[0], -1, None), 0)


def test_bfloat16_model_gives_finite_scores_for_confident_long_answers():
    model = tiny_llama()
    # Sharpen the output distribution so that many token probabilities underflow.
    with torch.no_grad():
        model.lm_head.weight.mul_(200.0)
    model = model.to(torch.bfloat16)
    prompts, responses = random_samples(seed=5, n=3, max_prompt=30, max_response=120)
    for scores in score(model, prompts, responses, position=-1, batch_size=3):
        assert all(math.isfinite(v) for v in scores.values())
        assert scores["semgrad"] > 0 and scores["exgrad"] > 0


def test_position_at_the_first_prompt_token_needs_no_prefix_cache():
    model = tiny_qwen3_tied()
    prompts = [[3, 4, 5, 6], [7, 8, 9, 10]]
    responses = [[11, 12], [13, 14, 15]]
    got = score(model, prompts, responses, position=-4, batch_size=2)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        assert_close(got[i], reference_scores(model, p, r, -4, None), i)


@pytest.mark.parametrize("position", [-1, -3])
def test_scores_from_the_generation_kv_cache_equal_fresh_scores(position):
    """Reusing generation's own prompt cache (left-padded batch) changes nothing but the cost."""
    from lm_eval_semgrad.scoring import score_with_prefix_cache

    model = tiny_llama()
    model.generation_config.eos_token_id = None
    prompts = [[5, 6, 7, 8, 9, 10, 11], [12, 13, 14], [15, 16, 17, 18, 19]]
    width = max(len(p) for p in prompts)
    input_ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        out = model.generate(
            input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=5, do_sample=False,
            return_dict_in_generate=True, pad_token_id=0,
        )
    responses = [row[width:].tolist() for row in out.sequences]
    cache = getattr(out, "past_key_values", None) or getattr(out, "cache", None)
    reused = score_with_prefix_cache(model, prompts, responses, cache, position=position)
    fresh = score(model, prompts, responses, position=position, batch_size=1)
    for i in range(len(prompts)):
        assert_close(reused[i], fresh[i], i)


def test_soft_capped_logits_take_the_autograd_path_and_stay_exact(monkeypatch):
    """Gemma-2 transforms logits after the projection: the closed-form head must not be used."""
    from lm_eval_semgrad.scoring import core

    model = tiny_gemma2_softcapped()
    calls = []
    original = core._autograd_head_gradients
    monkeypatch.setattr(core, "_autograd_head_gradients", lambda *a, **k: calls.append(1) or original(*a, **k))
    prompts, responses = random_samples(seed=21, n=4)
    got = score(model, prompts, responses, position=-2, batch_size=4)
    assert calls
    for i, (p, r) in enumerate(zip(prompts, responses)):
        assert_close(got[i], reference_scores(model, p, r, -2, None), i)


def test_plain_logits_take_the_closed_form_path(monkeypatch):
    from lm_eval_semgrad.scoring import core

    monkeypatch.setattr(core, "_autograd_head_gradients", lambda *a, **k: pytest.fail("autograd head used"))
    score(tiny_qwen3_tied(), [[1, 2, 3]], [[4, 5]], position=-1)


def test_asking_for_fewer_scores_returns_exactly_those_with_the_same_values():
    """Leaving out hybridgrad/exgrad skips their output-projection reductions, nothing else changes."""
    model = tiny_llama()
    prompts, responses = random_samples(seed=5, n=3)
    full = score(model, prompts, responses, position=-2, batch_size=3)
    for keys in (("semgrad", "g_nll"), ("exgrad",), ("hybridgrad", "mean_entropy")):
        part = score(model, prompts, responses, position=-2, batch_size=3, scores=keys)
        for i, row in enumerate(part):
            assert set(row) == set(keys)
            assert_close(row, {k: full[i][k] for k in keys}, i)


@pytest.mark.parametrize("keys", [(), ("semgrad", "sar"), ["entropy"]])
def test_unknown_or_no_scores_are_named(keys):
    model = tiny_llama()
    with pytest.raises(ValueError, match="scores must name some of semgrad, hybridgrad, exgrad"):
        score(model, [[3, 4, 5]], [[6, 7]], scores=keys)
