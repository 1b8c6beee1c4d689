"""Helpers shared by the tests: score comparison and greedy generation on a left-padded batch (HFLM's layout)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lm_eval_semgrad.scoring.model_access import output_cache


def assert_close(actual: dict, expected: dict, sample: int) -> None:
    """Same keys, finite floats, relative error < 1e-4 (plus 1e-12 absolute) on every score."""
    assert set(actual) == set(expected)
    for key, want in expected.items():
        got = actual[key]
        assert isinstance(got, float), key
        assert math.isfinite(got), key
        assert abs(got - want) <= 1e-4 * abs(want) + 1e-12, f"sample {sample} {key}: {got} vs {want}"


def left_padded(prompts: Sequence[Sequence[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(input_ids, attention_mask, width) of prompts left-padded to the longest, as HFLM lays out a batch."""
    width = max(len(p) for p in prompts)
    input_ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts])
    attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return input_ids, attention_mask, width


def generate_left_padded(
    model: nn.Module, prompts: Sequence[Sequence[int]], new_tokens: int, recorder: Any = None
) -> tuple[torch.Tensor, int, Any]:
    """Greedy generation of exactly `new_tokens` per prompt (no EOS stop); returns sequences, prompt width, KV cache.

    `recorder`, a context manager such as `LayerInputRecorder`, is entered around `generate`.
    """
    model.generation_config.eos_token_id = None
    input_ids, attention_mask, width = left_padded(prompts)
    with torch.no_grad(), recorder or contextlib.nullcontext():
        out = model.generate(
            input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=new_tokens, do_sample=False,
            return_dict_in_generate=True, pad_token_id=0,
        )
    return out.sequences, width, output_cache(out)
