"""Find the pieces of a `transformers` causal LM that SemGrad hooks into, whatever its architecture."""

from __future__ import annotations

import contextlib
import inspect
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's list of decoder blocks, whose inputs are the hidden states h^(0..N-1).

    `output_hidden_states` returns the input of every block, then the final normed output; hooking
    the blocks directly lets the graph start at the lowest semantic layer instead of the embeddings.
    """
    num_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    get_decoder = getattr(model, "get_decoder", None)
    if callable(get_decoder):
        layers = getattr(get_decoder(), "layers", None)
        if isinstance(layers, nn.ModuleList) and (num_layers is None or len(layers) == num_layers):
            return layers
    if num_layers is not None:
        for module in model.modules():
            if isinstance(module, nn.ModuleList) and len(module) == num_layers:
                return module
    raise ValueError(
        f"{type(model).__name__} exposes no list of decoder layers matching config.num_hidden_layers, "
        "so its per-layer hidden states cannot be reached. SemGrad needs a decoder-only "
        "transformers model that supports output_hidden_states (e.g. a *ForCausalLM class)."
    )


_LAYOUT_CHECKED: weakref.WeakSet[nn.Module] = weakref.WeakSet()


def check_hidden_states_are_layer_inputs(model: nn.Module) -> None:
    """Once per model: `output_hidden_states[i]` must be decoder layer i's input, which the grad pass hooks.

    True of transformer LMs and of the hybrids tried (LFM2, Jamba, Falcon-H1, Qwen3-Next, Mamba-2);
    Mamba-1 models return each layer's *output* instead, so `semgrad_layers` would name other states
    there: refused, as are layer inputs that are not (batch, columns, width) (Gemma-3n's stacked
    streams) and encoder-decoder models.
    """
    if model in _LAYOUT_CHECKED:
        return
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        raise ValueError(
            f"{type(model).__name__} is an encoder-decoder model; SemGrad scores decoder-only causal LMs (the grad pass "
            "follows one stack of layers over prompt and answer). Load a *ForCausalLM model."
        )
    layers = decoder_layers(model)
    inputs: dict[int, torch.Tensor] = {}

    def record(index: int):
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            inputs.setdefault(index, (args[0] if args else kwargs["hidden_states"]).detach())

        return hook

    handles = [layer.register_forward_pre_hook(record(i), with_kwargs=True) for i, layer in enumerate(layers)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            hidden_states = model(input_ids=torch.tensor([[0, 1]], device=model_device(model)),
                                  output_hidden_states=True, use_cache=False).hidden_states
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    for index, layer_input in inputs.items():
        if layer_input.dim() != 3:
            raise ValueError(
                f"{type(model).__name__}'s decoder layer {index} takes hidden states of shape "
                f"{tuple(layer_input.shape)}, not (batch, columns, width) (e.g. Gemma-3n's stacked AltUp streams); "
                "SemGrad's gradient at one column of one hidden state per layer is not defined for them."
            )
        state = hidden_states[index] if hidden_states is not None and index < len(hidden_states) else None
        if state is not None and state.shape == layer_input.shape and not torch.allclose(
            state.float(), layer_input.float().to(state.device), rtol=1e-3, atol=1e-5, equal_nan=True
        ):
            raise ValueError(
                f"{type(model).__name__}'s output_hidden_states[{index}] is not the input of its decoder layer {index} "
                "(Mamba-1 models return layer outputs there), so the semantic layers cannot be located; SemGrad "
                "needs a model whose hidden state i enters layer i, as in transformer LMs."
            )
    _LAYOUT_CHECKED.add(model)


def output_projection(model: nn.Module) -> nn.Module:
    """The module that maps final hidden states to vocabulary logits (W_out, the lm_head)."""
    get_output = getattr(model, "get_output_embeddings", None)
    head = get_output() if callable(get_output) else None
    if head is None or getattr(head, "weight", None) is None:
        raise ValueError(
            f"{type(model).__name__} has no output embeddings (lm_head); SemGrad needs a causal LM "
            "with a language-modelling head (load it with AutoModelForCausalLM)."
        )
    return head


def upper_half_layers(num_layers: int) -> list[int]:
    """h^(N - floor(N/2)) .. h^(N-1): the reference's semantic band, final normed output excluded."""
    return list(range(num_layers - num_layers // 2, num_layers))


def resolve_layers(num_layers: int, layers: Sequence[int] | None) -> list[int]:
    """Validate `layers` (indices into output_hidden_states, 0..N) and return them sorted."""
    if layers is None:
        return upper_half_layers(num_layers)
    resolved = sorted({int(i) for i in layers})
    if not resolved:
        raise ValueError("layers is empty; pass None for the upper half or a list of hidden-state indices.")
    bad = [i for i in resolved if not 0 <= i <= num_layers]
    if bad:
        raise ValueError(
            f"layers {bad} are out of range: this model has {num_layers} decoder layers, so hidden-state "
            f"indices run 0..{num_layers} (0 = embeddings, {num_layers} = final normed output)."
        )
    return resolved


def graph_start_layer(num_layers: int, band: Sequence[int]) -> int:
    """The decoder layer whose input starts the grad pass's graph: the lowest band layer's.

    Band index `num_layers` (the final normed output) has no layer of its own; its graph starts
    at the last layer's input.
    """
    return min(band[0], num_layers - 1)


@contextlib.contextmanager
def layers_bypassed(layers: Sequence[nn.Module]) -> Iterator[None]:
    """Let these decoder layers return their input unchanged, e.g. when the layer above gets its input elsewhere.

    Only valid for layers that return a plain hidden-states tensor. Any instance-level `forward`
    (e.g. accelerate's device hooks) is put back afterwards.
    """
    saved = [layer.__dict__.get("forward") for layer in layers]
    for layer in layers:
        layer.forward = _return_hidden_states
    try:
        yield
    finally:
        for layer, forward in zip(layers, saved):
            if forward is None:
                del layer.forward
            else:
                layer.forward = forward


def _return_hidden_states(*args: Any, **kwargs: Any) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


@contextlib.contextmanager
def frozen_for_scoring(model: nn.Module) -> Iterator[None]:
    """Turn off every parameter's requires_grad and dropout while scoring, then restore both.

    Parameter gradients are never needed (the W_out gradient is computed from activations), and
    leaving them on would make autograd build the graph through every layer and store weight grads.
    """
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    for param, _ in flags:
        param.requires_grad_(False)
    model.eval()
    try:
        yield
    finally:
        for param, flag in flags:
            param.requires_grad_(flag)
        model.train(was_training)


def model_device(model: nn.Module) -> torch.device:
    """Where the input ids must go (the embedding's device, also for models sharded across GPUs)."""
    get_input = getattr(model, "get_input_embeddings", None)
    embeddings = get_input() if callable(get_input) else None
    if embeddings is not None and getattr(embeddings, "weight", None) is not None:
        return embeddings.weight.device
    return next(model.parameters()).device


def forward_parameters(model: nn.Module) -> Any:
    """The parameters of the model's forward (of the base model for PEFT wrappers)."""
    get_base = getattr(model, "get_base_model", None)
    base = get_base() if callable(get_base) else model
    try:
        return inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return {}


def cache_argument(model: nn.Module) -> str:
    """transformers 5.x renames `past_key_values` to `cache`; the name this model takes."""
    return "cache" if "cache" in forward_parameters(model) else "past_key_values"


def output_cache(outputs: Any) -> Any | None:
    """The KV cache of a forward's outputs, under either name."""
    return outputs.get("cache", None) or outputs.get("past_key_values", None)


def logits_to_keep_kwargs(model: nn.Module, keep: int) -> dict[str, int]:
    """Ask for logits at the last `keep` columns only, when the model supports it (saves B x T x V)."""
    parameters = forward_parameters(model)
    if "logits_to_keep" in parameters:
        return {"logits_to_keep": keep}
    if "num_logits_to_keep" in parameters:
        return {"num_logits_to_keep": keep}
    return {}
