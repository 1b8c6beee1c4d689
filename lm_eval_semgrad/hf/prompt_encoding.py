"""How lm-eval's HF model encodes a generation context, for code that must reproduce its token ids."""

from __future__ import annotations

from typing import Any


def special_tokens_kwargs(tokenizer: Any, text: str, add_bos_token: bool | None = None) -> dict[str, bool]:
    """HFLM.tok_batch_encode's choice of `add_special_tokens` for a causal LM.

    A context that already starts with the BOS string (a rendered chat template) gets no special
    tokens; otherwise the run's `add_bos_token`, when set, decides; else the tokenizer's default.
    """
    bos = getattr(tokenizer, "bos_token", None)
    if isinstance(bos, str) and bos and text.startswith(bos):
        return {"add_special_tokens": False}
    if add_bos_token is not None:
        return {"add_special_tokens": bool(add_bos_token)}
    return {}
