"""`semgrad-hf`: lm-eval's HF model that also scores every generated answer with SemGrad."""

from __future__ import annotations

import contextlib
import time
from collections import Counter, deque
from dataclasses import dataclass, replace
from typing import Any

import torch
from lm_eval.api.instance import Instance
from lm_eval.api.model import CacheHook, hash_args
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import postprocess_generated_text
from tqdm import tqdm

from .. import methods as methods_registry
from ..confidence.applied import ConfidenceSetup, resolve_confidence
from ..hf.embedded_models import resolve_embedded_model
from ..hf.options import SemGradSettings, computed_scores, pop_settings
from ..hf.response_tokens import answer_token_ids, end_of_sequence_ids
from ..hf.semantic_setup import SemanticSetup, model_name, resolve_semantic_setup
from ..logs import get_logger
from ..sample_log import Record
from ..scoring import score, score_with_prefix_cache
from ..scoring.cache_rows import select_cache_rows
from ..scoring.layer_inputs import LayerInputRecorder
from ..scoring.memory import cache_bytes, grad_pass_memory
from ..scoring.model_access import (
    check_hidden_states_are_layer_inputs,
    decoder_layers,
    graph_start_layer,
    output_cache,
    resolve_layers,
)
from ..scoring.pass_budget import GradPassMemory
from ..scoring.prefix_split import prefix_cache_problem
from ..version import __version__
from . import evaluator_hooks
from .sampled_baselines import SampledBaselines
from .score_store import ScoreStore

logger = get_logger(__name__)

DEFAULT_SEMGRAD_BATCH_SIZE = 8
NO_SCORES_IN_CACHE = (
    "the answer came from a --use_cache database that holds no scores for it (written by another model type such "
    "as `hf`, or by an older lm-eval-semgrad): use a new --use_cache path, or score the saved samples with "
    "`lm-eval-semgrad rescore`"
)


@dataclass(frozen=True)
class ScoredAnswer:
    """One generated answer as the uncertainty metrics see it: its record, or why it has none."""

    record: Record | None
    missing_reason: str | None = None


@dataclass(frozen=True)
class _PendingAnswer:
    """An answer of the last generation batch, waiting for the cache hook to name its request."""

    text: str  # the answer text exactly as HFLM.generate_until will return it
    answer: ScoredAnswer


@register_model("semgrad-hf")
class SemGradHFLM(HFLM):
    """HFLM plus a grad pass after each generation batch; everything else is HFLM's.

    Model args: all of `hf`'s, plus the `semgrad_*` options in `hf.options.OPTION_HELP`;
    `pretrained` may also be a short name from `hf.embedded_models.EMBEDDED_MODELS`. Each request
    instance gets its answers' `ScoredAnswer`s (attribute `semgrad_answers`), which the task hooks
    turn into per-task metrics. It is the `run_state.SemGradRun` the evaluator hooks work with.
    """

    is_semgrad_run = True

    def __init__(self, pretrained: Any = None, **kwargs: Any) -> None:
        self.semgrad: SemGradSettings = pop_settings(kwargs)
        if kwargs.get("think_end_token") is not None:
            raise ValueError(
                "semgrad-hf does not support think_end_token (reasoning models): lm-eval keeps only the text after "
                "the reasoning, but the model generated that text after its reasoning, not after the prompt, so no "
                "semantic position of the prompt describes it. Run without think_end_token / enable_thinking."
            )
        self._pending: deque[_PendingAnswer] = deque()
        self._generated: list[tuple[tuple, str, ScoredAnswer]] = []  # (request args, text, answer) in generation order
        self._checked_prompt_format = False
        self._grad_pass_memory: GradPassMemory | None = None
        self._lower_layer_reuse: bool | None = None  # None: not yet checked on this model
        self._progress: tqdm | None = None
        self.seconds = {"generation": 0.0, "grad_pass": 0.0}  # wall time of this model's generate_until calls
        self.confidence: ConfidenceSetup | None = resolve_confidence(self.semgrad.confidence, self.semgrad.methods)
        if self.confidence is not None:
            self.confidence.warn_if_other_model(pretrained)
        pretrained = resolve_embedded_model(pretrained, kwargs)
        super().__init__(pretrained, **kwargs)
        self._split_data_across_cpu_processes()
        check_hidden_states_are_layer_inputs(self.model)  # before any generation, not after the first batch
        self.semantic: SemanticSetup = resolve_semantic_setup(
            self.semgrad, len(decoder_layers(self.model)), self.tokenizer, model_name(self.model)
        )
        self.score_store = ScoreStore(self._fingerprint())
        self._stop_token_ids = end_of_sequence_ids(self.tokenizer, self.model)
        self.sampled = SampledBaselines(self, self.semgrad, rows_per_call=self.semgrad_batch_size)
        evaluator_hooks.install()
        logger.info("semgrad-hf: %s, methods %s", self.semantic.describe(), ", ".join(self.semgrad.methods))
        for name, reason in self.semgrad.left_out:
            logger.warning("semgrad-hf: semgrad_methods=paper leaves out %s: %s", name, reason)

    def _split_data_across_cpu_processes(self) -> None:
        """Data parallelism under `accelerate launch` also without GPUs (HFLM splits only across >1 GPU).

        Otherwise every CPU process would evaluate and write every sample.
        """
        accelerator = getattr(self, "accelerator", None)
        if accelerator is not None and accelerator.num_processes > 1 and self._world_size == 1:
            self._rank = accelerator.process_index
            self._world_size = accelerator.num_processes

    # -- configuration -----------------------------------------------------------------------

    @property
    def semgrad_position(self) -> int:
        return self.semantic.position

    @property
    def semgrad_layers(self) -> list[int] | None:
        return self.semantic.layers_list

    def _fingerprint(self) -> dict[str, Any]:
        """Everything a stored score depends on: a record made otherwise is never reused."""
        num_layers = len(decoder_layers(self.model))
        return {
            "model": str(self.pretrained), "revision": self.revision, "peft": self.peft, "delta": self.delta,
            "dtype": str(self.model.dtype), "add_bos_token": self.add_bos_token,
            "position": self.semgrad_position, "layers": resolve_layers(num_layers, self.semgrad_layers),
            "samples": self.semgrad.samples, "sample_seed": self.semgrad.sample_seed,
            "nli": self.semgrad.nli, "cross_encoder": self.semgrad.cross_encoder, "version": __version__,
        }

    @property
    def computed_scores(self) -> tuple[str, ...]:
        return computed_scores(self.semgrad.methods)

    @property
    def semgrad_batch_size(self) -> int:
        if self.semgrad.batch_size is not None:
            return self.semgrad.batch_size
        return self.batch_size if isinstance(self.batch_size, int) else DEFAULT_SEMGRAD_BATCH_SIZE

    def get_model_info(self) -> dict:
        """HFLM's model info plus how the uncertainty scores were made (lands in the results file's config)."""
        return {
            **super().get_model_info(),
            "semgrad": {
                **self.semantic.as_record(),
                "methods": list(self.semgrad.methods),
                "computed_scores": list(self.computed_scores),
                "correctness": "task's first metric >= 0.5" if self.semgrad.correctness_metric is None
                else f"{self.semgrad.correctness_metric} >= {self.semgrad.correctness_threshold:g}",
                "reuse_cache": self.semgrad.reuse_cache,
                "memory": self.semgrad.memory,
                "samples": self.semgrad.samples,
                "sample_seed": self.semgrad.sample_seed,
                **self._auxiliary_record(),
                "left_out": dict(self.semgrad.left_out),
                "confidence": None if self.confidence is None else self.confidence.as_record(),
                "version": __version__,
            },
        }

    def _auxiliary_record(self) -> dict[str, Any]:
        """The NLI model and cross-encoder the run's methods used (None: no method needs it), and where they ran."""
        needs = methods_registry.needs_of(self.semgrad.methods)
        used = {"nli": self.semgrad.nli if "nli" in needs else None,
                "cross_encoder": self.semgrad.cross_encoder if "cross_encoder" in needs else None}
        if any(used.values()):
            used |= {"aux_device": str(self.semgrad.aux_device or self.model.device),
                     "aux_batch_size": self.semgrad.aux_batch_size}
        return used

    # -- the cache hook is where a generated answer meets its request --------------------------

    @property
    def cache_hook(self) -> CacheHook:
        return self._recording_hook

    @cache_hook.setter
    def cache_hook(self, inner: CacheHook) -> None:
        self._recording_hook = _RecordingCacheHook(self, inner)
        if hasattr(self, "score_store"):  # HFLM sets a first hook before the store exists
            self.score_store.persistent = getattr(inner, "dbdict", None)

    def answer_generated(self, request_args: tuple, text: str) -> None:
        """Called by the cache hook once per answer, in generation order: pair it with the oldest pending answer."""
        if not self._pending:
            raise RuntimeError(
                "semgrad-hf: lm-eval reported a generated answer that no grad pass scored; the scores cannot be "
                "paired with their requests (an lm-eval version with another generate_until?). Nothing was logged."
            )
        pending = self._pending.popleft()
        if pending.text != text:
            raise RuntimeError(
                f"semgrad-hf: the answer lm-eval reported ({text[:60]!r}) is not the one scored next "
                f"({pending.text[:60]!r}); the scores cannot be paired with their requests. Nothing was logged."
            )
        self._generated.append((tuple(request_args), text, pending.answer))
        if pending.answer.record is not None:  # kept now: a run interrupted later resumes with this answer's scores
            self.score_store.save(request_args, pending.answer.record)
        if not self._checked_prompt_format:
            self._checked_prompt_format = True
            self._warn_if_prompt_lacks_chat_format(str(request_args[0]))

    def _warn_if_prompt_lacks_chat_format(self, context: str) -> None:
        if self.semantic.position_source != "chat template":
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

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """HFLM's generation; afterwards each request instance holds its answers' scores (`semgrad_answers`)."""
        self._pending.clear()
        self._generated = []
        self._progress = tqdm(
            total=len(requests), desc="semgrad grad passes", unit="answer", position=1, leave=False,
            disable=disable_tqdm or self.rank != 0,
        )
        try:
            answers = super().generate_until(requests, disable_tqdm)
        finally:
            self._progress.close()
            self._progress = None
        if self._pending or len(self._generated) != len(requests):
            raise RuntimeError(
                f"semgrad-hf: {len(requests)} requests, {len(self._generated)} answers paired with scores and "
                f"{len(self._pending)} scored answers left over; the scores cannot be paired with their requests."
            )
        by_request: dict[str, deque[tuple[str, ScoredAnswer]]] = {}
        for args, text, answer in self._generated:
            by_request.setdefault(hash_args("generate_until", args), deque()).append((text, answer))
        answered: list[tuple[Instance, Record]] = []
        for request, text in zip(requests, answers):
            generated_text, answer = by_request[hash_args("generate_until", request.args)].popleft()
            if generated_text != text:
                raise RuntimeError(
                    "semgrad-hf: lm-eval returned the answers of identical requests in another order than they were "
                    "generated; the scores cannot be paired with their requests."
                )
            attach_answer(request, answer)
            if answer.record is not None:
                answered.append((request, answer.record))
        self._generated = []
        self._complete_sampled_baselines(answered)
        return answers

    def _complete_sampled_baselines(self, answered: list[tuple[Instance, Record]]) -> None:
        """Add the sampling methods' scores to these records; each record is kept again for a resumed run
        (`--use_cache`) as soon as they are in, so that an interrupted sampling stage loses only the questions in
        progress."""
        if not self.sampled.active:
            return
        self.sampled.complete(answered, completed=lambda request, record: self.score_store.save(request.args, record))
        for stage, seconds in self.sampled.scorer.seconds.items():
            self.seconds[f"sampling:{stage}"] = seconds

    def know_tasks(self, tasks: dict[str, Any]) -> None:
        self.sampled.tasks = dict(tasks)

    def attach_cached_answers(self, requests: list[Instance], answers: list[str]) -> None:
        """Scores for answers that came from lm-eval's request cache (`--use_cache`), which the model never saw.

        A record with this run's settings is taken as it is; one made with other settings (another
        position, layers, dtype, version) has its exact token ids scored again; an answer without
        any record is reported as missing, with the reason.
        """
        stale: list[tuple[Instance, Record]] = []
        unsampled: list[tuple[Instance, Record]] = []
        without = 0
        occurrences: Counter[int] = Counter()  # a request with repeats occurs once per answer
        for request, text in zip(requests, answers):
            occurrences[id(request)] += 1
            if len(getattr(request, "semgrad_answers", None) or []) >= occurrences[id(request)]:
                continue  # generated (and scored) in this run
            record, state = self.score_store.find(request.args, text, self.computed_scores, self.sampled.methods)
            if record is None:
                without += 1
                attach_answer(request, ScoredAnswer(None, NO_SCORES_IN_CACHE))
            elif state == "stale":
                stale.append((request, record))
            else:
                attach_answer(request, ScoredAnswer(record))
                if state == "unsampled":
                    unsampled.append((request, record))
        if without:
            logger.warning("semgrad-hf: %d cached answer(s) have no uncertainty scores: %s", without, NO_SCORES_IN_CACHE)
        if unsampled:
            logger.info(
                "semgrad-hf: %d cached answer(s) have their grad-pass scores but not the sampling baselines' (an "
                "interrupted run): computing those", len(unsampled),
            )
            self._complete_sampled_baselines(unsampled)
        if stale:
            logger.info(
                "semgrad-hf: %d cached answer(s) were scored with other settings; scoring their token ids again",
                len(stale),
            )
            started = time.perf_counter()
            scores = self._score_with_backoff(
                [list(record["prompt_ids"]) for _, record in stale], [list(record["response_ids"]) for _, record in stale]
            )
            self.seconds["grad_pass"] += time.perf_counter() - started
            refreshed: list[tuple[Instance, Record]] = []
            for (request, record), row_scores in zip(stale, scores):
                fresh: Record = {
                    **{key: value for key, value in record.items() if key not in ("missing", "samples", "sampling")},
                    "scores": row_scores,
                }
                attach_answer(request, ScoredAnswer(fresh))
                self.score_store.save(request.args, fresh)
                refreshed.append((request, fresh))
            self._complete_sampled_baselines(refreshed)

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
        prompts, answers, texts = [], [], []
        for row in range(context.shape[0]):
            ids = context[row] if attention_mask is None else context[row][attention_mask[row].bool()]
            prompts.append(ids.tolist())
            generated = sequences[row, context.shape[1] :].tolist()
            texts.append(postprocess_generated_text(self.tok_decode(generated), stop, None))
            answers.append(
                answer_token_ids(
                    generated, stop, self._stop_token_ids,
                    lambda tokens: self.tokenizer.decode(tokens, skip_special_tokens=False),
                )
            )
        cache = output_cache(output) if self.semgrad.reuse_cache else None
        graph_inputs = None if recorder is None else recorder.inputs(fed_columns=sequences.shape[1] - 1)
        del output
        started = time.perf_counter()
        scored = self._score_answers(prompts, answers, texts, stop, cache, graph_inputs)
        self._pending.extend(_PendingAnswer(text, answer) for text, answer in zip(texts, scored))
        self.seconds["grad_pass"] += time.perf_counter() - started
        return sequences

    def _advance_progress(self, answers: int) -> None:
        if self._progress is not None:
            self._progress.update(answers)

    def _graph_input_recorder(self, prompt_width: int) -> LayerInputRecorder | None:
        """Records, during generation, the input of the grad pass's lowest layer (None: no layers below it)."""
        num_layers = len(decoder_layers(self.model))
        start = graph_start_layer(num_layers, resolve_layers(num_layers, self.semgrad_layers))
        if start == 0:
            return None
        return LayerInputRecorder(self.model, start, first_column=prompt_width + self.semgrad_position)

    def _score_answers(
        self, prompts: list[list[int]], answers: list[list[int]], texts: list[str], stop: list[str],
        generation_cache: Any | None, graph_inputs: torch.Tensor | None = None,
    ) -> list[ScoredAnswer]:
        """Score the answers of one generation batch whose token ids give their text; the others get a reason."""
        reasons: list[str | None] = [None] * len(answers)
        for row, (answer, text) in enumerate(zip(answers, texts)):
            if not answer:
                reasons[row] = "empty answer: no token to score"
            elif postprocess_generated_text(self.tok_decode(answer), stop, None) != text:
                reasons[row] = "the answer's token ids do not decode to its text (tokenizer round trip)"
        rows = [i for i, reason in enumerate(reasons) if reason is None]
        self._advance_progress(len(answers) - len(rows))
        if len(rows) < len(answers):
            logger.warning(
                "semgrad-hf: %d answer(s) have no uncertainty score: %s", len(answers) - len(rows),
                "; ".join(sorted({r for r in reasons if r})),
            )
        scores = None
        if generation_cache is not None and len(rows) == len(answers):
            scores = self._score_from_generation_cache(prompts, answers, generation_cache, graph_inputs)
        if scores is None:
            scores = self._score_with_backoff([prompts[i] for i in rows], [answers[i] for i in rows]) if rows else []
        scored = [ScoredAnswer(None, reason) for reason in reasons]
        for row, row_scores in zip(rows, scores):
            record: Record = {
                "scores": row_scores, "response_ids": answers[row], "prompt_ids": prompts[row],
                "prompt_len": len(prompts[row]), "response": texts[row],
            }
            scored[row] = ScoredAnswer(record)
        return scored

    def _score_from_generation_cache(self, prompts, answers, cache, graph_inputs) -> list[dict[str, float]] | None:
        """The grad pass on generation's own batch, prompt KV cache and (if recorded) lower layers' outputs.

        None when that is not possible.
        """
        total_columns = max(len(prompt) + len(answer) for prompt, answer in zip(prompts, answers))
        if not hasattr(cache, "get_seq_length") or prefix_cache_problem(self.model, cache, total_columns):
            return None  # score() runs its own prefix, or whole passes (scoring/prefix_split.py)
        if graph_inputs is not None and self._lower_layer_reuse is None:
            self._lower_layer_reuse = self._lower_layer_reuse_agrees(prompts, answers, cache, graph_inputs)
        if not self._lower_layer_reuse:
            graph_inputs = None
        memory_budget = self._memory_budget(cache)
        try:
            return score_with_prefix_cache(
                self.model, prompts, answers, cache, position=self.semgrad_position, layers=self.semgrad_layers,
                memory_budget=memory_budget, scores=self.computed_scores, graph_inputs=graph_inputs,
                progress=self._advance_progress,
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
                    self.model, prompts, answers, position=self.semgrad_position, layers=self.semgrad_layers,
                    batch_size=batch_size, scores=self.computed_scores, progress=self._advance_progress,
                )
            except torch.cuda.OutOfMemoryError:
                if batch_size == 1:
                    raise
                batch_size = max(1, batch_size // 2)
                torch.cuda.empty_cache()
                logger.warning("semgrad-hf: out of memory in the grad pass; semgrad_batch_size -> %d", batch_size)
                self.semgrad = replace(self.semgrad, batch_size=batch_size)


def attach_answer(request: Instance, answer: ScoredAnswer) -> None:
    """Append one answer's scores to its request instance (a request with repeats gets one per answer)."""
    if getattr(request, "semgrad_answers", None) is None:
        request.semgrad_answers = []  # type: ignore[attr-defined]
    request.semgrad_answers.append(answer)  # type: ignore[attr-defined]


class _RecordingCacheHook(CacheHook):
    """Wraps the hook HFLM calls once per generated answer, right after generating its batch."""

    def __init__(self, model: SemGradHFLM, inner: CacheHook) -> None:
        self.model, self.inner = model, inner
        self.dbdict = getattr(inner, "dbdict", None)

    def add_partial(self, attr: str, req, res) -> None:
        self.inner.add_partial(attr, req, res)
        if attr == "generate_until":
            self.model.answer_generated(req, res)
