"""Hidden states h^(0..N) of prompts at a few positions counted from the prompt end (no grad)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..scoring.model_access import cache_argument, logits_to_keep_kwargs, model_device, output_cache
from ..scoring.prefix_split import may_split_prefix, prefix_split_is_exact

logger = logging.getLogger(__name__)

#: shortest common prompt prefix worth running once and sharing through a KV cache
MIN_SHARED_PREFIX = 4

__all__ = ["common_prefix_length", "prompt_hidden_states"]


def common_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix every prompt starts with (system prompt, instruction, ...)."""
    first = list(prompts[0])
    length = len(first)
    for ids in prompts[1:]:
        limit = min(length, len(ids))
        same = 0
        while same < limit and ids[same] == first[same]:
            same += 1
        length = same
    return length


@torch.no_grad()
def prompt_hidden_states(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    positions: Sequence[int],
    *,
    batch_size: int = 16,
    progress: bool = False,
    share_prefix: bool = True,
) -> torch.Tensor:
    """Float32 CPU tensor [n_prompts, N+1, n_positions, hidden]: `output_hidden_states` of each prompt
    (h^(0) embeddings .. h^(N) final normed output) at each position (-1 = last prompt token).

    Prompts are right-padded (causal attention: the real tokens never see the padding, and their
    position ids are unchanged) and batched by length. With `share_prefix`, the token prefix all
    prompts share (a chat template's system prompt and the task instruction: often most of the
    prompt) runs once into a KV cache that every batch continues from; only prompt tokens after it
    are recomputed, and the requested positions must lie after it (the shared part is cut short
    otherwise). Memory: n_prompts * (N+1) * n_positions * hidden * 4 bytes (448 prompts of an 8B
    model at 8 positions: about 2 GB).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be at least 1")
    if not prompts:
        raise ValueError("no prompts")
    positions = [int(p) for p in positions]
    if not positions or any(p >= 0 for p in positions):
        raise ValueError(f"positions {positions}: give negative positions counted from the prompt end (-1 = last token)")
    deepest = -min(positions)
    for index, ids in enumerate(prompts):
        if len(ids) < deepest:
            raise ValueError(f"prompt {index} has {len(ids)} tokens, fewer than the deepest position {-deepest}")
    device = model_device(model)
    shared = min(common_prefix_length(prompts), min(len(p) for p in prompts) - deepest) if share_prefix else 0
    cache_kwarg = cache_argument(model)
    prefix_cache = None
    longest = max(len(p) for p in prompts)
    if shared >= MIN_SHARED_PREFIX and may_split_prefix(model, longest):
        prefix = torch.as_tensor(list(prompts[0][:shared]), dtype=torch.long, device=device)[None]
        outputs = model(input_ids=prefix, use_cache=True, **logits_to_keep_kwargs(model, 1))
        prefix_cache = output_cache(outputs)
        if (prefix_cache is None or not hasattr(prefix_cache, "batch_repeat_interleave")
                or not prefix_split_is_exact(model, prefix_cache, longest)):
            logger.info("%s gave no KV cache that can stand in for the shared prefix (none, recurrent state or "
                        "length-dependent rotary scaling); running every prompt in full", type(model).__name__)
            prefix_cache = None
    if prefix_cache is None:
        shared = 0

    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
    result: torch.Tensor | None = None
    starts: Any = range(0, len(order), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="hidden states", unit="batch")
    was_training = model.training
    model.eval()
    try:
        for start in starts:
            chunk = order[start : start + batch_size]
            width = len(prompts[chunk[0]]) - shared
            input_ids = torch.zeros((len(chunk), width), dtype=torch.long)
            attention_mask = torch.zeros((len(chunk), shared + width), dtype=torch.long)
            attention_mask[:, :shared] = 1
            for row, index in enumerate(chunk):
                ids = torch.as_tensor(list(prompts[index][shared:]), dtype=torch.long)
                input_ids[row, : len(ids)] = ids
                attention_mask[row, shared : shared + len(ids)] = 1
            kwargs: dict[str, Any] = {}
            if prefix_cache is not None:
                cache = copy.deepcopy(prefix_cache)
                cache.batch_repeat_interleave(len(chunk))
                kwargs = {
                    cache_kwarg: cache,
                    "use_cache": True,
                    "position_ids": (shared + torch.arange(width))[None].expand(len(chunk), -1).to(device),
                }
            else:
                kwargs = {"use_cache": False}
            outputs = model(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                output_hidden_states=True,
                **kwargs,
                **logits_to_keep_kwargs(model, 1),
            )
            hidden = outputs.hidden_states
            if hidden is None:
                raise ValueError(f"{type(model).__name__} returned no hidden_states with output_hidden_states=True")
            lengths = attention_mask[:, shared:].sum(1)
            # suffix column of (row, position): row length after the shared prefix + position
            columns = (lengths[:, None] + torch.tensor(positions)[None, :]).to(hidden[0].device)
            rows = torch.arange(len(chunk), device=hidden[0].device)[:, None]
            picked = torch.stack([h[rows, columns] for h in hidden], dim=1).float().cpu()  # [batch, N+1, P, d]
            if result is None:
                result = torch.empty((len(prompts), *picked.shape[1:]), dtype=torch.float32)
            result[torch.as_tensor(chunk)] = picked
    finally:
        model.train(was_training)
    assert result is not None
    return result
