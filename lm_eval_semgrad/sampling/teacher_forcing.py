"""Teacher-forced log-probs of given continuations: P(True) (docs/method.md §3.3) and M.I.'s mu2 (§3.9).

`log_softmax(logits / temperature)` over the full vocabulary at each continuation token, as the
reference code's `read_logits` computes them: no top-k or top-p. Batches are right-padded (causal
attention: a row never sees its padding), sorted by length to pad little, and the output projection
runs only over the columns from the batch's earliest continuation on (where the model supports it):
M.I.'s prompts are long and its answers a few tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..scoring.model_access import logits_to_keep_kwargs, model_device


@torch.no_grad()
def continuation_logprobs(
    model: nn.Module,
    prefixes: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    *,
    temperature: float = 1.0,
    batch_size: int = 8,
) -> list[list[float]]:
    """For each (prefix, continuation): the log-prob of every continuation token given all tokens before it."""
    if len(prefixes) != len(continuations):
        raise ValueError(f"{len(prefixes)} prefixes but {len(continuations)} continuations; pass one each")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    for index, (prefix, continuation) in enumerate(zip(prefixes, continuations)):
        if not prefix or not continuation:
            raise ValueError(f"pair {index}: the prefix and the continuation each need at least one token")
    order = sorted(range(len(prefixes)), key=lambda i: -(len(prefixes[i]) + len(continuations[i])))
    results: list[list[float]] = [[] for _ in prefixes]
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), max(1, batch_size)):
            chunk = order[start : start + max(1, batch_size)]
            width = max(len(prefixes[i]) + len(continuations[i]) for i in chunk)
            input_ids = torch.zeros((len(chunk), width), dtype=torch.long)
            attention_mask = torch.zeros_like(input_ids)
            for row, i in enumerate(chunk):
                ids = [*prefixes[i], *continuations[i]]
                input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                attention_mask[row, : len(ids)] = 1
            kept = width - min(len(prefixes[i]) for i in chunk) + 1  # the last columns: every continuation's
            logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False,
                           **logits_to_keep_kwargs(model, kept)).logits
            offset = width - logits.shape[1]  # 0 when the model computed every column
            for row, i in enumerate(chunk):
                first, count = len(prefixes[i]) - offset, len(continuations[i])
                rows = torch.log_softmax(logits[row, first - 1 : first - 1 + count].float() / temperature, dim=-1)
                targets = torch.tensor(list(continuations[i]), device=rows.device)
                results[i] = rows.gather(-1, targets[:, None])[:, 0].double().cpu().tolist()
    finally:
        model.train(was_training)
    return results
