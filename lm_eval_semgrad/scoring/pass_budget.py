"""The memory model of one grad pass, and how rows are grouped into passes that fit a budget.

`GradPassMemory` is measured by `memory.grad_pass_memory`; the scorers use it (and only it) to
split a batch, so they need nothing of the measurement itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .batching import token_budget_groups


@dataclass(frozen=True)
class GradPassMemory:
    """Peak memory of one grad pass above its start, as a linear model of its batch.

    fixed + rows x (per_token x suffix columns + per_prompt_token x prompt columns): the suffix
    columns (tau..end) carry saved activations and logits; the prompt columns their rows' KV cache
    and the keys and values the semantic layers keep for the backward pass.
    """

    per_token: float
    per_prompt_token: float
    fixed: float
    source: str  # how it was measured

    def row_groups(self, suffix_widths: Sequence[int], prompt_width: int, budget_bytes: float) -> list[list[int]]:
        """Rows grouped by width into grad passes that each fit `budget_bytes` (a row alone always passes)."""
        prompt_cost = prompt_width * self.per_prompt_token / self.per_token  # in suffix-token units
        widths = [width + prompt_cost for width in suffix_widths]
        return token_budget_groups(widths, max(1.0, (budget_bytes - self.fixed) / self.per_token))
