"""Keep one decoder layer's inputs from generation, so that the grad pass can skip the layers below it.

Generation already computes every layer's input at every column it feeds: the prompt's columns in
the prefill, each answer token's in its decoding step. The grad pass needs the input of its lowest
graph layer at the columns from tau on; recomputing it runs all layers below that one again
(half the model's forward for the default upper-half band). Recording it costs a reference per
decoding step and about 1/40 of the KV cache's memory.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .model_access import decoder_layers


class LayerInputRecorder:
    """Records the input of decoder layer `index` at columns >= `first_column` during one `generate` call.

    Use as a context manager around the call, then `inputs()`. Only layers that return a plain
    tensor can be skipped later (`layers_bypassed`); for others, or for generation that does not
    feed columns one after another (beam search, assisted decoding), `inputs()` returns None.
    """

    def __init__(self, model: nn.Module, index: int, first_column: int) -> None:
        if index < 1:
            raise ValueError(f"index must be >= 1 (a layer with layers below it to skip); got {index}.")
        self.layers = decoder_layers(model)
        self.index, self.first_column = index, max(0, first_column)
        self._pieces: list[torch.Tensor] = []
        self._columns_seen = 0
        self._rows: int | None = None
        self._usable = True
        self._handles: list[Any] = []

    def __enter__(self) -> LayerInputRecorder:
        self._handles = [
            self.layers[self.index].register_forward_pre_hook(self._record, with_kwargs=True),
            self.layers[self.index - 1].register_forward_hook(self._check_output),
        ]
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _record(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        rows, columns = hidden.shape[0], hidden.shape[1]
        if self._rows is None:
            self._rows = rows
        elif rows != self._rows:
            self._usable = False
        skip = self.first_column - self._columns_seen
        if skip < columns:  # a copy: a layer may update its input in place, and a slice would keep the prefill alive
            self._pieces.append(hidden[:, max(0, skip) :].detach().clone())
        self._columns_seen += columns

    def _check_output(self, module: nn.Module, args: tuple, output: Any) -> None:
        if not isinstance(output, torch.Tensor):
            self._usable = False

    def inputs(self, fed_columns: int) -> torch.Tensor | None:
        """(rows, columns, d) inputs from `first_column` on, or None when they cannot stand in for a recompute.

        `fed_columns` is how many columns generation fed through the model (the prompt width plus
        the generated tokens but the last); a different count means the record is not one column
        per token in order.
        """
        skipped = self.layers[: self.index]
        same_kind = all(type(layer) is type(self.layers[self.index - 1]) for layer in skipped)
        if not (self._usable and same_kind and self._pieces and self._columns_seen == fed_columns):
            return None
        return torch.cat(self._pieces, dim=1)
