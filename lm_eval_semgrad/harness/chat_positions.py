"""The reference semantic position for chat templates we know, found from the template's tokens."""

from __future__ import annotations

# marker token of the assistant header -> offset of tau from that marker (SEMGRAD.md reference values)
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
