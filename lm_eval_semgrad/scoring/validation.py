"""Checks on score() inputs that turn silent garbage (wrong positions, empty answers) into clear errors."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .model_access import check_hidden_states_are_layer_inputs


def validate_inputs(
    model: nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    position: int,
    batch_size: int,
) -> None:
    """Raise ValueError naming the first offending sample and how to fix it."""
    if len(prompt_ids) != len(response_ids):
        raise ValueError(
            f"prompt_ids has {len(prompt_ids)} samples but response_ids has {len(response_ids)}; "
            "pass one response per prompt."
        )
    if isinstance(position, bool) or not isinstance(position, int) or position >= 0:
        raise ValueError(
            f"position must be a negative int counted from the prompt end (-1 = last prompt token), got {position!r}."
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    config = getattr(model, "config", None)
    vocab_size = getattr(config, "vocab_size", None)
    max_positions = getattr(config, "max_position_embeddings", None)
    for index, (prompt, response) in enumerate(zip(prompt_ids, response_ids)):
        if len(response) == 0:
            raise ValueError(
                f"sample {index}: the response has no tokens; SemGrad needs at least one response token "
                "(include the end-of-turn token that stopped generation)."
            )
        if len(prompt) < -position:
            raise ValueError(
                f"sample {index}: the prompt has {len(prompt)} tokens, fewer than |position| = {-position}; "
                "use a position closer to the prompt end or a longer prompt."
            )
        if max_positions is not None and len(prompt) + len(response) > max_positions:
            raise ValueError(
                f"sample {index}: prompt + response is {len(prompt) + len(response)} tokens, longer than the "
                f"model's max_position_embeddings ({max_positions}); truncate the prompt from the left."
            )
        if vocab_size is not None:
            out_of_range = [t for t in (*prompt, *response) if not 0 <= int(t) < vocab_size]
            if out_of_range:
                raise ValueError(
                    f"sample {index}: token ids {out_of_range[:5]} are outside the model's vocabulary "
                    f"(0..{vocab_size - 1}); were the ids made with another tokenizer?"
                )
    check_hidden_states_are_layer_inputs(model)
