"""When a pass may start from a cache of earlier columns and still give the values of one whole pass.

Every cheap path here runs the columns before some point once, keeps their cache, and runs only
the rest: the grad pass (the columns before tau, or generation's own cache), the teacher-forced
passes of shared prefixes. That is exact only when

- the cache holds nothing but attention keys and values: those can be cut back to a column and
  split by row. Recurrent and convolution states (Mamba, linear attention, LFM2's convolutions)
  summarise every column seen so far; transformers neither crops nor selects them exactly, and
  running on from them is not the whole pass either;
- the rotary embedding does not depend on the sequence's length: with `dynamic` NTK scaling or
  `longrope`, a sequence longer than the original context rotates *every* column otherwise than
  its prefix alone was rotated.

Where either fails, the callers run the whole sequence in one pass. Generation's own cache must also
be cut back to tau (`can_crop`), which a sliding-window layer past its window no longer allows.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

from torch import nn

_STATE_ATTRIBUTES = ("conv_states", "recurrent_states", "ssm_states")
_LENGTH_DEPENDENT_ROPE = ("dynamic", "longrope")


def holds_only_keys_and_values(cache: Any) -> bool:
    """Whether every layer of `cache` is attention keys/values (no recurrent or convolution state)."""
    layers = getattr(cache, "layers", None)
    holders = layers if isinstance(layers, list) else [cache]  # transformers < 4.56 keeps them on the cache
    return not any(hasattr(holder, name) for holder in holders for name in _STATE_ATTRIBUTES)


def can_crop(cache: Any) -> bool:
    """Whether `cache` can be cut back to its first columns: not once a sliding-window layer has dropped its oldest
    keys (transformers then refuses, unless the layer recorded its past)."""
    layers = getattr(cache, "layers", None)
    for layer in layers if isinstance(layers, list) else []:
        window = getattr(layer, "sliding_window", None)
        if window and not getattr(layer, "record_past", False) and layer.get_seq_length() >= window:
            return False
    return hasattr(cache, "crop")


def rope_scaling_limit(model: nn.Module) -> int | None:
    """The length past which the model's rotary scaling changes for all columns; None when it never does."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    parameters = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None)
    if not isinstance(parameters, Mapping):
        return None
    per_layer_type = [p for p in parameters.values() if isinstance(p, Mapping)]  # e.g. {"full_attention": {...}}
    limits = []
    for entry in per_layer_type or [parameters]:
        if entry.get("rope_type", entry.get("type")) in _LENGTH_DEPENDENT_ROPE:
            limit = entry.get("original_max_position_embeddings") or getattr(config, "max_position_embeddings", None)
            limits.append(int(limit) if limit else 0)
    return min(limits) if limits else None


#: Models whose cache was seen to hold recurrent state: their prefix passes are not even tried again.
_RECURRENT_CACHE_MODELS: weakref.WeakSet[nn.Module] = weakref.WeakSet()


def may_split_prefix(model: nn.Module, total_columns: int) -> bool:
    """What is known before any prefix pass: False for a model whose cache held recurrent state, or whose rotary
    scaling rotates a prefix of a sequence of `total_columns` otherwise than the whole sequence."""
    limit = rope_scaling_limit(model)
    return model not in _RECURRENT_CACHE_MODELS and (limit is None or total_columns <= limit)


def prefix_split_is_exact(model: nn.Module, cache: Any, total_columns: int) -> bool:
    """Whether running on from `cache` gives the values of one pass over all `total_columns` (a cache with
    recurrent state marks its model, so that `may_split_prefix` spares it later prefix passes)."""
    if not holds_only_keys_and_values(cache):
        _RECURRENT_CACHE_MODELS.add(model)
        return False
    return may_split_prefix(model, total_columns)


def prefix_cache_problem(model: nn.Module, cache: Any, total_columns: int) -> str | None:
    """Why generation's `cache` cannot stand in for the columns before tau of sequences up to `total_columns`
    (None: it can)."""
    if not prefix_split_is_exact(model, cache, total_columns):
        return "recurrent state, or rotary scaling that depends on the length"
    if not can_crop(cache):
        return "a sliding-window layer went past its window, so it cannot be cut back to tau"
    return None
