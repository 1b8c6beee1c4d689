"""What the grad pass holds in memory: measured per answer token, and compared with a KV cache.

The grad pass keeps the activations of the semantic layers over the answer columns until its
backward pass; they grow with (rows x answer tokens), ten or more times faster than a KV cache
grows per token. Knowing both lets a caller split a generation batch so that the grad pass never
needs more memory than generation's own cache.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

PROBE_PROMPT_TOKENS = 4
PROBE_ANSWER_TOKENS = (4, 12)


def grad_pass_bytes_per_answer_token(
    model: nn.Module, *, position: int = -1, layers: Sequence[int] | None = None
) -> float:
    """Memory one answer token of one row costs the grad pass: its saved activations and its logits.

    The logits column (vocabulary size, counted as float32) stays alive for the closed-form head;
    everything else the grad pass allocates is bounded by fixed-size chunks.
    """
    vocab = int(getattr(model.config, "vocab_size", 0))
    return saved_bytes_per_answer_token(model, position=position, layers=layers) + 4 * vocab


def saved_bytes_per_answer_token(
    model: nn.Module, *, position: int = -1, layers: Sequence[int] | None = None
) -> float:
    """Bytes the grad pass saves for its backward pass per answer token of one row.

    Measured, not estimated: autograd's saved tensors (parameters excluded, shared storage counted
    once) are summed during two tiny score() calls whose answers differ in length, and the
    difference is divided by the extra tokens. Architecture-independent; costs two short passes.
    """
    from .core import score

    parameters = {parameter.untyped_storage().data_ptr() for parameter in model.parameters()}
    vocab = int(getattr(model.config, "vocab_size", 2))
    token = min(1, vocab - 1)
    prompt = [token] * max(PROBE_PROMPT_TOKENS, -position)
    totals = []
    for answer_tokens in PROBE_ANSWER_TOKENS:
        storages: dict[int, int] = {}

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in parameters:
                storages[storage.data_ptr()] = storage.nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            score(model, [prompt], [[token] * answer_tokens], position=position, layers=layers, batch_size=1)
        totals.append(sum(storages.values()))
    extra_tokens = PROBE_ANSWER_TOKENS[1] - PROBE_ANSWER_TOKENS[0]
    return max(totals[1] - totals[0], 0) / extra_tokens


def cache_bytes(cache: Any) -> int:
    """Bytes held by the tensors of a KV cache object (any transformers Cache layout), counted once each."""
    seen: dict[int, int] = {}
    for tensor in _tensors(cache, depth=3):
        seen[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
    return sum(seen.values())


def tokens_per_grad_pass(budget_bytes: int, bytes_per_token: float) -> int:
    """How many suffix tokens (rows x columns) one grad pass may hold within the budget (>= 1)."""
    if bytes_per_token <= 0:
        raise ValueError(f"bytes_per_token must be positive, got {bytes_per_token}.")
    return max(1, math.floor(budget_bytes / bytes_per_token))


def _tensors(value: Any, depth: int) -> Iterable[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif depth > 0 and isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item, depth - 1)
    elif depth > 0 and isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item, depth - 1)
    elif depth > 0 and hasattr(value, "__dict__") and not isinstance(value, (nn.Module, type)):
        for item in vars(value).values():
            yield from _tensors(item, depth - 1)
