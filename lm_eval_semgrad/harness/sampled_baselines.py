"""The sampling baselines inside `semgrad-hf`: a stage after the greedy answers and their grad pass.

For every answered request whose record lacks a requested sampling method, the request's question
(`question_text`), its prompt ids and greedy answer go to `sampling.scorer.SamplingScorer`; sampled
answers end exactly as the greedy answer did (the request's stop strings, HFLM's EOS rule, its
`max_gen_toks`). The scores, reasons for missing ones, the samples and how they were drawn are
merged into the record, which the sample log and `--use_cache` keep.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs
from tqdm import tqdm

from ..hf.options import SemGradSettings
from ..hf.response_tokens import answer_cutter
from ..question_text import question_of
from ..sample_log import Record
from ..sampling.auxiliary import auxiliary_factories
from ..sampling.scorer import SCORERS, Question, SamplingResult, SamplingScorer


class SampledBaselines:
    """What `semgrad-hf` needs to run the requested sampling methods on its answers."""

    def __init__(self, lm: Any, settings: SemGradSettings, *, rows_per_call: int) -> None:
        self.lm = lm
        #: questions per scorer call: enough to fill its batches (each question has K >= 2 samples per set)
        self.questions_per_call = max(1, rows_per_call)
        self.methods = tuple(name for name in settings.methods if name in SCORERS)
        self.tasks: dict[str, Any] = {}  # task name -> task, set by the evaluator hooks (for doc_to_text)
        self.scorer = SamplingScorer(
            lm.model, lm.tokenizer, self.methods, answer_cutter=answer_cutter(lm.tokenizer, lm._stop_token_ids),
            decode_raw=self._decode_raw, k=settings.samples, seed=settings.sample_seed, rows_per_call=rows_per_call,
            batch_size=rows_per_call, **auxiliary_factories(settings, lm.model),
        )
        self.scorer.load_auxiliary()  # a missing NLI model fails now, not after the whole generation

    @property
    def active(self) -> bool:
        return bool(self.methods)

    def complete(
        self, answered: Sequence[tuple[Any, Record]], completed: Callable[[Any, Record], None] | None = None
    ) -> None:
        """Add the sampling methods' scores (or reasons) to the records of these (request, record) pairs.

        Questions go to the scorer `questions_per_call` at a time; `completed(request, record)`, if given, is called
        for each record as soon as its scores are in (the harness keeps it for a resumed run then).
        """
        todo = [(request, record) for request, record in answered if not self._covered(record)]
        if not self.active or not todo:
            return
        questions = []
        for request, record in todo:
            stops, max_new_tokens = self._ending(request)
            text, source = self._question(request)
            record["question"], record["question_source"] = text, source
            questions.append(Question(list(record["prompt_ids"]), text, record["response"], max_new_tokens, stops))
        total = len(questions) * self.scorer.samples_per_question()
        bar = tqdm(total=total, desc="semgrad sampling", unit="sample", disable=self.lm.rank != 0 or not total)
        try:
            for start in range(0, len(todo), self.questions_per_call):
                chunk = slice(start, start + self.questions_per_call)
                for (request, record), result in zip(todo[chunk], self.scorer.score(questions[chunk], progress=bar.update)):
                    _merge(record, result)
                    if completed is not None:
                        completed(request, record)
        finally:
            bar.close()

    def _covered(self, record: Record) -> bool:
        done = set(record.get("scores") or {}) | set(record.get("missing") or {})
        return set(self.methods) <= done

    def _question(self, request: Any) -> tuple[str, str]:
        task = self.tasks.get(getattr(request, "task_name", None) or "")
        doc = getattr(request, "doc", None)
        if task is not None and doc is not None and hasattr(task, "doc_to_text"):
            rendered = task.doc_to_text(doc)
            if isinstance(rendered, str):
                return question_of(doc, rendered, "the task's doc_to_text")
        return question_of(doc, str(request.args[0]), "the prompt")

    def _ending(self, request: Any) -> tuple[tuple[str, ...], int]:
        """The stop strings and answer-length limit HFLM.generate_until used for this request."""
        kwargs = normalize_gen_kwargs(dict(request.args[1]), self.lm.max_gen_toks)
        eos = self.lm.tok_decode(self.lm.eot_token_id, skip_special_tokens=False)
        return tuple(handle_stop_sequences(kwargs.pop("until", None), eos=eos)), int(kwargs["max_gen_toks"])

    def _decode_raw(self, tokens: Sequence[int]) -> str:
        return self.lm.tokenizer.decode(list(tokens), skip_special_tokens=False)


def _merge(record: Record, result: SamplingResult) -> None:
    """A question's sampling scores, reasons and what they came from, into its record."""
    record["scores"] = {**record["scores"], **result.scores}
    record["missing"] = {**record.get("missing", {}), **result.missing}
    record["samples"] = {**record.get("samples", {}), **result.samples}
    record["sampling"] = {**record.get("sampling", {}), **result.sampling}
    record["clusters"] = {**record.get("clusters", {}), **result.clusters}
    record["similarity"] = {**record.get("similarity", {}), **result.similarity}
