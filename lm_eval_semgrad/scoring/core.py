"""score(): SemGrad, HybridGrad and single-pass baselines from one forward and one partial backward pass."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from .. import methods
from .analytic_head import HeadGradients, analytic_head_gradients, logits_are_projection_output
from .batching import TeacherForcedBatch, build_batch
from .cache_rows import select_cache_rows
from .losses import response_losses
from .model_access import (
    cache_argument,
    decoder_layers,
    frozen_for_scoring,
    graph_start_layer,
    layers_bypassed,
    logits_to_keep_kwargs,
    model_device,
    output_cache,
    output_projection,
    resolve_layers,
)
from .output_gradient import mean_abs_output_weight_grads
from .pass_budget import GradPassMemory
from .prefix_split import may_split_prefix, prefix_cache_problem, prefix_split_is_exact
from .validation import validate_inputs

#: Every score of the single pass, in the registry's order (`lm_eval_semgrad.methods`).
SCORE_KEYS = methods.single_pass_methods()


def score(
    model: nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    *,
    position: int = -1,
    layers: Sequence[int] | None = None,
    batch_size: int = 8,
    scores: Collection[str] = SCORE_KEYS,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, float]]:
    """Uncertainty scores of each (prompt, response) pair; higher = less confident.

    `position` is the semantic position tau counted from the prompt end (-1 = last prompt token);
    `layers` are indices into `output_hidden_states` (None = the upper half, final output excluded).
    Each response should include the token that ended generation. Returns, per sample, the
    `scores` asked for (default all of `SCORE_KEYS`; definitions in docs/method.md); leaving out
    the methods that need an output-projection reduction (`hybridgrad`, `paragrad`, `exgrad`)
    saves that reduction. Works under `torch.no_grad()`/`inference_mode()` callers.
    `progress`, if given, is called with the number of samples scored after each batch.
    """
    validate_inputs(model, prompt_ids, response_ids, position, batch_size)
    keys = _checked_score_keys(scores)
    band = resolve_layers(len(decoder_layers(model)), layers)
    # similar prompt and response lengths share a batch: less padding on both sides
    order = sorted(range(len(prompt_ids)), key=lambda i: (len(prompt_ids[i]), len(response_ids[i])), reverse=True)
    results: list[dict[str, float] | None] = [None] * len(order)
    with _grad_pass(model):
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = build_batch(
                [prompt_ids[i] for i in chunk], [response_ids[i] for i in chunk], 0, model_device(model)
            )
            for index, row in zip(chunk, score_batch(model, batch, position, band, scores=keys)):
                results[index] = _checked(index, row)
            if progress is not None:
                progress(len(chunk))
    return results  # type: ignore[return-value]


def score_with_prefix_cache(
    model: nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    prefix_cache: Any,
    *,
    position: int = -1,
    layers: Sequence[int] | None = None,
    memory_budget: tuple[GradPassMemory, float] | None = None,
    scores: Collection[str] = SCORE_KEYS,
    graph_inputs: torch.Tensor | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, float]]:
    """score() for one batch whose prompt columns already sit in a KV cache, e.g. generation's own.

    The cache must come from these prompts left-padded to the longest one (as HF generation lays
    out a batch); it is cropped to the columns before tau and extended in place. The scores equal
    score()'s: the prefix is the same computation, done once for generation and scoring together.
    The memory of a grad pass grows with its rows and their columns: `memory_budget` = (the
    model's measured `GradPassMemory`, bytes) splits the rows, grouped by answer length, into
    passes that each fit the bytes (a single row still gets its own pass), each on its own rows of
    the cache; None (default) scores all rows in one pass. `scores` as in score().
    `graph_inputs` (rows, columns, d), if given, are the inputs of the graph's lowest layer
    (`graph_start_layer`) at the columns from tau on, as generation computed them
    (`LayerInputRecorder`): the layers below it are then not run again. The last answer token's
    column may be missing (generation never feeds its final token); no score depends on it. This
    is exact only for models whose upper layers see the lower ones through that input alone (not,
    e.g., through key/value states shared across layers): `semgrad-hf` checks it once per model.
    `progress` as in score(), after each pass.
    """
    validate_inputs(model, prompt_ids, response_ids, position, 1)
    keys = _checked_score_keys(scores)
    band = resolve_layers(len(decoder_layers(model)), layers)
    prompt_width = max(len(p) for p in prompt_ids)
    split = prompt_width + position
    problem = prefix_cache_problem(model, prefix_cache, max(len(p) + len(r) for p, r in zip(prompt_ids, response_ids)))
    if problem is not None:
        raise ValueError(
            f"a {type(prefix_cache).__name__} of {type(model).__name__} cannot stand in for the columns before tau "
            f"({problem}: see scoring/prefix_split.py); use score()."
        )
    cached = prefix_cache.get_seq_length()
    if cached < split:
        raise ValueError(
            f"the prefix cache holds {cached} columns, fewer than the {split} before tau; "
            "it must cover the left-padded prompts."
        )
    if cached > split:
        prefix_cache.crop(split - cached)  # negative: drop that many columns (transformers 4.x and 5.x)
    rows = len(prompt_ids)
    suffix_widths = [len(r) - position for r in response_ids]
    if graph_inputs is not None:
        _check_graph_inputs(graph_inputs, rows, max(suffix_widths))
    if memory_budget is None:
        groups = [list(range(rows))]
    else:
        memory, budget_bytes = memory_budget
        groups = memory.row_groups(suffix_widths, prompt_width, budget_bytes)
    results: list[dict[str, float] | None] = [None] * rows
    with _grad_pass(model):
        for group in groups:
            batch = build_batch(
                [prompt_ids[i] for i in group], [response_ids[i] for i in group], 0, model_device(model), prompt_width
            )
            cache = None if split == 0 else prefix_cache if len(group) == rows else select_cache_rows(prefix_cache, group)
            inputs = None if graph_inputs is None else _group_graph_inputs(graph_inputs, group, rows, batch, position)
            for index, row in zip(group, score_batch(model, batch, position, band, cache, scores=keys, graph_inputs=inputs)):
                results[index] = _checked(index, row)
            if progress is not None:
                progress(len(group))
    return results  # type: ignore[return-value]


def _check_graph_inputs(graph_inputs: torch.Tensor, rows: int, suffix_width: int) -> None:
    if graph_inputs.dim() != 3 or graph_inputs.shape[0] != rows or graph_inputs.shape[1] < suffix_width - 1:
        raise ValueError(
            f"graph_inputs has shape {tuple(graph_inputs.shape)}; it needs ({rows} rows, at least "
            f"{suffix_width - 1} columns from tau on, hidden size): the lowest graph layer's inputs as "
            "generation fed them. Pass None to recompute them."
        )


def _group_graph_inputs(
    graph_inputs: torch.Tensor, group: list[int], rows: int, batch: TeacherForcedBatch, position: int
) -> torch.Tensor:
    """The group's rows at the batch's suffix columns; a missing final column repeats the one before."""
    width = batch.input_ids.shape[1] - batch.semantic_column(position)
    selected = graph_inputs if len(group) == rows else graph_inputs[torch.tensor(group, device=graph_inputs.device)]
    selected = selected[:, :width]
    if selected.shape[1] < width:
        selected = torch.cat([selected, selected[:, -1:]], dim=1)
    return selected


@contextlib.contextmanager
def _grad_pass(model: nn.Module) -> Iterator[None]:
    """Gradients on (also inside a caller's no_grad/inference_mode), parameters frozen, eval mode."""
    with torch.inference_mode(False), torch.enable_grad(), frozen_for_scoring(model):
        yield


def _checked_score_keys(scores: Collection[str]) -> tuple[str, ...]:
    if isinstance(scores, str):
        scores = [scores]
    unknown = sorted(set(scores) - set(SCORE_KEYS))
    if unknown or not scores:
        raise ValueError(f"scores must name some of {', '.join(SCORE_KEYS)}; got {sorted(scores)}.")
    return tuple(key for key in SCORE_KEYS if key in scores)


def _reductions(scores: Sequence[str]) -> dict[str, bool]:
    """Which output-projection reductions the asked-for scores need (each costs as much as the logits)."""
    needs = methods.needs_of(scores)
    return {"exgrad": "output_projection" in needs, "weighted_exgrad": "weighted_output_projection" in needs}


def _checked(index: int, scores: dict[str, float]) -> dict[str, float]:
    if not all(math.isfinite(v) for v in scores.values()):
        raise ValueError(
            f"sample {index}: non-finite scores {scores}; the model produced inf/NaN activations "
            "(float16 overflow?). Load it in bfloat16 or float32."
        )
    return scores


@dataclass
class _Capture:
    """Tensors recorded by forward hooks during the grad-enabled suffix forward pass."""

    band_inputs: dict[int, torch.Tensor] = field(default_factory=dict)
    head_input: torch.Tensor | None = None
    head_output: torch.Tensor | None = None


def score_batch(
    model: nn.Module,
    batch: TeacherForcedBatch,
    position: int,
    band: list[int],
    prefix_cache: Any | None = None,
    *,
    scores: Sequence[str] = SCORE_KEYS,
    graph_inputs: torch.Tensor | None = None,
) -> list[dict[str, float]]:
    """Scores of one prompt-aligned batch: a no-grad prefix, then a grad pass over the suffix only.

    The loss depends on h_tau only through columns >= tau (causal attention), so the columns before
    tau run without grad into a KV cache and the graph covers columns tau..end and the semantic
    layers alone: exact, at the cost of one forward plus a short backward. `prefix_cache` may hold
    the KV cache of exactly the columns before tau (e.g. kept from generation); it is extended.
    The gradients at the output projection are formed in closed form and in chunks
    (`analytic_head`) unless the model transforms its logits after the projection (soft-capping),
    in which case autograd differentiates through that transformation. `graph_inputs` (B, suffix
    columns, d), when given, replace the layers below the graph (see score_with_prefix_cache).
    """
    split = batch.semantic_column(position)
    first_column, cache = split, prefix_cache
    if cache is None and split > 0:  # one grad pass over every column where a prefix would change the values
        total_columns = int(batch.position_ids.max()) + 1
        if not may_split_prefix(model, total_columns):
            first_column = 0
        else:
            cache = _prefix_cache(model, batch, split)
            if not prefix_split_is_exact(model, cache, total_columns):
                first_column, cache = 0, None
    capture, logits = _suffix_forward_with_capture(model, batch, first_column, cache, band, graph_inputs)
    if capture.head_input is None or capture.head_output is None:
        raise ValueError(f"{type(model).__name__}'s forward did not call its output projection; SemGrad needs its logits.")
    band_tensors = [capture.band_inputs[i] for i in band]
    keep = batch.max_response_length + 1
    targets = batch.input_ids[:, batch.prompt_width : batch.prompt_width + keep - 1].to(logits.device)
    valid = batch.response_mask().to(logits.device)
    head_input = capture.head_input[:, -keep:-1]
    band_grads: Sequence[torch.Tensor]
    if logits_are_projection_output(logits, capture.head_output):
        weight = cast(torch.Tensor, output_projection(model).weight)
        head = analytic_head_gradients(
            logits[:, -keep:-1], targets, valid, weight, head_input.detach(), **_reductions(scores),
        )
        band_grads = torch.autograd.grad(head_input, band_tensors, grad_outputs=head.hidden_grad.to(head_input.dtype))
    else:
        head, band_grads = _autograd_head_gradients(
            logits[:, -keep:-1], targets, valid, capture, band_tensors, keep, scores
        )
    return _per_sample_scores(batch, head, band_grads, scores, tau_column=split - first_column)


def _autograd_head_gradients(
    logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, capture: _Capture,
    band_tensors: list[torch.Tensor], keep: int, scores: Sequence[str],
) -> tuple[HeadGradients, Sequence[torch.Tensor]]:
    """For models that transform logits after the projection: differentiate through that transformation."""
    losses = response_losses(logits, targets, valid)
    projection_output, head_input = capture.head_output, capture.head_input
    assert projection_output is not None and head_input is not None  # checked by score_batch
    (ce_grads,) = torch.autograd.grad(losses.cross_entropy.sum(), [projection_output], retain_graph=True)
    w_grads, *band_grads = torch.autograd.grad(losses.entropy_weighted.sum(), [projection_output, *band_tensors])
    hidden = head_input[:, -keep:-1].detach()
    reductions = _reductions(scores)
    head = HeadGradients(
        token_nll=losses.token_nll.detach(), token_entropy=losses.token_entropy, valid=valid,
        hidden_grad=torch.empty(0),
        exgrad=mean_abs_output_weight_grads(ce_grads[:, -keep:-1], hidden) if reductions["exgrad"] else None,
        weighted_exgrad=(
            mean_abs_output_weight_grads(w_grads[:, -keep:-1], hidden) if reductions["weighted_exgrad"] else None
        ),
    )
    return head, band_grads


def _prefix_cache(model: nn.Module, batch: TeacherForcedBatch, split: int) -> Any:
    """KV cache of the columns before tau, computed without grad (and without their logits)."""
    with torch.no_grad():
        outputs = model(
            input_ids=batch.input_ids[:, :split],
            attention_mask=batch.attention_mask[:, :split],
            position_ids=batch.position_ids[:, :split],
            use_cache=True,
            **logits_to_keep_kwargs(model, 1),
        )
    cache = output_cache(outputs)
    if cache is None:
        raise ValueError(f"{type(model).__name__} returned no KV cache with use_cache=True; SemGrad needs one.")
    return cache


def _suffix_forward_with_capture(
    model: nn.Module, batch: TeacherForcedBatch, split: int, cache: Any, band: list[int],
    graph_inputs: torch.Tensor | None = None,
) -> tuple[_Capture, torch.Tensor]:
    """The grad-enabled forward over columns split..end; returns the hooks' captures and the logits.

    With `graph_inputs` the layers below the graph return their input unchanged and the graph's
    first layer takes `graph_inputs` instead.
    """
    layers = decoder_layers(model)
    num_layers = len(layers)
    graph_start = graph_start_layer(num_layers, band)
    capture = _Capture()

    def layer_input_hook(index: int):
        def hook(module: nn.Module, args: tuple, kwargs: dict):
            hidden = args[0] if args else kwargs["hidden_states"]
            if index == graph_start:
                if graph_inputs is not None:
                    if graph_inputs.shape != hidden.shape:
                        raise ValueError(
                            f"graph_inputs of shape {tuple(graph_inputs.shape)} cannot stand in for layer {index}'s "
                            f"input of shape {tuple(hidden.shape)}."
                        )
                    hidden = graph_inputs.to(hidden.dtype)
                hidden = hidden.detach().requires_grad_(True)
            capture.band_inputs[index] = hidden
            return ((hidden, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": hidden})

        return hook

    def head_hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        capture.head_input, capture.head_output = args[0], output

    hooked = sorted({graph_start, *(i for i in band if i < num_layers)})
    handles = [layers[i].register_forward_pre_hook(layer_input_hook(i), with_kwargs=True) for i in hooked]
    handles.append(output_projection(model).register_forward_hook(head_hook))
    keep = batch.max_response_length + 1
    cache_kwargs = {} if cache is None else {cache_argument(model): cache}
    bypass = layers_bypassed(list(layers[:graph_start])) if graph_inputs is not None else contextlib.nullcontext()
    try:
        with bypass:
            outputs = model(
                input_ids=batch.input_ids[:, split:],
                attention_mask=batch.attention_mask,
                position_ids=batch.position_ids[:, split:],
                use_cache=cache is not None,
                output_hidden_states=num_layers in band,
                **cache_kwargs,
                **logits_to_keep_kwargs(model, keep),
            )
    finally:
        for handle in handles:
            handle.remove()
    if num_layers in band:
        capture.band_inputs[num_layers] = outputs.hidden_states[-1]
    return capture, outputs.logits


def _per_sample_scores(
    batch: TeacherForcedBatch, head: HeadGradients, band_grads: Sequence[torch.Tensor], scores: Sequence[str],
    tau_column: int,
) -> list[dict[str, float]]:
    """The asked-for scores of the batch as tensors first, then one transfer to Python floats.

    `tau_column`: tau's column in the grad pass (0 when the pass starts at tau), the same for every row.
    """
    at_tau = torch.stack([g[:, tau_column].float().to(band_grads[0].device) for g in band_grads])  # (layers, B, d)
    semgrad = at_tau.abs().mean(dim=(0, 2)).double().cpu()
    lengths = head.valid.sum(-1)
    mean_entropy = (head.token_entropy.sum(-1) / lengths).double().cpu()
    columns = {
        "semgrad": semgrad,
        "g_nll": head.token_nll.sum(-1),
        "mean_entropy": mean_entropy,
        "max_prob_nll": head.token_nll.masked_fill(~head.valid, float("-inf")).max(-1).values,
        "response_len": lengths,
    }
    if head.weighted_exgrad is not None:
        alpha = torch.exp(-mean_entropy)
        columns["paragrad"] = head.weighted_exgrad.cpu()
        columns["hybridgrad"] = alpha * columns["paragrad"] + (1 - alpha) * semgrad
    if head.exgrad is not None:
        columns["exgrad"] = head.exgrad
    values = {key: columns[key].double().cpu().tolist() for key in scores}
    return [{key: float(values[key][row]) for key in scores} for row in range(len(batch.response_lengths))]
