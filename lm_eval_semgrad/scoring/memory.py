"""What the grad pass holds in memory: measured per answer token, and compared with a KV cache.

The grad pass keeps the activations of the semantic layers over the answer columns until its
backward pass; they grow with (rows x answer tokens), ten or more times faster than a KV cache
grows per token. Knowing both lets a caller split a generation batch so that the grad pass needs
no more memory than generation's own cache.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from .core import score
from .model_access import model_device
from .pass_budget import GradPassMemory

PROBE_ROWS = 2
PROBE_PROMPT_TOKENS = (4, 36)
PROBE_ANSWER_TOKENS = (8, 40)  # both longer than one statistics chunk of large vocabularies
#: Without an allocator peak to read, backward transients are taken to equal the saved activations.
SAVED_TO_PEAK_FACTOR = 2.0


def grad_pass_memory(model: nn.Module, *, position: int = -1, layers: Sequence[int] | None = None) -> GradPassMemory:
    """Measure what a grad pass costs in memory, on three small two-row probes.

    The allocator's peak above the start of each score() call is read (CUDA: `max_memory_allocated`;
    CPU: torch.profiler's allocation events): a longer answer gives the cost per suffix column, a
    longer prompt the cost per prompt column, the rest is fixed (chunk buffers). Where no peak can
    be read, saved activations are counted instead (`saved_bytes_per_answer_token`), doubled for
    backward transients, plus the float32 logits; prompt columns are then not counted.
    """

    device = model_device(model)
    token = min(1, int(getattr(model.config, "vocab_size", 2)) - 1)
    short_prompt = max(PROBE_PROMPT_TOKENS[0], -position)
    long_prompt = short_prompt + PROBE_PROMPT_TOKENS[1] - PROBE_PROMPT_TOKENS[0]
    short, long = PROBE_ANSWER_TOKENS

    def probe(prompt_tokens: int, answer_tokens: int) -> float:
        prompts, answers = [[token] * prompt_tokens] * PROBE_ROWS, [[token] * answer_tokens] * PROBE_ROWS
        return allocator_peak(device, lambda: score(model, prompts, answers, position=position, layers=layers))

    try:
        base, longer_answer, longer_prompt = probe(short_prompt, short), probe(short_prompt, long), probe(long_prompt, short)
    except _NoPeakReading:
        vocab = int(getattr(model.config, "vocab_size", 0))
        saved = saved_bytes_per_answer_token(model, position=position, layers=layers)
        return GradPassMemory(SAVED_TO_PEAK_FACTOR * saved + 4 * vocab, 0.0, 0.0, "saved tensors x 2 + logits (estimate)")
    per_token = max(longer_answer - base, 1.0) / (PROBE_ROWS * (long - short))
    per_prompt_token = max(longer_prompt - base, 0.0) / (PROBE_ROWS * (long_prompt - short_prompt))
    suffix_width = short - position
    fixed = max(base - PROBE_ROWS * (per_token * suffix_width + per_prompt_token * short_prompt), 0.0)
    return GradPassMemory(per_token, per_prompt_token, fixed, f"allocator peak on {device.type}")


class _NoPeakReading(Exception):
    """This device offers no allocator peak to read."""


def allocator_peak(device: torch.device, run: Callable[[], Any]) -> float:
    """Peak bytes allocated on `device` during run() above what was allocated before it.

    CUDA: `max_memory_allocated`; CPU: torch.profiler's allocation events (exact tensor bytes,
    independent of malloc caching). Other devices raise `_NoPeakReading`.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run()
        torch.cuda.synchronize(device)
        return float(torch.cuda.max_memory_allocated(device) - before)
    if device.type != "cpu":
        raise _NoPeakReading(device.type)
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _native_stderr_silenced():
        prof.start()
    try:
        run()
    finally:
        with _native_stderr_silenced():
            prof.stop()
    return float(max((level for _, level in cpu_allocation_timeline(prof)), default=0))


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null: the profiler's native code prints a line there at each start and stop."""
    try:
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):  # no usable descriptor 2: nothing to silence
        yield
        return
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def cpu_allocation_timeline(prof: Any) -> list[tuple[int, int]]:
    """(time in ns, bytes allocated above the profile's start) after each CPU tensor allocation or free.

    `prof` is a finished `torch.profiler.profile(profile_memory=True)`; its events are read through
    `prof.profiler.kineto_results`, a private view that a torch version may lack (`_NoPeakReading`).
    """
    try:
        events = prof.profiler.kineto_results.events()  # every allocation and free, with its size
    except AttributeError as error:
        raise _NoPeakReading("cpu") from error
    timeline, level = [], 0
    for event in sorted((e for e in events if e.name() == "[memory]"), key=lambda e: e.start_ns()):
        if str(event.device_type()).endswith("CPU"):
            level += event.nbytes()
            timeline.append((event.start_ns(), level))
    return timeline


def saved_bytes_per_answer_token(
    model: nn.Module, *, position: int = -1, layers: Sequence[int] | None = None
) -> float:
    """Bytes the grad pass saves for its backward pass per answer token of one row.

    Measured, not estimated: autograd's saved tensors (parameters excluded, shared storage counted
    once) are summed during two tiny score() calls whose answers differ in length, and the
    difference is divided by the extra tokens. Architecture-independent; costs two short passes.
    """

    parameters = {parameter.untyped_storage().data_ptr() for parameter in model.parameters()}
    token = min(1, int(getattr(model.config, "vocab_size", 2)) - 1)
    prompt = [token] * max(PROBE_PROMPT_TOKENS[0], -position)
    totals = []
    for answer_tokens in PROBE_ANSWER_TOKENS:
        storages: dict[int, int] = {}

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in parameters:
                storages[storage.data_ptr()] = storage.nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            score(model, [prompt], [[token] * answer_tokens], position=position, layers=layers, batch_size=1)
        totals.append(sum(storages.values()))
    extra_tokens = PROBE_ANSWER_TOKENS[1] - PROBE_ANSWER_TOKENS[0]
    return max(totals[1] - totals[0], 0) / extra_tokens


def kv_cache_bytes_per_token(model: nn.Module) -> float:
    """Bytes a KV cache of `model` holds per token of one row, measured on a two-token forward pass.

    What generating a batch keeps per token: rescoring without generation budgets its grad passes by it.
    """
    from .model_access import logits_to_keep_kwargs, output_cache

    token = min(1, int(getattr(model.config, "vocab_size", 2)) - 1)
    with torch.no_grad():
        outputs = model(
            input_ids=torch.full((1, 2), token, dtype=torch.long, device=model_device(model)), use_cache=True,
            **logits_to_keep_kwargs(model, 1),
        )
    cache = output_cache(outputs)
    return cache_bytes(cache) / 2 if cache is not None else 0.0


def cache_bytes(cache: Any) -> int:
    """Bytes held by the tensors of a KV cache object (any transformers Cache layout), counted once each."""
    seen: dict[int, int] = {}
    for tensor in _tensors(cache, depth=3):
        seen[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
    return sum(seen.values())


def _tensors(value: Any, depth: int) -> Iterable[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif depth > 0 and isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item, depth - 1)
    elif depth > 0 and isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item, depth - 1)
    elif depth > 0 and hasattr(value, "__dict__") and not isinstance(value, (nn.Module, type)):
        for item in vars(value).values():
            yield from _tensors(item, depth - 1)
