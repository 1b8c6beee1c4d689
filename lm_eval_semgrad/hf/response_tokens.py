"""Cut generated token ids exactly where lm-eval cuts the answer text."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any


def answer_token_ids(
    generated: Sequence[int],
    stop_strings: Sequence[str],
    stop_token_ids: Collection[int],
    decode: Callable[[Sequence[int]], str],
) -> list[int]:
    """The answer's tokens, including the token that ended it.

    `generated` is everything after the prompt (for finished rows HF generate pads the tail).
    lm-eval cuts the decoded text at the first stop string; generation itself stops at an
    end-of-sequence token. The answer ends at whichever comes first: the first stop token
    (kept), or the shortest prefix whose text (special tokens included) contains a stop string
    (the token completing it kept). `decode` must not skip special tokens.
    """
    tokens = list(generated)
    end = next((i + 1 for i, token in enumerate(tokens) if token in stop_token_ids), len(tokens))
    stops = [s for s in stop_strings if s]
    if not stops or not any(s in decode(tokens[:end]) for s in stops):
        return tokens[:end]
    low, high = 1, end  # the shortest prefix containing a stop string lies in [low, high]
    while low < high:
        middle = (low + high) // 2
        if any(s in decode(tokens[:middle]) for s in stops):
            high = middle
        else:
            low = middle + 1
    return tokens[:low]


def answer_cutter(
    tokenizer: Any, stop_token_ids: Collection[int]
) -> Callable[[Sequence[str]], Callable[[list[int]], tuple[list[int], str]]]:
    """For given stop strings, the function that cuts generated ids into (answer ids, answer text) as lm-eval
    does: the ids by `answer_token_ids`, the text as HFLM decodes (special tokens skipped) and cuts it."""
    from lm_eval.models.utils import postprocess_generated_text

    def decode_raw(tokens: Sequence[int]) -> str:
        return tokenizer.decode(list(tokens), skip_special_tokens=False)

    def for_stops(stops: Sequence[str]) -> Callable[[list[int]], tuple[list[int], str]]:
        def cut(generated: list[int]) -> tuple[list[int], str]:
            ids = answer_token_ids(generated, stops, stop_token_ids, decode_raw)
            text = postprocess_generated_text(tokenizer.decode(generated, skip_special_tokens=True), list(stops), None)
            return ids, text

        return cut

    return for_stops


def end_of_sequence_ids(tokenizer: Any, model: Any) -> set[int]:
    """Token ids that end generation: the tokenizer's EOS and the model's generation config's."""
    ids = {getattr(tokenizer, "eos_token_id", None)}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
    return {i for i in ids if i is not None}
