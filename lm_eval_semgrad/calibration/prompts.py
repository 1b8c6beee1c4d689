"""Eval prompts exactly as lm-eval 0.4.13's HFLM builds and encodes them for a `semgrad_*` task.

lm-eval renders the task's `doc_to_text` (zero-shot, no description) and then

- with `--apply_chat_template`: `tokenizer.apply_chat_template([{"role": "user", "content": TEXT}],
  add_generation_prompt=True, tokenize=False)` (HFLM.apply_chat_template; a template's default
  system prompt, e.g. SmolLM2's, is kept, as in the harness);
- without: the raw TEXT.

`generate_until` encodes the batch with `HFLM.tok_batch_encode`: `add_special_tokens=False` when the
string starts with the tokenizer's BOS token (every chat template that writes its own BOS/first
special token), else `add_special_tokens=add_bos_token` when the model arg `add_bos_token` is set,
else the tokenizer's default (`add_special_tokens=True`: a Llama-style tokenizer prepends BOS, a
GPT-2/ChatML-style one adds nothing). `encode_prompt` does the same, one string at a time (batch
encoding with padding gives the same ids per row).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from ..hf.prompt_encoding import special_tokens_kwargs

#: The `semgrad_*` tasks' doc_to_text (task_configs/_semgrad_template_yaml), `{question}` = the question.
DEFAULT_PROMPT_TEMPLATE = "Please directly answer the following question with one or few words:\n{question}"

__all__ = [
    "DEFAULT_PROMPT_TEMPLATE",
    "chat_template_sha256",
    "encode_prompt",
    "prompt_text",
    "render_prompt",
]


def prompt_text(question: str, template: str = DEFAULT_PROMPT_TEMPLATE) -> str:
    """The task's user text for one question (the question stripped, like the tasks' process_docs)."""
    if "{question}" not in template:
        raise ValueError(f"prompt template {template!r} has no '{{question}}' placeholder")
    return template.replace("{question}", str(question).strip())


def render_prompt(tokenizer: Any, text: str, apply_chat_template: bool) -> str:
    """The prompt string HFLM generates from: the chat-templated user turn, or `text` itself."""
    if not apply_chat_template:
        return text
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"apply_chat_template=True but the tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat "
            "template; calibrate without --apply_chat_template (the harness then uses the raw prompt)."
        )
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
    )
    if not isinstance(rendered, str):
        raise TypeError(f"apply_chat_template(tokenize=False) returned {type(rendered).__name__}, expected str")
    return rendered


def encode_prompt(
    tokenizer: Any,
    question: str,
    *,
    template: str = DEFAULT_PROMPT_TEMPLATE,
    apply_chat_template: bool = True,
    add_bos_token: bool | None = None,
) -> list[int]:
    """Token ids of the eval prompt for `question`, identical to the harness's generation context."""
    rendered = render_prompt(tokenizer, prompt_text(question, template), apply_chat_template)
    ids = tokenizer(rendered, **special_tokens_kwargs(tokenizer, rendered, add_bos_token))["input_ids"]
    return [int(i) for i in ids]


def encode_prompts(tokenizer: Any, questions: Sequence[str], **kwargs: Any) -> list[list[int]]:
    return [encode_prompt(tokenizer, q, **kwargs) for q in questions]


def chat_template_sha256(tokenizer: Any) -> str | None:
    """sha256 of the tokenizer's chat template text (None without one): identifies the prompt format."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return None
    if not isinstance(template, str):  # a dict of named templates
        import json

        template = json.dumps(template, sort_keys=True)
    return hashlib.sha256(template.encode("utf-8")).hexdigest()
