"""The sampling baselines of one batch of greedy answers: draw the sample sets the methods need, then score.

Harness-independent: `semgrad-hf` and `rescore` both hand over `Question`s (the eval prompt's
token ids, the question text, the greedy answer, how answers end) and get back, per question, each
requested method's score or the reason it has none, the samples every score came from, and how
each set was drawn, so that anyone can recompute a score from the sample log.
"""

from __future__ import annotations

import contextlib
import functools
import math
import operator
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from .. import methods as registry
from . import entropy, inside, lexical, mutual_information, nli_methods
from .auxiliary import CrossEncoder, NLIModel
from .generation import Sample, draw_samples
from .p_true import p_true_prompt
from .sets import DEFAULT_SEED, SampleSet, sample_set
from .teacher_forcing import continuation_logprobs

#: Methods computed from their sample set alone; those with an NLI model or cross-encoder, by family; and all
#: the methods this module computes.
FROM_SAMPLES = ("ln_pe", "pe", "lex_sim", "inside")
SE_FAMILY, SC_FAMILY, SAR_FAMILY = ("se", "discrete_se"), ("self_con", "deg", "eigv", "ecc"), ("sar", "token_sar", "sentence_sar")
SCORERS = (*FROM_SAMPLES, "mi", "p_true", *SE_FAMILY, *SC_FAMILY, *SAR_FAMILY, "sd")
#: The diverse beams of semantic density (docs/method.md §3.8), and the temperature they are rescored at.
SD_BEAMS: dict[str, Any] = {"num_beams": 10, "num_beam_groups": 10, "diversity_penalty": 1.0}
SD_TEMPERATURE = 0.1


@dataclass(frozen=True)
class Question:
    """One greedy answer to score with the sampling baselines."""

    prompt_ids: list[int]  # the eval prompt as generation read it
    question: str  # the question itself (P(True) and M.I. prompts quote it)
    answer: str  # the greedy answer's text
    max_new_tokens: int
    stop_strings: tuple[str, ...] = ()


@dataclass
class SamplingResult:
    """Per question: scores, reasons for the missing ones, and what they were computed from."""

    scores: dict[str, float] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sampling: dict[str, dict[str, Any]] = field(default_factory=dict)
    clusters: dict[str, list[int]] = field(default_factory=dict)  # "se": semantic entropy's cluster id per sample
    similarity: dict[str, list[list[float]]] = field(default_factory=dict)  # "se": argmax NLI classes, "sc": W, "sar": S


Cutter = Callable[[Sequence[str]], Callable[[list[int]], tuple[list[int], str]]]


class SamplingScorer:
    """Scores questions with the requested sampling methods (those of `SCORERS` among `methods`).

    `answer_cutter(stop_strings)` returns the function that cuts generated ids into (answer ids,
    text) exactly as the greedy answer is cut. `k` overrides every set's sample count; `seed` is
    the base of every answer row's random stream (see `generation`); `rows_per_call` bounds the
    rows of one `generate` call (the greedy batch size keeps sampling within generation's memory).
    `nli` / `cross_encoder` load the auxiliary models (called once, when a method first needs them).
    """

    def __init__(
        self, model: nn.Module, tokenizer: Any, methods: Sequence[str], *, answer_cutter: Cutter,
        decode_raw: Callable[[list[int]], str], k: int | None = None, seed: int = DEFAULT_SEED,
        rows_per_call: int = 16, batch_size: int = 8, nli: Callable[[], NLIModel] | None = None,
        cross_encoder: Callable[[], CrossEncoder] | None = None,
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.methods = tuple(name for name in methods if name in SCORERS)
        self.answer_cutter, self.decode_raw = answer_cutter, decode_raw
        self.k, self.seed, self.rows_per_call, self.batch_size = k, seed, rows_per_call, batch_size
        self._auxiliary: dict[str, Any] = {}
        self._factories: dict[str, Callable[[], Any] | None] = {"nli": nli, "cross_encoder": cross_encoder}
        self.sets: dict[str, SampleSet] = {
            name: sample_set(name, k) for name in registry.sample_sets_of(self.methods)
        }
        #: wall time spent per stage ("samples:SET", "p_true", "mi_passes", "formulas"), summed over calls
        self.seconds: dict[str, float] = {}

    def samples_per_question(self) -> int:
        return sum(config.k for config in self.sets.values())

    def score(self, questions: Sequence[Question], progress: Callable[[int], None] | None = None) -> list[SamplingResult]:
        """`progress`, if given, is called with the number of sampled answers after each `generate` call."""
        results = [SamplingResult() for _ in questions]
        drawn = {}
        for name, config in self.sets.items():
            with self._timed(f"samples:{name}"):
                drawn[name] = self._draw(questions, config, results, progress)
        with self._timed("formulas"):
            for name in self.methods:
                if name in FROM_SAMPLES:
                    for result, samples in zip(results, drawn[registry.get(name).sample_set or ""]):
                        _record(result, name, functools.partial(_from_samples, name, samples))
        if "mi" in self.methods:
            with self._timed("mi_passes"):
                self._mutual_information(questions, drawn["mi"], results)
        if "p_true" in self.methods:
            with self._timed("p_true"):
                self._p_true(questions, results)
        if set(SE_FAMILY) & set(self.methods):
            with self._timed("nli:se"):
                nli_methods.semantic_entropy(questions, drawn["se"], self._model("nli"), results, _record, self.methods)
        if set(SC_FAMILY) & set(self.methods):
            with self._timed("nli:sc"):
                nli_methods.self_consistency_family(questions, drawn["sc"], self._model("nli"), results, _record,
                                                    self.methods)
        if set(SAR_FAMILY) & set(self.methods):
            with self._timed("cross_encoder:sar"):
                nli_methods.sar_family(questions, drawn["sar"], self._model("cross_encoder"), self._decode_clean,
                                       results, _record, self.methods)
        if "sd" in self.methods:
            self._semantic_density(questions, results, progress)
        return results

    def load_auxiliary(self) -> None:
        """Load the auxiliary models the methods need now (so that a missing one fails before any generation)."""
        needs = registry.needs_of(self.methods)
        for need in ("nli", "cross_encoder"):
            if need in needs:
                self._model(need)

    def _model(self, need: str) -> Any:
        if need not in self._auxiliary:
            factory = self._factories[need]
            if factory is None:
                raise ValueError(f"no {need} model was given for {', '.join(self.methods)}")
            self._auxiliary[need] = factory()
        return self._auxiliary[need]

    def _decode_clean(self, ids: list[int]) -> str:
        """SAR's decode (docs/method.md §3.10): special tokens skipped, tokenisation spaces cleaned up."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=True)

    def _semantic_density(
        self, questions: Sequence[Question], results: list[SamplingResult], progress: Callable[[int], None] | None
    ) -> None:
        """S.D. (docs/method.md §3.8): diverse beams per question, rescored at tau = 0.1, NLI distances."""
        from .diverse_beams import diverse_beams

        eos_ids = self._eos_ids()
        beams: list[list[Sample]] = []
        with self._timed("beams:sd"):
            for question in questions:
                cut = self.answer_cutter(question.stop_strings)
                found = diverse_beams(
                    self.model, question.prompt_ids, max_new_tokens=question.max_new_tokens, eos_token_ids=sorted(eos_ids),
                    pad_token_id=_pad_id(self.tokenizer), **SD_BEAMS,
                )
                cuts = [cut(list(beam.token_ids)) for beam in found]
                beams.append([Sample(text=text, token_ids=ids, token_logprobs=[]) for ids, text in cuts])
                if progress is not None:
                    progress(len(found))
        with self._timed("rescoring:sd"):
            rescored = self._rescored(questions, beams)
        for question, question_beams, scored_beams, result in zip(questions, beams, rescored, results):
            for beam, (ids, row) in zip(question_beams, scored_beams):
                beam.token_ids, beam.token_logprobs = ids, row  # the log-probs are of the re-tokenised text's ids
            result.samples["sd"] = [beam.as_record() for beam in question_beams]
            result.sampling["sd"] = {**SD_BEAMS, "do_sample": False, "max_new_tokens": question.max_new_tokens,
                                     "rescoring_temperature": SD_TEMPERATURE}
        with self._timed("nli:sd"):
            beam_logprobs = [[beam.token_logprobs for beam in question_beams] for question_beams in beams]
            nli_methods.semantic_density(questions, beams, beam_logprobs, self._model("nli"), results, _record)

    def _rescored(
        self, questions: Sequence[Question], beams: Sequence[Sequence[Sample]]
    ) -> list[list[tuple[list[int], list[float]]]]:
        """Each beam's text re-tokenised without special tokens (its EOS dropped) and those ids' log-probs at
        tau = 0.1, per question and beam."""
        prefixes, continuations, owners = [], [], []
        out: list[list[tuple[list[int], list[float]]]] = [[([], []) for _ in question_beams] for question_beams in beams]
        for q, (question, question_beams) in enumerate(zip(questions, beams)):
            for b, beam in enumerate(question_beams):
                ids = list(self.tokenizer(beam.text, add_special_tokens=False)["input_ids"])
                if ids:  # an empty beam keeps no log-prob: its p_k, and the score, are NaN as in the reference
                    prefixes.append(question.prompt_ids)
                    continuations.append(ids)
                    owners.append((q, b))
        if prefixes:
            scored = continuation_logprobs(self.model, prefixes, continuations, temperature=SD_TEMPERATURE,
                                           batch_size=self.batch_size)
            for (q, b), ids, row in zip(owners, continuations, scored):
                out[q][b] = (ids, row)
        return out

    def _eos_ids(self) -> set[int]:
        from ..hf.response_tokens import end_of_sequence_ids

        return end_of_sequence_ids(self.tokenizer, self.model)

    @contextlib.contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started

    def _draw(
        self, questions: Sequence[Question], config: SampleSet, results: list[SamplingResult],
        progress: Callable[[int], None] | None,
    ) -> list[list[Sample]]:
        """The set for every question, drawn in groups of questions that end alike."""
        drawn: list[list[Sample]] = [[] for _ in questions]
        groups: dict[tuple[tuple[str, ...], int], list[int]] = {}
        for index, question in enumerate(questions):
            groups.setdefault((question.stop_strings, question.max_new_tokens), []).append(index)
        for (stops, max_new_tokens), members in groups.items():
            samples = draw_samples(
                self.model, [questions[i].prompt_ids for i in members], config, seed=self.seed,
                max_new_tokens=max_new_tokens, cut=self.answer_cutter(stops), pad_token_id=_pad_id(self.tokenizer),
                stop_strings=stops, decode_raw=self.decode_raw, rows_per_call=self.rows_per_call, progress=progress,
            )
            for index, question_samples in zip(members, samples):
                drawn[index] = question_samples
                results[index].samples[config.name] = [sample.as_record() for sample in question_samples]
                results[index].sampling[config.name] = config.record(max_new_tokens, self.seed)
        return drawn

    def _mutual_information(
        self, questions: Sequence[Question], drawn: list[list[Sample]], results: list[SamplingResult]
    ) -> None:
        """M.I. (docs/method.md §3.9): mu1 from the samples, mu2 from one teacher-forced pass per cluster pair."""
        prefixes: list[list[int]] = []
        continuations: list[list[int]] = []
        plans: list[tuple[int, list[float], int] | None] = []
        for index, (question, samples) in enumerate(zip(questions, drawn)):
            try:
                weights = mutual_information.mu1([s.text for s in samples], [s.token_logprobs for s in samples])
                pairs = mutual_information.mu2_pairs(question.question, list(weights))
            except ValueError as error:
                results[index].missing["mi"] = str(error)
                plans.append(None)
                continue
            answer_ids = [_answer_ids(self.tokenizer, a2) for _, a2 in pairs]
            if any(not ids for ids in answer_ids):
                results[index].missing["mi"] = "a cluster's answer has no token to score as a2 (its text tokenises to nothing)"
                plans.append(None)
                continue
            plans.append((len(prefixes), list(weights.values()), len(weights)))
            prefixes += [_chat_ids(self.tokenizer, prompt) for prompt, _ in pairs]
            continuations += answer_ids
        logprobs = continuation_logprobs(self.model, prefixes, continuations, batch_size=self.batch_size) if prefixes else []
        for index, plan in enumerate(plans):
            if plan is None:
                continue
            first, mu1_values, clusters = plan
            raw = None
            if clusters > 1:
                sums = [math.exp(sum(row)) for row in logprobs[first : first + clusters * clusters]]
                raw = np.array(sums).reshape(clusters, clusters)
            _record(results[index], "mi", functools.partial(mutual_information.mi_score, mu1_values, raw))

    def _p_true(self, questions: Sequence[Question], results: list[SamplingResult]) -> None:
        """P(True) (docs/method.md §3.3): -log P of the last token of `prompt + " True"`, no chat template."""
        limit = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        prefixes, continuations, owners = [], [], []
        for index, question in enumerate(questions):
            ids = list(self.tokenizer(p_true_prompt(question.question, question.answer) + " True")["input_ids"])
            if limit is not None and len(ids) > limit:
                results[index].missing["p_true"] = (
                    f"the P(True) prompt has {len(ids)} tokens, more than the model's {limit} positions"
                )
                continue
            prefixes.append(ids[:-1])
            continuations.append(ids[-1:])
            owners.append(index)
        logprobs = continuation_logprobs(self.model, prefixes, continuations, batch_size=self.batch_size) if prefixes else []
        for index, row in zip(owners, logprobs):
            _record(results[index], "p_true", functools.partial(operator.neg, row[0]))


def _from_samples(name: str, samples: Sequence[Sample]) -> float:
    if name == "ln_pe":
        return entropy.ln_predictive_entropy([s.token_logprobs for s in samples])
    if name == "pe":
        return entropy.predictive_entropy([s.token_logprobs for s in samples])
    if name == "lex_sim":
        return lexical.lex_sim([s.text for s in samples])
    embeddings = [s.embedding for s in samples if s.embedding is not None]
    if len(embeddings) < len(samples):
        raise ValueError("no hidden state was recorded for the samples")
    return inside.inside_score(np.stack(embeddings))


def _record(result: SamplingResult, name: str, compute: Callable[[], float]) -> None:
    """A method's score, or why there is none: a formula's ValueError, or a NaN it returns, never a silent zero."""
    try:
        value = float(compute())
    except ValueError as error:
        result.missing[name] = str(error)
        return
    if math.isnan(value):
        result.missing[name] = f"{name} is undefined here: its formula gives NaN (e.g. every probability underflowed)"
        return
    result.scores[name] = value


def _pad_id(tokenizer: Any) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    return int(pad if pad is not None else tokenizer.eos_token_id)


def _chat_ids(tokenizer: Any, user_text: str) -> list[int]:
    """M.I.'s prompt: one user turn with the chat template, tokenised with special tokens (a double BOS, as the
    reference code gets for Llama and Mistral); the plain text for tokenizers without a template."""
    text = user_text
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": user_text}], add_generation_prompt=True,
                                             tokenize=False)
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


def _answer_ids(tokenizer: Any, answer: str) -> list[int]:
    """a2 without special tokens, a trailing EOS removed (docs/method.md §3.9)."""
    ids = list(tokenizer(answer, add_special_tokens=False)["input_ids"])
    if ids and ids[-1] == getattr(tokenizer, "eos_token_id", None):
        ids = ids[:-1]
    return ids
