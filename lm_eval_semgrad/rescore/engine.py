"""Batched scoring of parsed rows: one grad pass per distinct (prompt ids, answer ids), in input order.

Rows are turned into `Item`s (one per input line) holding one `Answer` per generated answer (a
harness row has one per repeat). Identical answers are scored once: the rows of one document under
several filters, and rows already scored in an earlier, interrupted run (seeded into the cache).
After every grad-pass batch, the rows whose answers all have scores are handed to `emit`, which
writes and flushes them; a progress bar counts rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..scoring import score
from ..scoring.memory import grad_pass_memory, kv_cache_bytes_per_token
from ..scoring.pass_budget import GradPassMemory

logger = logging.getLogger(__name__)

Scores = dict[str, float]
AnswerKey = tuple[tuple[int, ...], tuple[int, ...]]


@dataclass
class Answer:
    """One answer to score: the exact ids the grad pass reads, and whether they match the log."""

    prompt_ids: list[int]
    response_ids: list[int]
    roundtrip: bool = True
    issue: str | None = None  # why the ids may differ from what was generated, when roundtrip is False
    # what the sampling baselines need: the question they quote, the answer's text and how answers end
    question: str = ""
    question_source: str = ""
    text: str = ""
    stops: tuple[str, ...] = ()
    max_new_tokens: int = 256

    @property
    def key(self) -> AnswerKey:
        return tuple(self.prompt_ids), tuple(self.response_ids)

    @property
    def scorable(self) -> bool:
        return len(self.response_ids) > 0 and len(self.prompt_ids) > 0


@dataclass
class Item:
    """One input row, parsed."""

    line: int
    key: Any  # resume key, unique within its file
    source: dict[str, Any]
    answers: list[Answer]
    group: str  # metrics are computed per group: the filter of a harness row, "all" for plain rows
    correct: int | None = None
    correctness: str | None = None
    scores: list[Scores | None] = field(default_factory=list)  # filled when scored, one per answer
    extras: list[dict[str, Any]] = field(default_factory=list)  # the sampling baselines' samples etc., one per answer
    document: Any = None  # what --limit counts: the doc_id of a harness row (its filters share it), the line of a plain row

    @property
    def roundtrip(self) -> bool:
        return all(answer.roundtrip for answer in self.answers)

    @property
    def issues(self) -> list[str]:
        return [answer.issue for answer in self.answers if answer.issue]


class ScoreCache:
    """Scores (and the sampling baselines' extras) by exact (prompt ids, answer ids); `scored` counts the
    grad-pass samples actually run."""

    def __init__(self) -> None:
        self._scores: dict[AnswerKey, Scores] = {}
        self._extras: dict[AnswerKey, dict[str, Any]] = {}
        self.scored = 0

    def __contains__(self, key: AnswerKey) -> bool:
        return key in self._scores

    def get(self, answer: Answer) -> Scores | None:
        return self._scores.get(answer.key)

    def extras(self, answer: Answer) -> dict[str, Any]:
        return self._extras.get(answer.key, {})

    def seed(self, answer: Answer, scores: Scores, extras: dict[str, Any] | None = None) -> None:
        self._scores.setdefault(answer.key, dict(scores))
        self._extras.setdefault(answer.key, dict(extras or {}))

    def add_scored(self, answers: Sequence[Answer], scores: Sequence[Scores]) -> None:
        for answer, row in zip(answers, scores):
            self._scores[answer.key] = row
        self.scored += len(answers)

    def add_extras(self, answers: Sequence[Answer], results: Sequence[tuple[Scores, dict[str, Any]]]) -> None:
        for answer, (scores, extras) in zip(answers, results):
            self._scores[answer.key] = {**self._scores.get(answer.key, {}), **scores}
            self._extras[answer.key] = extras


@dataclass
class MemoryPlan:
    """Splits a batch of answers into grad passes within `semgrad_memory`, as semgrad-hf does.

    "generation": at most the KV cache that generating the batch held (rows x longest prompt +
    answer x the model's cache bytes per token); "unbounded": one pass; a number: that many MiB.
    The pass's cost per row and token is measured once per model (`grad_pass_memory`).
    """

    option: str | float = "generation"
    position: int = -1
    layers: Sequence[int] | None = None
    _memory: GradPassMemory | None = None
    _kv_per_token: float = 0.0

    def passes(self, model: Any, answers: Sequence[Answer]) -> list[list[int]]:
        if self.option == "unbounded" or len(answers) < 2:
            return [list(range(len(answers)))]
        if self._memory is None:
            self._memory = grad_pass_memory(model, position=self.position, layers=self.layers)
            self._kv_per_token = kv_cache_bytes_per_token(model)
        widest = max(len(a.prompt_ids) + len(a.response_ids) for a in answers)
        budget = (
            len(answers) * widest * self._kv_per_token if self.option == "generation" else float(self.option) * 2**20
        )
        return self._memory.row_groups(
            [len(a.response_ids) - self.position for a in answers], max(len(a.prompt_ids) for a in answers), budget
        )


def score_items(
    get_model: Callable[[], Any],
    items: Sequence[Item],
    cache: ScoreCache,
    *,
    position: int,
    layers: Sequence[int] | None,
    batch_size: int,
    scores: Sequence[str],
    emit: Callable[[list[Item]], None],
    progress: Any | None = None,
    memory: str | float = "generation",
    sampling: Callable[[list[Answer]], list[tuple[Scores, dict[str, Any]]]] | None = None,
) -> None:
    """Score every item's answers (those not in `cache`), calling `emit` after each batch of `batch_size` answers.

    `get_model` is called only when there is an answer to score, so a resumed run with nothing
    left never loads the weights. Each batch runs in grad passes that fit `memory` (`MemoryPlan`);
    `sampling`, when given, then adds the sampling baselines' scores and extras of its new answers.
    """
    pending_items: list[Item] = []
    pending: dict[AnswerKey, Answer] = {}
    state = {"batch_size": batch_size}
    plan = MemoryPlan(memory, position, layers)

    def flush() -> None:
        answers = list(pending.values())
        if answers:
            model = get_model()
            for group in plan.passes(model, answers):
                chosen = [answers[i] for i in group]
                cache.add_scored(chosen, _score_with_backoff(model, chosen, position, layers, scores, state))
            if sampling is not None:
                cache.add_extras(answers, sampling(answers))
        for item in pending_items:
            item.scores = [cache.get(answer) if answer.scorable else None for answer in item.answers]
            item.extras = [cache.extras(answer) for answer in item.answers]
        emit(list(pending_items))
        if progress is not None:
            progress.update(len(pending_items))
        pending_items.clear()
        pending.clear()

    for item in items:
        for answer in item.answers:
            if answer.scorable and answer.key not in cache:
                pending.setdefault(answer.key, answer)
        pending_items.append(item)
        if len(pending) >= batch_size:
            flush()
    if pending_items:
        flush()


def _score_with_backoff(
    model: Any, answers: list[Answer], position: int, layers, scores: Sequence[str], state: dict
) -> list[Scores]:
    while True:
        try:
            return score(
                model,
                [a.prompt_ids for a in answers],
                [a.response_ids for a in answers],
                position=position,
                layers=layers,
                batch_size=state["batch_size"],
                scores=scores,
            )
        except torch.cuda.OutOfMemoryError:
            if state["batch_size"] == 1:
                raise
            state["batch_size"] = max(1, state["batch_size"] // 2)
            torch.cuda.empty_cache()
            logger.warning("rescore: out of memory in the grad pass; batch size -> %d", state["batch_size"])
