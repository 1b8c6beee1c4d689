"""Diverse (group) beam search as transformers 4.55's `generate` ran it: S.D.'s beams (docs/method.md §3.0.2, §3.8).

The reference code draws S.D.'s beams with `generate(..., num_beams=10, num_beam_groups=10,
diversity_penalty=1.0, do_sample=False)`. From transformers 4.56 that search is Hub code, which
cannot be fetched offline, so this module ports 4.55's `_group_beam_search`, `BeamSearchScorer` and
`BeamHypotheses` for one prompt: per step, groups in order; each group's log-softmax scores (float32)
lowered by `diversity_penalty` times the count of each token the earlier groups chose at this step
(`HammingDiversityLogitsProcessor`), added to the beam scores; the top `max(2, 1 + #EOS) * group_size`
candidates; an EOS among the group's top `group_size` finishes a hypothesis scored
`sum_logprobs / generated_len ** length_penalty` (EOS counted); `early_stopping` True, False or
"never" as 4.55 decides a group is done; a done group pads and its pad tokens still count for the
later groups' penalty; at `max_new_tokens` the open beams join the hypotheses, and all of them come
back sorted by score, best first, a finished one with `eos_token_ids[0]` appended (as 4.55 writes it,
whichever EOS id was chosen).

Of the logits processors, only the Hamming diversity one is ported: it is the only one such a call
activates with a default generation config. A model whose `generation_config` would make 4.55 add
another (a repetition penalty, `min_new_tokens`, bad words, ...) is refused with a ValueError naming
the setting, as are a `length_penalty` or `early_stopping` there that differ from the ones passed.

Two shortcuts, which can change only float rounding: the prompt runs once and its KV cache is copied
to the beams (4.55 runs `num_beams` identical rows), and only the last position's logits are computed.
tests/test_diverse_beams.py checks the beams token for token against transformers 4.55.4.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..scoring.model_access import cache_argument, logits_to_keep_kwargs, model_device, output_cache

__all__ = ["Beam", "diverse_beams"]

#: generation_config settings 4.55 would act on (a logits processor; constraints) that this port lacks, and when.
_UNPORTED: dict[str, Callable[[Any], bool]] = {
    "repetition_penalty": lambda v: v is not None and v != 1.0,
    "encoder_repetition_penalty": lambda v: v is not None and v != 1.0,
    "no_repeat_ngram_size": lambda v: v is not None and v > 0,
    "encoder_no_repeat_ngram_size": lambda v: v is not None and v > 0,
    "bad_words_ids": lambda v: v is not None,
    "sequence_bias": lambda v: v is not None,
    "min_length": lambda v: v is not None and v > 0,
    "min_new_tokens": lambda v: v is not None and v > 0,
    "forced_bos_token_id": lambda v: v is not None,
    "forced_eos_token_id": lambda v: v is not None,
    "remove_invalid_values": lambda v: v is True,
    "exponential_decay_length_penalty": lambda v: v is not None,
    "suppress_tokens": lambda v: v is not None,
    "begin_suppress_tokens": lambda v: v is not None,
    "guidance_scale": lambda v: v is not None and v != 1,
    "watermarking_config": lambda v: v is not None,
    "renormalize_logits": lambda v: v is True,
    "constraints": lambda v: v is not None,
    "force_words_ids": lambda v: v is not None,
}


@dataclass(frozen=True)
class Beam:
    """One returned beam: its generated tokens (a final EOS included, no padding) and 4.55's `sequences_scores`."""

    token_ids: tuple[int, ...]
    score: float


@dataclass
class _Hypotheses:
    """4.55's `BeamHypotheses` for one group: the best `size` finished beams, kept in insertion order."""

    size: int
    length_penalty: float
    early_stopping: bool | str
    max_new_tokens: int
    beams: list[tuple[float, list[int]]] = field(default_factory=list)
    worst_score: float = 1e9

    def add(self, tokens: list[int], sum_logprobs: float, generated_len: int) -> None:
        score = sum_logprobs / (generated_len**self.length_penalty)
        if len(self.beams) < self.size or score > self.worst_score:
            self.beams.append((score, tokens))
            if len(self.beams) > self.size:
                ranked = sorted((s, i) for i, (s, _) in enumerate(self.beams))
                del self.beams[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, generated_len: int) -> bool:
        """Whether no open beam can beat the worst kept one (`generated_len` counts this step's token)."""
        if len(self.beams) < self.size:
            return False
        if self.early_stopping is True:
            return True
        if self.early_stopping == "never" and self.length_penalty > 0.0:
            generated_len = self.max_new_tokens
        return self.worst_score >= best_sum_logprobs / generated_len**self.length_penalty


def _check(num_beams: int, num_beam_groups: int, diversity_penalty: float, max_new_tokens: int,
           early_stopping: bool | str, prompt_ids: Sequence[int]) -> None:
    if num_beam_groups < 2 or num_beams < num_beam_groups or num_beams % num_beam_groups:
        raise ValueError(f"num_beams ({num_beams}) must be divisible by num_beam_groups ({num_beam_groups}), "
                         "and num_beam_groups must be at least 2 (one group is plain beam search)")
    if not diversity_penalty > 0:
        raise ValueError(f"diversity_penalty must be > 0 (otherwise the groups are identical), got {diversity_penalty}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")
    if not prompt_ids:
        raise ValueError("the prompt needs at least one token")


def _refuse_unported(model: nn.Module, length_penalty: float, early_stopping: bool | str) -> None:
    """What 4.55's `generate` would take from the model's generation config and this port cannot match."""
    config = getattr(model, "generation_config", None)
    if config is None:
        return
    active = [f"{name}={getattr(config, name)!r}" for name, on in _UNPORTED.items() if on(getattr(config, name, None))]
    if active:
        raise ValueError(f"the model's generation_config sets {', '.join(active)}: transformers' generate would act "
                         "on it (a logits processor, or constraints), which this port does not; unset it")
    for name, passed in (("length_penalty", length_penalty), ("early_stopping", early_stopping)):
        configured = getattr(config, name, None)
        if configured is not None and configured != passed:
            raise ValueError(f"the model's generation_config sets {name}={configured!r}, which transformers' generate "
                             f"would use, but {name}={passed!r} was passed; pass the same value")


def _step(model: nn.Module, input_ids: torch.Tensor, length: int, cache: Any) -> tuple[torch.Tensor, Any]:
    """The last position's logits (float32) and the cache, for `input_ids` after `cache` (`length` tokens in all)."""
    mask = torch.ones((input_ids.shape[0], length), dtype=torch.long, device=input_ids.device)
    cache_kwargs = {} if cache is None else {cache_argument(model): cache}
    out = model(input_ids=input_ids, attention_mask=mask, use_cache=True, **cache_kwargs,
                **logits_to_keep_kwargs(model, 1))
    cache = output_cache(out)
    if cache is None:
        raise ValueError(f"{type(model).__name__} returned no KV cache with use_cache=True; beam search needs one")
    return out.logits[:, -1, :].float(), cache


@torch.no_grad()
def diverse_beams(
    model: nn.Module, prompt_ids: Sequence[int], *, num_beams: int = 10, num_beam_groups: int = 10,
    diversity_penalty: float = 1.0, max_new_tokens: int, eos_token_ids: Sequence[int], pad_token_id: int,
    length_penalty: float = 1.0, early_stopping: bool | str = False,
) -> list[Beam]:
    """The `num_beams` beams of 4.55's group beam search from `prompt_ids`, in its order (best score first).

    The order of `eos_token_ids` only decides which id a finished beam ends with (the first); the
    pad id is what a done group emits, which the later groups' diversity penalty counts.
    """
    _check(num_beams, num_beam_groups, diversity_penalty, max_new_tokens, early_stopping, prompt_ids)
    _refuse_unported(model, length_penalty, early_stopping)
    eos = [int(i) for i in eos_token_ids]
    group_size = num_beams // num_beam_groups
    candidates = max(2, 1 + len(eos)) * group_size
    groups = [_Hypotheses(group_size, length_penalty, early_stopping, max_new_tokens) for _ in range(num_beam_groups)]
    done = [False] * num_beam_groups
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        logits, cache = _step(model, torch.tensor([list(prompt_ids)], device=device), len(prompt_ids), None)
        cache.reorder_cache(torch.zeros(num_beams, dtype=torch.long))  # every beam starts from the prompt's row
        logits = logits.expand(num_beams, -1)
        # the first beam of each group starts at 0, the others at -1e9, so that a group's beams do not all pick alike
        beam_scores = torch.full((num_beams,), -1e9, dtype=torch.float32, device=device)
        beam_scores[::group_size] = 0
        generated: list[list[int]] = [[] for _ in range(num_beams)]
        for step in range(max_new_tokens):
            current = torch.zeros(num_beams, dtype=torch.long, device=device)
            reorder = torch.zeros(num_beams, dtype=torch.long, device=device)
            for g in range(num_beam_groups):
                first = g * group_size
                if done[g]:
                    current[first : first + group_size] = pad_token_id
                    reorder[first : first + group_size] = first
                    continue
                scores = torch.log_softmax(logits[first : first + group_size], dim=-1)
                vocab = scores.shape[-1]
                if g:
                    scores = scores - diversity_penalty * torch.bincount(current[:first], minlength=vocab)
                totals = (scores + beam_scores[first : first + group_size, None]).view(1, -1)
                top_scores, top = torch.topk(totals, candidates, dim=1, largest=True, sorted=True)
                chosen: list[tuple[float, int, int]] = []  # (beam score, token, beam within the group)
                for rank, (score, flat) in enumerate(zip(top_scores[0].tolist(), top[0].tolist())):
                    token, beam = flat % vocab, flat // vocab
                    if token in eos:
                        if rank < group_size:
                            groups[g].add(list(generated[first + beam]), score, step + 1)
                    else:
                        chosen.append((score, token, beam))
                    if len(chosen) == group_size:
                        break
                beam_scores[first : first + group_size] = torch.tensor([c[0] for c in chosen], device=device)
                current[first : first + group_size] = torch.tensor([c[1] for c in chosen], device=device)
                reorder[first : first + group_size] = torch.tensor([first + c[2] for c in chosen], device=device)
                generated[first : first + group_size] = [list(generated[first + c[2]]) for c in chosen]
                done[g] = groups[g].is_done(top_scores[0, 0].item(), step + 1)
            for row, token in zip(generated, current.tolist()):
                row.append(token)
            if all(done) or step + 1 == max_new_tokens:
                break
            cache.reorder_cache(reorder)
            logits, cache = _step(model, current[:, None], len(prompt_ids) + step + 1, cache)
    finally:
        model.train(was_training)
    return _finalize(groups, done, generated, beam_scores.tolist(), num_beams, max_new_tokens, eos)


def _finalize(groups: list[_Hypotheses], done: list[bool], generated: list[list[int]], beam_scores: list[float],
              num_beams: int, max_new_tokens: int, eos: list[int]) -> list[Beam]:
    """4.55's `finalize`: open beams of unfinished groups join their hypotheses; all sorted, best first."""
    for g, hypotheses in enumerate(groups):
        if not done[g]:
            for row in range(g * hypotheses.size, (g + 1) * hypotheses.size):
                hypotheses.add(generated[row], beam_scores[row], len(generated[row]))
    ranked = sorted((beam for hypotheses in groups for beam in hypotheses.beams), key=lambda beam: beam[0])
    best = [ranked.pop() for _ in range(num_beams)]
    # 4.55 writes its first EOS id after every beam shorter than the longest one + 1, at most max_new_tokens
    width = min(max(len(tokens) for _, tokens in best) + 1, max_new_tokens)
    return [Beam(tuple(tokens) + ((eos[0],) if len(tokens) < width else ()), float(np.float32(score)))
            for score, tokens in best]
