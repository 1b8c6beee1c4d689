"""The SPS measurement: hidden states of questions and their paraphrases in the eval prompt (torch loads on use)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .paraphrases import ParaphraseItem, as_items
from .prompts import DEFAULT_PROMPT_TEMPLATE, encode_prompt

DEFAULT_POSITIONS = (-1, -2, -3, -4, -5, -6, -7, -8)


@dataclass
class SPSFeatures:
    """Hidden states of questions and paraphrases in the eval prompt, at `positions`, every layer.

    `questions` [Q, N+1, P, d], `paraphrases` [Q, K, N+1, P, d] (zeros where `mask` [Q, K] is
    False), plus the prompt settings they were measured with. `subset` picks questions, so one
    measurement serves several calibrations (e.g. stability checks).
    """

    items: list[ParaphraseItem]
    positions: list[int]
    questions: Any
    paraphrases: Any
    mask: Any
    apply_chat_template: bool
    prompt_template: str
    add_bos_token: bool | None

    @property
    def num_layers(self) -> int:
        return int(self.questions.shape[1]) - 1

    def subset(self, indices: Sequence[int]) -> SPSFeatures:
        import torch

        index = torch.as_tensor(list(indices), dtype=torch.long)
        return SPSFeatures(
            items=[self.items[i] for i in indices], positions=list(self.positions),
            questions=self.questions[index], paraphrases=self.paraphrases[index], mask=self.mask[index],
            apply_chat_template=self.apply_chat_template, prompt_template=self.prompt_template,
            add_bos_token=self.add_bos_token,
        )


def measure_features(
    model: Any,
    tokenizer: Any,
    items: Sequence[ParaphraseItem],
    *,
    apply_chat_template: bool,
    positions: Sequence[int] = DEFAULT_POSITIONS,
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    add_bos_token: bool | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> SPSFeatures:
    """One no-grad forward pass per question and paraphrase (in the harness's eval prompt)."""
    import torch

    from ..scoring.model_access import decoder_layers
    from .features import prompt_hidden_states

    positions = _check_positions(positions)
    items = as_items(items)
    if len(items) < 2:
        raise ValueError(f"{len(items)} question(s): the SPS needs at least 2")
    encode = dict(template=prompt_template, apply_chat_template=apply_chat_template, add_bos_token=add_bos_token)
    texts: list[str] = []
    owners: list[tuple[int, int]] = []  # (question index, paraphrase slot: -1 = the question itself)
    for q_index, item in enumerate(items):
        texts.append(item.question)
        owners.append((q_index, -1))
        for k, paraphrase in enumerate(item.paraphrases):
            texts.append(paraphrase)
            owners.append((q_index, k))
    prompts = [encode_prompt(tokenizer, text, **encode) for text in texts]
    features = prompt_hidden_states(model, prompts, positions, batch_size=batch_size, progress=progress)
    num_layers = features.shape[1] - 1
    declared = len(decoder_layers(model))
    if declared != num_layers:
        raise ValueError(f"the model returned {num_layers + 1} hidden states for {declared} decoder layers")
    max_k = max(len(item.paraphrases) for item in items)
    questions = torch.zeros((len(items), *features.shape[1:]), dtype=features.dtype)
    paraphrases = torch.zeros((len(items), max_k, *features.shape[1:]), dtype=features.dtype)
    mask = torch.zeros((len(items), max_k), dtype=torch.bool)
    for row, (q_index, slot) in enumerate(owners):
        if slot < 0:
            questions[q_index] = features[row]
        else:
            paraphrases[q_index, slot] = features[row]
            mask[q_index, slot] = True
    return SPSFeatures(
        items=list(items), positions=positions, questions=questions, paraphrases=paraphrases, mask=mask,
        apply_chat_template=bool(apply_chat_template), prompt_template=prompt_template, add_bos_token=add_bos_token,
    )


def _check_positions(positions: Sequence[int]) -> list[int]:
    try:
        result = [int(p) for p in positions]
    except (TypeError, ValueError):
        raise ValueError(f"positions {positions!r}: give negative integers (-1 = last prompt token)") from None
    if not result or any(p >= 0 for p in result) or len(set(result)) != len(result):
        raise ValueError(f"positions {result}: give distinct negative integers (-1 = last prompt token)")
    return result
