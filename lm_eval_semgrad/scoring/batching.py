"""Prompt-aligned teacher-forcing batches of (prompt, response) pairs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TeacherForcedBatch:
    """Prompts left-padded to `prompt_width`, responses right-padded after them: the layout of generation.

    Every prompt ends at column `prompt_width - 1`, so the semantic position tau is one column for
    all rows (`prompt_width + position`), and the columns before it can come from one KV cache
    (computed without grad, or kept from generation). Row b's response fills columns
    `prompt_width .. prompt_width + response_lengths[b] - 1`.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    prompt_width: int
    response_lengths: list[int]

    @property
    def max_response_length(self) -> int:
        return max(self.response_lengths)

    def semantic_column(self, position: int) -> int:
        return self.prompt_width + position

    def response_mask(self) -> torch.Tensor:
        """(B, max_response_length): True where row b has its own response token."""
        columns = torch.arange(self.max_response_length, device=self.input_ids.device)
        lengths = torch.tensor(self.response_lengths, device=self.input_ids.device)
        return columns.unsqueeze(0) < lengths.unsqueeze(1)


def build_batch(
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    pad_token_id: int,
    device: torch.device,
    prompt_width: int | None = None,
) -> TeacherForcedBatch:
    """Left-pad the prompts and right-pad the responses to common widths.

    `prompt_width` (default: the longest prompt) pads the prompts wider, e.g. to the layout of the
    generation batch whose KV cache these rows come from.

    Position ids count from each row's first real token, so a padded row computes exactly what
    the same sequence computes alone (padding is masked out, and trailing padding comes after
    every real token of its row).
    """
    longest = max(len(p) for p in prompt_ids)
    if prompt_width is None:
        prompt_width = longest
    elif prompt_width < longest:
        raise ValueError(f"prompt_width={prompt_width} is narrower than the longest prompt ({longest} tokens).")
    response_width = max(len(r) for r in response_ids)
    rows = len(prompt_ids)
    input_ids = torch.full((rows, prompt_width + response_width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, (prompt, response) in enumerate(zip(prompt_ids, response_ids)):
        start, end = prompt_width - len(prompt), prompt_width + len(response)
        input_ids[row, start:end] = torch.tensor([*prompt, *response], dtype=torch.long)
        attention_mask[row, start:end] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return TeacherForcedBatch(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        position_ids=position_ids.to(device),
        prompt_width=prompt_width,
        response_lengths=[len(r) for r in response_ids],
    )


def token_budget_groups(widths: Sequence[float], max_tokens: float | None) -> list[list[int]]:
    """Row indices in groups whose rows x (widest row) stays within `max_tokens` (None: one group).

    Rows are taken widest first, so each group pads its rows to similar widths; a row wider than
    the budget still forms a group of its own. Within a group, rows keep their original order.
    """
    if max_tokens is None:
        return [list(range(len(widths)))]
    groups: list[list[int]] = []
    for row in sorted(range(len(widths)), key=lambda i: widths[i], reverse=True):
        if groups and (len(groups[-1]) + 1) * widths[groups[-1][0]] <= max_tokens:
            groups[-1].append(row)
        else:
            groups.append([row])
    return [sorted(group) for group in groups]
