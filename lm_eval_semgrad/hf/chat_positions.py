"""The reference semantic position for chat templates we know, found from the template's tokens."""

from __future__ import annotations

from ..logs import get_logger

logger = get_logger(__name__)

# marker token of the assistant header -> offset of tau from that marker (reference values: docs/method.md §1.5)
ASSISTANT_MARKERS = {
    "<|start_header_id|>": 0,  # Llama-3.x: tau = -4, the assistant turn's <|start_header_id|>
    "<|im_start|>": 0,  # Qwen2.5/Qwen3 and other ChatML templates: tau = -3, the assistant <|im_start|>
    "[/INST]": -1,  # Mistral: tau = the last question token before [/INST]
}


def chat_template_position(tokenizer) -> int | None:
    """tau for this tokenizer's chat template, or None when the template is not a known family.

    The position is read off a rendered one-turn chat with the generation prompt: the last marker
    token of a known family, counted from the end. Matching on tokens (not the model name) makes
    fine-tunes and renamed checkpoints of a family resolve the same way.
    """
    if not getattr(tokenizer, "chat_template", None):
        return None
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Which gas do plants absorb?"}], add_generation_prompt=True, tokenize=True
    )
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(list(ids))
    for index in range(len(tokens) - 1, -1, -1):
        if tokens[index] in ASSISTANT_MARKERS:
            return index - len(tokens) + ASSISTANT_MARKERS[tokens[index]]
    return None


def resolve_position(requested: int | str | None, tokenizer) -> tuple[int, str]:
    """tau and where it came from: the number given, the chat template's, or -1 with a warning.

    `requested` is a negative int, "auto" (a known chat template or an error) or None (not given).
    """
    if isinstance(requested, int):
        return requested, "semgrad_position"
    known = chat_template_position(tokenizer)
    if known is not None:
        return known, "chat template"
    if requested == "auto":
        raise ValueError(
            "semgrad_position=auto: this tokenizer's chat template is not a known family "
            "(Llama-3, ChatML/Qwen, Mistral). Pass a number (e.g. semgrad_position=-1) or run "
            "`lm-eval-semgrad calibrate` and pass semgrad_calibration=FILE."
        )
    logger.warning(
        "semgrad: no semgrad_position given and no known chat template; using -1 (the last "
        "prompt token). Pass semgrad_position=N or calibrate for a better choice."
    )
    return -1, "default (last prompt token)"
