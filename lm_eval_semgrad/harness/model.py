"""`semgrad-hf`: lm-eval's HF model that also scores every generated answer with SemGrad."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import replace
from collections.abc import Sequence
from typing import Any

import torch
from lm_eval.api.model import CacheHook
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from ..scoring import score, score_with_prefix_cache
from ..scoring.cache_rows import select_cache_rows
from ..scoring.layer_inputs import LayerInputRecorder
from ..scoring.memory import GradPassMemory, cache_bytes, grad_pass_memory
from ..scoring.model_access import decoder_layers, graph_start_layer, resolve_layers
from . import evaluator_hooks
from .chat_positions import resolve_position
from .embedded_models import resolve_embedded_model
from .response_tokens import answer_token_ids
from .score_store import Record, ScoreStore
from .settings import SemGradSettings, computed_scores, pop_settings
from .logs import harness_logger

logger = harness_logger(__name__)

DEFAULT_SEMGRAD_BATCH_SIZE = 8


@register_model("semgrad-hf")
class SemGradHFLM(HFLM):
    """HFLM plus a grad pass after each generation batch; everything else is HFLM's.

    Model args: all of `hf`'s, plus the `semgrad_*` options in `settings.OPTION_HELP`;
    `pretrained` may also be a short name from `embedded_models.EMBEDDED_MODELS`. Scores are
    kept per request in `score_store` and turned into per-task metrics by `evaluator_hooks`.
    """

    def __init__(self, pretrained: Any = None, **kwargs: Any) -> None:
        self.semgrad: SemGradSettings = pop_settings(kwargs)
        self.score_store = ScoreStore()
        self._pending: deque[Record | None] = deque()
        self._checked_prompt_format = False
        self._grad_pass_memory: GradPassMemory | None = None
        self._lower_layer_reuse: bool | None = None  # None: not yet checked on this model
        self.seconds = {"generation": 0.0, "grad_pass": 0.0}  # wall time of this model's generate_until calls
        pretrained = resolve_embedded_model(pretrained, kwargs)
        super().__init__(pretrained, **kwargs)
        self._split_data_across_cpu_processes()
        if self.semgrad.calibration is not None:
            self.semgrad_position, self.semgrad_layers = self._calibrated_position_and_layers()
            self.position_source = f"calibration {self.semgrad.calibration}"
        else:
            self.semgrad_position, self.position_source = resolve_position(self.semgrad.position, self.tokenizer)
            self.semgrad_layers = None if self.semgrad.layers is None else list(self.semgrad.layers)
        self._stop_token_ids = self._end_of_sequence_ids()
        evaluator_hooks.install()
        logger.info(
            "semgrad-hf: position %d (%s), layers %s, methods %s",
            self.semgrad_position,
            self.position_source,
            "upper half" if self.semgrad_layers is None else self.semgrad_layers,
            ", ".join(self.semgrad.methods),
        )

    def _split_data_across_cpu_processes(self) -> None:
        """Data parallelism under `accelerate launch` also without GPUs (HFLM splits only across >1 GPU).

        Otherwise every CPU process would evaluate and write every sample.
        """
        accelerator = getattr(self, "accelerator", None)
        if accelerator is not None and accelerator.num_processes > 1 and self._world_size == 1:
            self._rank = accelerator.process_index
            self._world_size = accelerator.num_processes

    # -- configuration -----------------------------------------------------------------------

    def _calibrated_position_and_layers(self) -> tuple[int, list[int]]:
        """Position and layers from a calibration file made for this model (checked by name and depth)."""
        from ..calibration import load_calibration

        name = getattr(self.model, "name_or_path", None) or self.model.config._name_or_path
        calibration = load_calibration(
            self.semgrad.calibration, model_name=str(name), num_layers=len(decoder_layers(self.model))
        )
        for warning in calibration.format_warnings(self.tokenizer):
            logger.warning("semgrad-hf: %s: %s", self.semgrad.calibration, warning)
        return calibration.position, list(calibration.layers)

    def _end_of_sequence_ids(self) -> set[int]:
        """Token ids that end generation: the tokenizer's EOS and the generation config's."""
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
        return {i for i in ids if i is not None}

    @property
    def computed_scores(self) -> tuple[str, ...]:
        return computed_scores(self.semgrad.methods)

    @property
    def semgrad_batch_size(self) -> int:
        if self.semgrad.batch_size is not None:
            return self.semgrad.batch_size
        return self.batch_size if isinstance(self.batch_size, int) else DEFAULT_SEMGRAD_BATCH_SIZE

    # -- the cache hook is where a generated answer meets its request --------------------------

    @property
    def cache_hook(self) -> CacheHook:
        return self._recording_hook

    @cache_hook.setter
    def cache_hook(self, inner: CacheHook) -> None:
        self._recording_hook = _RecordingCacheHook(self, inner)
        self.score_store.persistent = getattr(inner, "dbdict", None)

    def record_answer(self, request_args: Sequence[Any]) -> None:
        """Called once per answer, in generation order: file the pending record under its request."""
        if not self._pending:
            return
        record = self._pending.popleft()
        if record is not None:
            self.score_store.add(request_args, record)
        if not self._checked_prompt_format:
            self._checked_prompt_format = True
            self._warn_if_prompt_lacks_chat_format(str(request_args[0]))

    def _warn_if_prompt_lacks_chat_format(self, context: str) -> None:
        if self.position_source != "chat template":
            return
        rendered = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}], add_generation_prompt=True, tokenize=False
        )
        header = rendered[rendered.rfind("x") + 1 :].strip()
        if header and not context.rstrip().endswith(header.split()[-1]):
            logger.warning(
                "semgrad-hf: the semantic position %d comes from the chat template, but the prompts do not "
                "end with its assistant header. Run with --apply_chat_template, or pass semgrad_position.",
                self.semgrad_position,
            )

    # -- generation + grad pass ----------------------------------------------------------------

    def _model_generate(self, context, max_length: int, stop: list[str], **generation_kwargs):
        recorder = None
        if self.semgrad.reuse_cache:
            generation_kwargs["return_dict_in_generate"] = True
            recorder = self._graph_input_recorder(context.shape[1])
        started = time.perf_counter()
        with recorder or contextlib.nullcontext():
            output = super()._model_generate(context, max_length, stop, **generation_kwargs)
        self.seconds["generation"] += time.perf_counter() - started
        sequences = output.sequences if self.semgrad.reuse_cache else output
        attention_mask = generation_kwargs.get("attention_mask")
        prompts, answers = [], []
        for row in range(context.shape[0]):
            ids = context[row] if attention_mask is None else context[row][attention_mask[row].bool()]
            prompts.append(ids.tolist())
            answers.append(
                answer_token_ids(
                    sequences[row, context.shape[1] :].tolist(),
                    stop,
                    self._stop_token_ids,
                    lambda tokens: self.tokenizer.decode(tokens, skip_special_tokens=False),
                )
            )
        cache = _generation_cache(output) if self.semgrad.reuse_cache else None
        graph_inputs = None if recorder is None else recorder.inputs(fed_columns=sequences.shape[1] - 1)
        del output
        started = time.perf_counter()
        self._pending.extend(self._score_answers(prompts, answers, cache, graph_inputs))
        self.seconds["grad_pass"] += time.perf_counter() - started
        return sequences

    def _graph_input_recorder(self, prompt_width: int) -> LayerInputRecorder | None:
        """Records, during generation, the input of the grad pass's lowest layer (None: no layers below it)."""
        num_layers = len(decoder_layers(self.model))
        start = graph_start_layer(num_layers, resolve_layers(num_layers, self.semgrad_layers))
        if start == 0:
            return None
        return LayerInputRecorder(self.model, start, first_column=prompt_width + self.semgrad_position)

    def _score_answers(
        self, prompts: list[list[int]], answers: list[list[int]], generation_cache: Any | None,
        graph_inputs: torch.Tensor | None = None,
    ) -> list[Record | None]:
        """Score the non-empty answers of one generation batch; empty answers get no record."""
        rows = [i for i, answer in enumerate(answers) if answer]
        if len(rows) < len(answers):
            logger.warning("semgrad-hf: %d empty answer(s) have no uncertainty score", len(answers) - len(rows))
        if generation_cache is not None and len(rows) == len(answers):
            scores = self._score_from_generation_cache(prompts, answers, generation_cache, graph_inputs)
        else:
            scores = None
        if scores is None:
            scores = self._score_with_backoff([prompts[i] for i in rows], [answers[i] for i in rows])
        records: list[Record | None] = [None] * len(answers)
        for row, row_scores in zip(rows, scores):
            records[row] = {"scores": row_scores, "response_ids": answers[row], "prompt_len": len(prompts[row])}
        return records

    def _score_from_generation_cache(self, prompts, answers, cache, graph_inputs) -> list[dict[str, float]] | None:
        """The grad pass on generation's own batch, prompt KV cache and (if recorded) lower layers' outputs.

        None when that is not possible.
        """
        if not hasattr(cache, "crop") or not hasattr(cache, "get_seq_length"):
            return None
        if graph_inputs is not None and self._lower_layer_reuse is None:
            self._lower_layer_reuse = self._lower_layer_reuse_agrees(prompts, answers, cache, graph_inputs)
        if not self._lower_layer_reuse:
            graph_inputs = None
        memory_budget = self._memory_budget(cache)
        try:
            return score_with_prefix_cache(
                self.model, prompts, answers, cache, position=self.semgrad_position, layers=self.semgrad_layers,
                memory_budget=memory_budget, scores=self.computed_scores, graph_inputs=graph_inputs,
            )
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            logger.warning("semgrad-hf: out of memory scoring the whole generation batch; scoring in smaller batches")
            return None

    def _lower_layer_reuse_agrees(self, prompts, answers, cache, graph_inputs: torch.Tensor) -> bool:
        """Once per model: one answer's SemGrad with the recorded lower-layer outputs and with those layers rerun.

        They must agree, or the recorded outputs are never used: some architectures feed upper
        layers more than the hidden states (e.g. key/value states shared from lower layers).
        """
        if not hasattr(cache, "batch_select_indices"):
            return False
        row = max(range(len(prompts)), key=lambda i: len(prompts[i]))  # its prompt spans the cache's width
        common = dict(position=self.semgrad_position, layers=self.semgrad_layers, scores=("semgrad",))
        try:  # first, so that nothing a rerun of the lower layers leaves behind can help it
            reused = score_with_prefix_cache(
                self.model, [prompts[row]], [answers[row]], select_cache_rows(cache, [row]),
                graph_inputs=graph_inputs[row : row + 1], **common,
            )[0]["semgrad"]
        except torch.cuda.OutOfMemoryError:
            raise
        except (RuntimeError, ValueError, IndexError, KeyError, TypeError) as error:  # the model needs its lower layers
            reused = float("nan")
            logger.info("semgrad-hf: the grad pass without the lower layers failed: %s", error)
        rerun = score_with_prefix_cache(
            self.model, [prompts[row]], [answers[row]], select_cache_rows(cache, [row]), **common
        )[0]["semgrad"]
        difference = abs(reused - rerun) / max(abs(rerun), 1e-30)  # NaN when the pass without them failed
        tolerance = 1e-3 if graph_inputs.dtype == torch.float32 else 5e-2
        if not difference <= tolerance:
            logger.warning(
                "semgrad-hf: SemGrad from generation's lower-layer outputs does not match a rerun of those layers "
                "(relative difference %.1e on one answer), so this model's grad passes rerun them.", difference,
            )
            return False
        logger.info("semgrad-hf: the grad pass takes the layers below the band from generation (checked: %.1e)", difference)
        return True

    def _memory_budget(self, cache: Any) -> tuple[GradPassMemory, float] | None:
        """The model's measured grad-pass memory and the `semgrad_memory` budget; None: no limit.

        Also None for a cache that cannot select rows: one pass, as with `semgrad_memory=unbounded`.
        """
        budget = self.semgrad.memory
        if budget == "unbounded" or not hasattr(cache, "batch_select_indices"):
            return None
        if self._grad_pass_memory is None:
            self._grad_pass_memory = grad_pass_memory(
                self.model, position=self.semgrad_position, layers=self.semgrad_layers
            )
            memory = self._grad_pass_memory
            logger.info(
                "semgrad-hf: a grad pass needs %.0f KiB per answer token and %.0f KiB per prompt token of a row, "
                "plus %.1f MiB (%s)", memory.per_token / 1024, memory.per_prompt_token / 1024, memory.fixed / 2**20,
                memory.source,
            )
        return self._grad_pass_memory, cache_bytes(cache) if budget == "generation" else float(budget) * 2**20

    def _score_with_backoff(self, prompts: list[list[int]], answers: list[list[int]]) -> list[dict[str, float]]:
        batch_size = self.semgrad_batch_size
        while True:
            try:
                return score(
                    self.model, prompts, answers, position=self.semgrad_position,
                    layers=self.semgrad_layers, batch_size=batch_size, scores=self.computed_scores,
                )
            except torch.cuda.OutOfMemoryError:
                if batch_size == 1:
                    raise
                batch_size = max(1, batch_size // 2)
                torch.cuda.empty_cache()
                logger.warning("semgrad-hf: out of memory in the grad pass; semgrad_batch_size -> %d", batch_size)
                self.semgrad = replace(self.semgrad, batch_size=batch_size)


def _generation_cache(output: Any) -> Any | None:
    return getattr(output, "past_key_values", None) or getattr(output, "cache", None)


class _RecordingCacheHook(CacheHook):
    """Wraps the hook HFLM calls once per generated answer, right after generating its batch."""

    def __init__(self, model: SemGradHFLM, inner: CacheHook) -> None:
        self.model, self.inner = model, inner
        self.dbdict = getattr(inner, "dbdict", None)

    def add_partial(self, attr: str, req, res) -> None:
        self.inner.add_partial(attr, req, res)
        if attr == "generate_until":
            self.model.record_answer(req)
