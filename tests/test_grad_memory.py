"""The grad pass within a memory budget: cache rows, split reuse batches, the saved-bytes probe."""

from __future__ import annotations

import pytest
import torch
from support import assert_close, generate_left_padded, left_padded
from tiny_models import save_tiny_chat_model, tiny_llama, tiny_qwen3_tied

from lm_eval_semgrad.scoring import score, score_with_prefix_cache
from lm_eval_semgrad.scoring.batching import token_budget_groups
from lm_eval_semgrad.scoring.cache_rows import select_cache_rows
from lm_eval_semgrad.scoring.memory import GradPassMemory, cache_bytes, grad_pass_memory, saved_bytes_per_answer_token

PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [12, 13, 14], [15, 16, 17, 18, 19], [20, 21, 22, 23]]


def _generate(model, prompts, new_tokens=6):
    """Greedy answers of different lengths (so that grouping by length matters) and generation's KV cache."""
    sequences, width, cache = generate_left_padded(model, prompts, new_tokens)
    return [row[width : width + new_tokens - i].tolist() for i, row in enumerate(sequences)], cache


@pytest.mark.parametrize("budget, passes", [(1, 4), (14, 3), (16, 2), (24, 2), (1000, 1)])
def test_split_grad_passes_on_generation_cache_equal_fresh_scores(budget, passes):
    """Suffix widths are 8, 7, 6, 5 (answers of 6..3 tokens plus 2 columns from tau)."""
    model = tiny_llama()
    answers, cache = _generate(model, PROMPTS)
    memory = GradPassMemory(per_token=1.0, per_prompt_token=0.0, fixed=0.0, source="test: bytes = tokens")
    assert len(memory.row_groups([len(a) + 2 for a in answers], 7, budget)) == passes
    got = score_with_prefix_cache(model, PROMPTS, answers, cache, position=-2, memory_budget=(memory, budget))
    fresh = score(model, PROMPTS, answers, position=-2, batch_size=1)
    for i in range(len(PROMPTS)):
        assert_close(got[i], fresh[i], i)


def test_selected_cache_rows_leave_the_original_cache_untouched():
    model = tiny_qwen3_tied()
    _, cache = _generate(model, PROMPTS)
    layers = cache.layers if hasattr(cache, "layers") else None
    before = [layer.keys.clone() for layer in layers] if layers else [k.clone() for k in cache.key_cache]
    selected = select_cache_rows(cache, [2, 0])
    after = [layer.keys for layer in cache.layers] if layers else list(cache.key_cache)
    assert all(torch.equal(b, a) for b, a in zip(before, after))
    chosen = [layer.keys for layer in selected.layers] if layers else list(selected.key_cache)
    assert all(torch.equal(c, b[[2, 0]]) for c, b in zip(chosen, before))


def test_cache_bytes_counts_every_key_and_value_tensor_once():
    model = tiny_llama()
    _, cache = _generate(model, PROMPTS)
    if hasattr(cache, "layers"):
        tensors = [t for layer in cache.layers for t in (layer.keys, layer.values)]
    else:
        tensors = [*cache.key_cache, *cache.value_cache]
    assert cache_bytes(cache) == sum(t.numel() * t.element_size() for t in tensors)


def test_saved_bytes_grow_with_the_number_of_semantic_layers():
    """Saved activations are per semantic layer: four layers keep about twice what two keep."""
    model = tiny_llama()  # 5 decoder layers
    two = saved_bytes_per_answer_token(model, layers=[3, 4])
    four = saved_bytes_per_answer_token(model, layers=[1, 2, 3, 4])
    assert two > 0
    assert 1.6 < four / two < 2.4


def test_saved_bytes_per_token_predict_what_a_batch_saves():
    """The per-token probe (one row, two answer lengths) predicts a 3-row, 9-token batch's saved bytes."""
    model = tiny_llama()
    per_token = saved_bytes_per_answer_token(model, position=-1)
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def saved_bytes(prompts, responses):
        storages = {}

        def pack(tensor):
            if tensor.untyped_storage().data_ptr() not in parameters:
                storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            score(model, prompts, responses, position=-1, batch_size=len(prompts))
        return sum(storages.values())

    prompts = [[5, 6, 7, 8]] * 3
    small = saved_bytes(prompts, [[9, 10]] * 3)
    large = saved_bytes(prompts, [[9, 10] + [11] * 9] * 3)
    assert large - small == pytest.approx(3 * 9 * per_token, rel=0.25)


def test_token_budget_groups_keep_rows_times_width_within_the_budget():
    widths = [8, 3, 7, 3, 12]
    assert token_budget_groups(widths, None) == [[0, 1, 2, 3, 4]]
    assert token_budget_groups(widths, 16) == [[4], [0, 2], [1, 3]]
    assert token_budget_groups(widths, 5) == [[4], [0], [2], [1], [3]]  # too-wide rows: one pass each
    assert token_budget_groups(widths, 60) == [[0, 1, 2, 3, 4]]
    for budget in (1, 9, 15, 24, 40):
        groups = token_budget_groups(widths, budget)
        assert sorted(i for g in groups for i in g) == list(range(len(widths)))
        assert all(len(g) == 1 or len(g) * max(widths[i] for i in g) <= budget for g in groups)


def test_row_groups_count_answer_and_prompt_columns_against_the_budget():
    memory = GradPassMemory(per_token=10.0, per_prompt_token=5.0, fixed=100.0, source="test")
    # a row costs 10 x width + 5 x 4 prompt columns = 10 x (width + 2); a pass holds rows x its widest row
    assert memory.row_groups([8, 8, 8, 3], 4, 300) == [[0, 1], [2, 3]]  # (300 - 100) / 10 = 20 = 2 x 10
    assert memory.row_groups([8, 8, 8, 3], 4, 299) == [[0], [1], [2], [3]]  # 19.9 < 2 x 10: no pairs fit
    assert memory.row_groups([8, 8, 8, 3], 4, 100) == [[0], [1], [2], [3]]  # one row per pass at least
    assert memory.row_groups([8, 8, 8, 3], 4, 10**6) == [[0, 1, 2, 3]]


def test_grad_pass_memory_probes_a_position_far_from_the_prompt_end():
    memory = grad_pass_memory(tiny_llama(), position=-40)
    assert memory.per_token > 0 and memory.per_prompt_token > 0


def test_measured_grad_pass_memory_predicts_the_peak_of_a_multi_row_pass():
    """fixed + rows x (per_token x width + per_prompt_token x prompt), from small probes, bounds a bigger pass."""
    from lm_eval_semgrad.scoring.memory import allocator_peak

    model = tiny_llama()
    memory = grad_pass_memory(model, position=-1)
    assert memory.source == "allocator peak on cpu" and memory.per_token > 0 and memory.per_prompt_token > 0
    prompts = [[5, 6, 7, 8, 9] * 4] * 3
    answers = [[10 + i for i in range(30)]] * 3
    peak = allocator_peak(torch.device("cpu"), lambda: score(model, prompts, answers, position=-1, batch_size=3))
    predicted = memory.fixed + 3 * (memory.per_token * 31 + memory.per_prompt_token * 20)
    assert 0.6 * predicted < peak <= 1.2 * predicted


def test_semgrad_hf_splits_the_grad_pass_under_a_small_budget_with_unchanged_scores(tmp_path, monkeypatch):
    from lm_eval_semgrad.harness import model as harness_model
    from lm_eval_semgrad.harness.model import SemGradHFLM

    model_dir = save_tiny_chat_model(tmp_path / "m")
    calls = []
    original = harness_model.score_with_prefix_cache

    def spy(*args, **kwargs):
        if "memory_budget" in kwargs:  # the batch's grad pass, not the one-answer lower-layer check
            calls.append(kwargs["memory_budget"])
        return original(*args, **kwargs)

    monkeypatch.setattr(harness_model, "score_with_prefix_cache", spy)

    def pending_scores(**semgrad_args):
        lm = SemGradHFLM(pretrained=str(model_dir), device="cpu", semgrad_position=-1, **semgrad_args)
        context, mask, width = left_padded(PROMPTS)
        lm._model_generate(context, width + 8, [], attention_mask=mask, do_sample=False)
        return [pending.answer.record["scores"] for pending in lm._pending]

    unbounded = pending_scores(semgrad_memory="unbounded")
    tight = pending_scores(semgrad_memory="0.00001")
    assert calls[0] is None and calls[1][1] == pytest.approx(0.00001 * 2**20)
    for i, (a, b) in enumerate(zip(tight, unbounded)):
        assert_close(a, b, i)
