"""The grad pass from generation's recorded lower-layer outputs equals a fresh score()."""

from __future__ import annotations

import pytest
import torch
from support import assert_close, generate_left_padded
from tiny_models import tiny_llama, tiny_qwen2
from torch import nn

from lm_eval_semgrad import score
from lm_eval_semgrad.scoring import score_with_prefix_cache
from lm_eval_semgrad.scoring.layer_inputs import LayerInputRecorder
from lm_eval_semgrad.scoring.memory import grad_pass_memory
from lm_eval_semgrad.scoring.model_access import check_hidden_states_are_layer_inputs, graph_start_layer, resolve_layers

PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [12, 13, 14], [15, 16, 17, 18, 19]]


def generate_recording(model: nn.Module, position: int, layers, max_new_tokens: int = 6):
    """Greedy generation of PROMPTS (left-padded) with the graph's first layer's inputs recorded."""
    num_layers = model.config.num_hidden_layers
    start = graph_start_layer(num_layers, resolve_layers(num_layers, layers))
    recorder = LayerInputRecorder(model, start, max(len(p) for p in PROMPTS) + position)
    sequences, width, cache = generate_left_padded(model, PROMPTS, max_new_tokens, recorder)
    return sequences, width, cache, recorder


@pytest.mark.parametrize("build", [tiny_llama, tiny_qwen2])
@pytest.mark.parametrize(("position", "layers"), [(-1, None), (-3, None), (-2, [2, 4]), (-1, [5])])
@pytest.mark.parametrize("split_rows", [False, True])
def test_recorded_layer_inputs_give_the_fresh_scores_without_running_lower_layers(build, position, layers, split_rows):
    model = build()
    sequences, width, cache, recorder = generate_recording(model, position, layers)
    graph_inputs = recorder.inputs(fed_columns=sequences.shape[1] - 1)
    assert graph_inputs is not None
    # answers of all lengths, the longest one ending at generation's last (never fed) token
    responses = [sequences[0, width:].tolist(), sequences[1, width : width + 3].tolist(), sequences[2, width : width + 1].tolist()]
    budget = (grad_pass_memory(model, position=position, layers=layers), 1.0) if split_rows else None
    lowest = model.model.layers[0].mlp
    check_hidden_states_are_layer_inputs(model)  # the one probe forward per model, before the pass counted here
    calls = []
    handle = lowest.register_forward_hook(lambda *args: calls.append(1))
    try:
        reused = score_with_prefix_cache(
            model, PROMPTS, responses, cache, position=position, layers=layers, memory_budget=budget,
            graph_inputs=graph_inputs,
        )
    finally:
        handle.remove()
    assert calls == []  # the layers below the graph did not run
    fresh = score(model, PROMPTS, responses, position=position, layers=layers, batch_size=1)
    for i in range(len(PROMPTS)):
        assert_close(reused[i], fresh[i], i)
    assert model.model.layers[0].forward.__func__ is type(model.model.layers[0]).forward  # restored


def test_the_recorded_inputs_are_what_the_scores_are_computed_from():
    model = tiny_llama()
    sequences, width, cache, recorder = generate_recording(model, -1, None)
    graph_inputs = recorder.inputs(fed_columns=sequences.shape[1] - 1)
    responses = [row[width:].tolist() for row in sequences]
    base = score_with_prefix_cache(model, PROMPTS, responses, cache, position=-1, graph_inputs=graph_inputs)
    _, _, cache, _ = generate_recording(model, -1, None)
    shifted = score_with_prefix_cache(model, PROMPTS, responses, cache, position=-1, graph_inputs=graph_inputs * 1.5)
    assert all(abs(a["semgrad"] - b["semgrad"]) > 1e-3 * abs(a["semgrad"]) for a, b in zip(base, shifted))


def test_a_record_that_is_not_one_column_per_fed_token_is_not_used():
    model = tiny_llama()
    sequences, _, _, recorder = generate_recording(model, -1, None)
    assert recorder.inputs(fed_columns=sequences.shape[1] - 1) is not None
    assert recorder.inputs(fed_columns=sequences.shape[1]) is None


def test_layers_that_return_tuples_cannot_be_skipped():
    class TupleLayer(nn.Module):
        def forward(self, hidden_states):
            return (hidden_states + 1,)

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("Config", (), {"num_hidden_layers": 2})()
            self.layers = nn.ModuleList([TupleLayer(), TupleLayer()])

        def forward(self, hidden):
            for layer in self.layers:
                hidden = layer(hidden)[0]
            return hidden

    stack = Stack()
    with LayerInputRecorder(stack, 1, first_column=0) as recorder:
        stack(torch.zeros(1, 3, 4))
    assert recorder.inputs(fed_columns=3) is None


def test_graph_inputs_of_the_wrong_shape_are_named():
    model = tiny_llama()
    sequences, width, cache, recorder = generate_recording(model, -1, None)
    graph_inputs = recorder.inputs(fed_columns=sequences.shape[1] - 1)
    responses = [row[width:].tolist() for row in sequences]
    with pytest.raises(ValueError, match="graph_inputs has shape"):
        score_with_prefix_cache(model, PROMPTS, responses, cache, position=-1, graph_inputs=graph_inputs[:2])
