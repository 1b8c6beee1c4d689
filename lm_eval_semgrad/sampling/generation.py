"""Draw a sample set: K sampled answers per prompt, with their token log-probs under the warped distribution.

What the reference code stores for a sampled token is its probability under the *sampling*
distribution: the logits after temperature, then top-k (ties at the k-th value kept), then top-p
(tokens whose ascending cumulative probability is <= 1 - p removed, at least one kept), renormalised
(docs/method.md §3.0). This module applies exactly those warpers, in that order, itself.

Every answer row draws its tokens from its own random stream, seeded by (seed, set, prompt, sample
index): a row's samples do not depend on which other rows share its batch, so they are the same at
any batch size and in a data-parallel run as in one process. Inside `generate` a logits processor
(after the model's own processors, e.g. a repetition penalty) warps the logits, picks each row's
token by inverse-CDF sampling with that row's uniforms, records its log-prob, and leaves only that
token possible, so greedy decoding emits it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..scoring.model_access import decoder_layers, model_device
from .sets import SampleSet


@dataclass
class Sample:
    """One sampled answer: its tokens as the greedy answer's are cut (the ending token kept) and their log-probs."""

    text: str
    token_ids: list[int]
    token_logprobs: list[float]
    embedding: np.ndarray | None = field(default=None, repr=False)  # INSIDE's hidden state, when recorded

    def as_record(self) -> dict[str, object]:
        return {"text": self.text, "token_ids": self.token_ids, "token_logprobs": self.token_logprobs}


def warp(scores: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Temperature, then top-k, then top-p, as transformers' sampling warpers compute them (float32 logits)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if temperature != 1.0:
        scores = scores / temperature
    if top_k:
        k = min(max(top_k, 1), scores.shape[-1])
        kth = torch.topk(scores, k, dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1.0:
        ascending, order = torch.sort(scores, descending=False, dim=-1)
        cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= (1 - top_p)
        remove[..., -1:] = False  # keep at least the most probable token
        scores = scores.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    return scores


def row_seed(seed: int, set_name: str, prompt_ids: Sequence[int], sample_index: int) -> int:
    """The seed of one answer row's random stream (stable across runs, processes and platforms)."""
    key = f"{seed}|{set_name}|{sample_index}|{','.join(map(str, prompt_ids))}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1


class _RowSampler:
    """Logits processor: warp, pick each row's token with its own uniforms, record log-probs, force the token."""

    def __init__(self, sample_set: SampleSet, uniforms: torch.Tensor) -> None:
        self.sample_set, self.uniforms = sample_set, uniforms  # (rows, max_new_tokens), in (0, 1]
        self.tokens: list[torch.Tensor] = []
        self.logprobs: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = len(self.tokens)
        warped = warp(scores.float(), self.sample_set.temperature, self.sample_set.top_k, self.sample_set.top_p)
        log_probs = torch.log_softmax(warped, dim=-1)
        cdf = log_probs.exp().cumsum(dim=-1)
        target = self.uniforms[:, step].to(cdf.device, cdf.dtype) * cdf[:, -1]
        chosen = torch.searchsorted(cdf, target[:, None]).clamp(max=cdf.shape[-1] - 1)
        self.tokens.append(chosen[:, 0])
        self.logprobs.append(log_probs.gather(-1, chosen)[:, 0])
        forced = torch.full_like(scores, float("-inf"))
        return forced.scatter(-1, chosen, 0.0)


class _StopStrings:
    """Stopping criterion: a row is done once its generated text contains one of `stops` (checked on new tokens)."""

    def __init__(self, stops: Sequence[str], prompt_width: int, decode: Callable[[list[int]], str]) -> None:
        self.stops, self.prompt_width, self.decode = [s for s in stops if s], prompt_width, decode

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: object) -> torch.Tensor:
        if not self.stops:
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        texts = [self.decode(row[self.prompt_width :].tolist()) for row in input_ids]
        return torch.tensor([any(s in text for s in self.stops) for text in texts], device=input_ids.device)


class _LastColumnRecorder:
    """Forward pre-hook on one decoder layer: its input at the last column of every generation step."""

    def __init__(self, layer: nn.Module) -> None:
        self.steps: list[torch.Tensor] = []
        self.handle = layer.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        self.steps.append(hidden[:, -1].detach().to(torch.float64).cpu())

    def close(self) -> torch.Tensor:
        self.handle.remove()
        return torch.stack(self.steps, dim=1)  # (rows, steps, d): step 0 = the last prompt token


def draw_samples(
    model: Any,
    prompts: Sequence[Sequence[int]],
    sample_set: SampleSet,
    *,
    seed: int,
    max_new_tokens: int,
    cut: Callable[[list[int]], tuple[list[int], str]],
    pad_token_id: int,
    stop_strings: Sequence[str] = (),
    decode_raw: Callable[[list[int]], str] | None = None,
    rows_per_call: int = 16,
    progress: Callable[[int], None] | None = None,
) -> list[list[Sample]]:
    """`sample_set.k` samples for each prompt (token ids), cut like the greedy answer by `cut` (`model`: a
    transformers causal LM with `generate`).

    `cut(generated ids) -> (answer ids, answer text)` applies the request's end (stop token, stop
    string, text post-processing). Rows (prompt x sample) are generated `rows_per_call` at a time,
    longest prompts first. With `sample_set.hidden_states`, each sample also gets INSIDE's
    embedding: the input of decoder layer L // 2 at the position that emitted its last token
    (docs/method.md §3.6). `progress`, if given, is called with the number of samples after each call.
    """
    if sample_set.k < 1:
        raise ValueError(f"sample set {sample_set.name!r}: k must be >= 1, got {sample_set.k}")
    rows = [(p, k) for p in range(len(prompts)) for k in range(sample_set.k)]
    rows.sort(key=lambda row: -len(prompts[row[0]]))
    drawn: dict[tuple[int, int], Sample] = {}
    for start in range(0, len(rows), max(1, rows_per_call)):
        chunk = rows[start : start + max(1, rows_per_call)]
        samples = _generate_rows(
            model, [prompts[p] for p, _ in chunk], [k for _, k in chunk], sample_set, seed=seed,
            max_new_tokens=max_new_tokens, cut=cut, pad_token_id=pad_token_id, stop_strings=stop_strings,
            decode_raw=decode_raw,
        )
        drawn.update(zip(chunk, samples))
        if progress is not None:
            progress(len(chunk))
    return [[drawn[(p, k)] for k in range(sample_set.k)] for p in range(len(prompts))]


@torch.no_grad()
def _generate_rows(
    model: Any, prompts: list[Sequence[int]], sample_indices: list[int], sample_set: SampleSet, *, seed: int,
    max_new_tokens: int, cut: Callable[[list[int]], tuple[list[int], str]], pad_token_id: int,
    stop_strings: Sequence[str], decode_raw: Callable[[list[int]], str] | None,
) -> list[Sample]:
    from transformers import LogitsProcessorList, StoppingCriteriaList

    width = max(len(p) for p in prompts)
    device = model_device(model)
    input_ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
        attention_mask[row, width - len(prompt) :] = 1
    uniforms = torch.stack([
        1.0 - torch.rand(max_new_tokens, generator=torch.Generator().manual_seed(row_seed(seed, sample_set.name, p, k)),
                         dtype=torch.float64)
        for p, k in zip(prompts, sample_indices)
    ])
    sampler = _RowSampler(sample_set, uniforms)
    criteria = [] if not stop_strings or decode_raw is None else [_StopStrings(stop_strings, width, decode_raw)]
    recorder = _LastColumnRecorder(decoder_layers(model)[len(decoder_layers(model)) // 2]) if sample_set.hidden_states else None
    try:
        sequences = model.generate(
            input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
            generation_config=_greedy_config(model, max_new_tokens, pad_token_id),
            logits_processor=LogitsProcessorList([sampler]), stopping_criteria=StoppingCriteriaList(criteria),
        )
    finally:
        hidden = recorder.close() if recorder is not None else None
    logprobs = torch.stack(sampler.logprobs, dim=1).cpu() if sampler.logprobs else torch.zeros(len(prompts), 0)
    samples = []
    for row in range(len(prompts)):
        generated = sequences[row, width:].tolist()
        ids, text = cut(generated)
        embedding = None
        if hidden is not None:
            embedding = hidden[row, max(0, len(ids) - 1)].numpy()
        samples.append(Sample(text=text, token_ids=ids, token_logprobs=logprobs[row, : len(ids)].tolist(),
                              embedding=embedding))
    return samples


def _greedy_config(model: Any, max_new_tokens: int, pad_token_id: int) -> Any:
    """The model's generation config (its processors, e.g. a repetition penalty, stay) with sampling off and no
    warpers: our processor samples and warps, greedy decoding emits its choice."""
    import copy

    config = copy.deepcopy(model.generation_config)
    for name in ("temperature", "top_p", "top_k", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff"):
        if hasattr(config, name):
            setattr(config, name, None)
    config.do_sample, config.num_beams, config.num_return_sequences = False, 1, 1
    config.max_new_tokens, config.max_length, config.pad_token_id, config.use_cache = max_new_tokens, None, pad_token_id, True
    return config
