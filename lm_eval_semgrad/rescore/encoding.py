"""Token ids of logged prompts and answers, rebuilt the way lm-eval's HF model made them.

Prompt rule (lm-eval 0.4.13, `HFLM.tok_batch_encode` for `generate_until`, causal models)
    - the context string is encoded verbatim (a `--apply_chat_template` prompt is already rendered,
      special tokens and all, in the logged string);
    - if it starts with the tokenizer's BOS *string*, no special tokens are added
      (`add_special_tokens=False`): a chat template that writes BOS itself does not get a second one;
    - otherwise, if the run passed `add_bos_token=...` in its model args, `add_special_tokens` is that
      value; otherwise the tokenizer's default applies (`add_special_tokens=True`: Llama-style
      tokenizers prepend BOS, ChatML/Qwen-style ones add nothing);
    - the ids are left-truncated to `max_length - max_gen_toks` tokens (HFLM's `max_ctx_len`).
    HFLM decides the BOS question from the first prompt of each batch; here it is decided per
    prompt, which agrees whenever a log's prompts agree on a leading BOS (one task and template do).
    Logs of other backends (vLLM, APIs) are re-encoded with this same rule: the HF model that
    scores them reads these ids.

Answer rule
    - the raw logged answer text (`resps`, never `filtered_resps`) is encoded without special tokens;
    - the token that ended generation is appended: the tokenizer's EOS, unless the answer already
      has `max_gen_toks` tokens or more (generation ran out of tokens, no EOS was produced);
    - the text round-trips when `decode(encode(text)) == text`.
    Generation that stopped at a stop string (`until`) rather than EOS produced the stop string's
    tokens, which lm-eval cut from the text; they cannot be recovered from the log and EOS stands
    in for them (semgrad-hf logs carry the exact `response_ids`, which are used instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..hf.prompt_encoding import special_tokens_kwargs

#: HFLM's default `max_gen_toks` when a task's generation_kwargs set none (HFLM.max_gen_toks).
DEFAULT_MAX_GEN_TOKS = 256
#: HFLM's default context length when neither the model config nor the tokenizer gives one.
DEFAULT_MAX_LENGTH = 2048

_MAX_TOKEN_ALIASES = ("max_gen_toks", "max_new_tokens", "max_tokens", "max_completion_tokens")


def max_gen_toks(gen_kwargs: dict[str, Any] | None, default: int = DEFAULT_MAX_GEN_TOKS) -> int:
    """The answer-length limit of a request, with lm-eval's alias priority (normalize_gen_kwargs)."""
    for name in _MAX_TOKEN_ALIASES:
        value = (gen_kwargs or {}).get(name)
        if value is not None:
            return int(value)
    return default


def _ids(encoded: Any) -> list[int]:
    if isinstance(encoded, dict) or hasattr(encoded, "input_ids"):
        encoded = encoded["input_ids"]
    return [int(t) for t in encoded]


@dataclass(frozen=True)
class PromptEncoder:
    """HFLM's context encoding for one tokenizer (see the module docstring)."""

    tokenizer: Any
    add_bos_token: bool | None = None
    max_length: int = DEFAULT_MAX_LENGTH

    def special_tokens_kwargs(self, prompt: str) -> dict[str, bool]:
        return special_tokens_kwargs(self.tokenizer, prompt, self.add_bos_token)

    def encode(self, prompt: str, gen_kwargs: dict[str, Any] | None = None) -> list[int]:
        """The context ids; left-truncated as HFLM does when `gen_kwargs` (the request's) are given."""
        ids = _ids(self.tokenizer(prompt, **self.special_tokens_kwargs(prompt)))
        if gen_kwargs is not None:
            max_ctx_len = self.max_length - max_gen_toks(gen_kwargs)
            if max_ctx_len > 0 and len(ids) > max_ctx_len:
                ids = ids[-max_ctx_len:]
        return ids

    def encode_messages(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        """Chat messages rendered with the chat template and the generation prompt, template tokens verbatim.

        Equals `tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)`
        (which encodes the rendered text without adding special tokens).
        """
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError("the row has 'messages' but the tokenizer has no chat template; give a 'prompt' string")
        text = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        return _ids(self.tokenizer(text, add_special_tokens=False))


@dataclass(frozen=True)
class RebuiltAnswer:
    ids: list[int]  # including the appended EOS, when one is appended
    text_problem: str | None  # why these ids cannot be the generated ones (None: they can)
    hit_limit: bool  # the answer had max_gen_toks tokens or more: no EOS appended


def rebuild_answer(tokenizer: Any, text: str, *, limit: int | None, eos_token_id: int | None) -> RebuiltAnswer:
    """Answer ids from the logged text: encoded without special tokens, plus EOS unless the limit was hit."""
    ids = _ids(tokenizer(text, add_special_tokens=False))
    problem = None
    if tokenizer.decode(ids, skip_special_tokens=False) != text:
        problem = "decode(encode(answer)) != answer: the scored ids are not the generated ones"
    elif "\ufffd" in text:
        problem = ("the answer holds U+FFFD (generated bytes that were not valid UTF-8): its generated ids cannot be "
                   "rebuilt from the text")
    elif limit and len(ids) > limit:
        problem = (f"the re-tokenised answer has {len(ids)} tokens, more than the {limit} generation allowed: the "
                   "generated ids were others")
    hit_limit = limit is not None and len(ids) >= limit
    if not hit_limit and eos_token_id is not None:
        ids = [*ids, int(eos_token_id)]
    return RebuiltAnswer(ids=ids, text_problem=problem, hit_limit=hit_limit)
