"""Left-padded teacher-forcing batches of (prompt, response) pairs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TeacherForcedBatch:
    """One left-padded batch: every sequence ends at the last column, so responses line up on the right.

    `input_ids`, `attention_mask`, `position_ids`: (B, T). The response of row b fills the last
    `response_lengths[b]` columns; the logits predicting it sit one column earlier.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    response_ids: list[list[int]]
    prompt_lengths: list[int]

    @property
    def response_lengths(self) -> list[int]:
        return [len(r) for r in self.response_ids]

    @property
    def max_response_length(self) -> int:
        return max(self.response_lengths)

    def semantic_columns(self, position: int) -> list[int]:
        """Column of the semantic position tau (a negative offset from the prompt end) for every row."""
        width = self.input_ids.shape[1]
        return [width - r + position for r in self.response_lengths]


def build_batch(
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    pad_token_id: int,
    device: torch.device,
) -> TeacherForcedBatch:
    """Concatenate each prompt and response and left-pad them to a common length.

    Position ids are counted from each row's first real token, so padded rows compute exactly what
    the same sequence computes alone.
    """
    sequences = [list(p) + list(r) for p, r in zip(prompt_ids, response_ids)]
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, width - len(sequence) :] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[row, width - len(sequence) :] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return TeacherForcedBatch(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        position_ids=position_ids.to(device),
        response_ids=[list(r) for r in response_ids],
        prompt_lengths=[len(p) for p in prompt_ids],
    )
