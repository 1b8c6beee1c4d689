"""Teacher-forced log-probs of given continuations: P(True) (docs/method.md §3.3), M.I.'s mu2 (§3.9) and
S.D.'s rescoring (§3.8).

`log_softmax(logits / temperature)` over the full vocabulary at each continuation token, as the
reference code's `read_logits` computes them: no top-k or top-p. Two ways, same values:

- A prefix shared by several continuations (M.I. scores every cluster's answer after the same
  iterative prompt; S.D. every beam after the same question) runs once; its KV cache is then
  repeated for its continuations, which run together as one batch.
- Other pairs run whole, in right-padded batches (causal attention: a row never sees its
  padding) sorted by length to pad little; the output projection runs only over the columns
  from the batch's earliest continuation on (where the model supports it).

Models whose forward takes no KV cache, whose cache cannot repeat rows, or where running on from a
prefix's cache would not give the whole pass's values (recurrent state, length-dependent rotary
scaling: scoring/prefix_split.py) run every pair whole.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..scoring.cache_rows import select_cache_rows
from ..scoring.model_access import (
    cache_argument,
    forward_parameters,
    logits_to_keep_kwargs,
    model_device,
    output_cache,
)
from ..scoring.prefix_split import may_split_prefix, prefix_split_is_exact


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
    results: list[list[float]] = [[] for _ in prefixes]
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, prefix in enumerate(prefixes):
        groups.setdefault(tuple(prefix), []).append(index)
    takes_cache = {"past_key_values", "cache"} & set(forward_parameters(model))
    whole = [i for members in groups.values() if len(members) == 1 or not takes_cache for i in members]
    was_training = model.training
    model.eval()
    try:
        for prefix, members in groups.items():
            if takes_cache and len(members) > 1 and not _score_after_shared_prefix(
                model, list(prefix), members, continuations, temperature, batch_size, results
            ):
                whole += members
        _score_whole(model, prefixes, continuations, sorted(whole), temperature, batch_size, results)
    finally:
        model.train(was_training)
    return results


def _token_logprobs(logits: torch.Tensor, tokens: Sequence[int], temperature: float) -> list[float]:
    """log_softmax(logits / temperature) at `tokens`, one row of logits per token."""
    rows = torch.log_softmax(logits.float() / temperature, dim=-1)
    targets = torch.tensor(list(tokens), device=rows.device)
    return rows.gather(-1, targets[:, None])[:, 0].double().cpu().tolist()


def _score_whole(
    model: nn.Module, prefixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], indices: list[int],
    temperature: float, batch_size: int, results: list[list[float]],
) -> None:
    """Pairs `indices`, prefix and continuation in one row, longest rows first."""
    order = sorted(indices, key=lambda i: -(len(prefixes[i]) + len(continuations[i])))
    device = model_device(model)
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
            results[i] = _token_logprobs(logits[row, first - 1 : first - 1 + count], continuations[i], temperature)


def _score_after_shared_prefix(
    model: nn.Module, prefix: list[int], members: list[int], continuations: Sequence[Sequence[int]],
    temperature: float, batch_size: int, results: list[list[float]],
) -> bool:
    """The continuations `members` of one prefix, from the prefix's KV cache; False (nothing scored) when the model
    gives no cache whose rows can be repeated or whose continuation would not be the whole pass (prefix_split.py)."""
    longest = len(prefix) + max(len(continuations[i]) for i in members)
    if not may_split_prefix(model, longest):
        return False
    device = model_device(model)
    outputs = model(input_ids=torch.tensor([prefix], device=device), use_cache=True, **logits_to_keep_kwargs(model, 1))
    cache = output_cache(outputs)
    if cache is None or not hasattr(cache, "batch_select_indices") or not prefix_split_is_exact(model, cache, longest):
        return False
    first_token_logits = outputs.logits[0, -1:]  # predicts every continuation's first token
    length = len(prefix)
    by_length = sorted(members, key=lambda i: -len(continuations[i]))
    for start in range(0, len(by_length), max(1, batch_size)):
        chunk = by_length[start : start + max(1, batch_size)]
        width = max(len(continuations[i]) for i in chunk)
        scored = {i: _token_logprobs(first_token_logits, continuations[i][:1], temperature) for i in chunk}
        if width > 1:  # the tokens after the first one need a pass over the continuations (all but their last token)
            input_ids = torch.zeros((len(chunk), width - 1), dtype=torch.long)
            attention_mask = torch.ones((len(chunk), length + width - 1), dtype=torch.long)
            for row, i in enumerate(chunk):
                tokens = list(continuations[i][:-1])
                input_ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
                attention_mask[row, length + len(tokens) :] = 0
            logits = model(
                input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                position_ids=torch.arange(length, length + width - 1, device=device).expand(len(chunk), -1),
                use_cache=True, **{cache_argument(model): select_cache_rows(cache, [0] * len(chunk))},
            ).logits
            for row, i in enumerate(chunk):
                count = len(continuations[i]) - 1
                scored[i] += _token_logprobs(logits[row, :count], continuations[i][1:], temperature)
        for i in chunk:
            results[i] = scored[i]
    return True
