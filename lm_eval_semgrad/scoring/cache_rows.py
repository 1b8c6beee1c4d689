"""Some rows of a KV cache as a cache of their own, leaving the original untouched."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from .prefix_split import holds_only_keys_and_values


def select_cache_rows(cache: Any, rows: Sequence[int]) -> Any:
    """A cache holding only `rows` (batch indices) of `cache`; `cache` itself is not modified.

    transformers' `Cache.batch_select_indices` works in place, so it runs on a copy: per layer a
    shallow copy whose tensors are then replaced by the selected rows (transformers >= 4.56 keeps
    them in `cache.layers`), or a deep copy for other cache layouts.
    """
    if not hasattr(cache, "batch_select_indices") or not holds_only_keys_and_values(cache):
        raise ValueError(
            f"{type(cache).__name__} cannot select batch rows (no batch_select_indices, or recurrent state that "
            "transformers does not select); score this batch in one pass (memory_budget=None)."
        )
    if isinstance(getattr(cache, "layers", None), list):
        selected = copy.copy(cache)
        selected.layers = [copy.copy(layer) for layer in cache.layers]
    else:
        selected = copy.deepcopy(cache)
    # CPU indices select rows on any device, also from caches whose layers sit on several GPUs
    selected.batch_select_indices(torch.tensor(list(rows), dtype=torch.long))
    return selected

