"""Bad input to score() raises a ValueError that names the sample and the fix."""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_llama
from torch import nn

from lm_eval_semgrad import score


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


@pytest.mark.parametrize(
    "prompts, responses, kwargs, message",
    [
        ([[1, 2, 3]], [[4], [5]], {}, "prompt_ids has 1 samples but response_ids has 2"),
        ([[1, 2, 3], [1, 2]], [[4], []], {}, "sample 1: the response has no tokens"),
        ([[1, 2, 3], [1, 2]], [[4], [5]], {"position": -3}, "sample 1: the prompt has 2 tokens"),
        ([[1, 2]], [[4]], {"position": 0}, "position must be a negative int"),
        ([[1, 2]], [[4]], {"position": 1}, "position must be a negative int"),
        ([[1, 2]], [[4]], {"batch_size": 0}, "batch_size must be a positive int"),
        ([[1, 2]], [[4]], {"layers": [99]}, "layers [99] are out of range"),
        ([[1, 2]], [[4]], {"layers": []}, "layers is empty"),
        ([[1, 2], [1, 500]], [[4], [3]], {}, "sample 1: token ids [500] are outside"),
        ([[1] * 250], [[2] * 10], {}, "sample 0: prompt + response is 260 tokens, longer than"),
    ],
)
def test_bad_input_is_named(model, prompts, responses, kwargs, message):
    with pytest.raises(ValueError) as error:
        score(model, prompts, responses, **kwargs)
    assert message in str(error.value)


def test_model_without_decoder_layers_is_rejected():
    class NotADecoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)

    with pytest.raises(ValueError, match="no list of decoder layers"):
        score(NotADecoder(), [[1, 2]], [[3]])


def test_float16_overflow_is_reported_not_returned_as_scores(model):
    broken = tiny_llama()
    with torch.no_grad():
        broken.model.layers[3].mlp.down_proj.weight.fill_(float("inf"))
    with pytest.raises(ValueError, match="sample 0: non-finite scores"):
        score(broken, [[1, 2, 3]], [[4, 5]])
