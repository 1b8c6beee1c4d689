"""Cut generated token ids exactly where lm-eval cuts the answer text."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence


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
