"""The two input formats: lm-eval sample logs, and plain {"prompt"|"messages", "response", "correct"} JSONL.

Each format turns an input row into an `Item` (raising `RowError` for a row it cannot score),
builds the output row from an item and its scores, and recognises its own output rows when an
interrupted run is resumed (`resume_key`, `kept_scores`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..confidence.applied import ConfidenceSetup
from ..hf.options import DEFAULT_CORRECTNESS_THRESHOLD
from ..question_text import question_of
from ..sample_log import SAMPLE_FIELD, correctness_labeller, layers_field, uncertainty_field
from .encoding import DEFAULT_MAX_GEN_TOKS, PromptEncoder, max_gen_toks, rebuild_answer
from .engine import Answer, Item, Scores
from .rows import RowError

#: Fields every lm-eval sample row has; anything else numeric may be a per-sample task metric.
HARNESS_FIELDS = {
    "doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics",
    "doc_hash", "prompt_hash", "target_hash", SAMPLE_FIELD,
}


@dataclass(frozen=True)
class ScoringSetup:
    """How rows are scored (recorded in every output row), and the model limits each row is checked against."""

    position: int
    layers: list[int] | None
    eos_token_id: int | None
    methods: tuple[str, ...] = ()
    vocab_size: int | None = None
    max_positions: int | None = None

    @property
    def layers_field(self) -> str | list[int]:
        return layers_field(self.layers)

    def problem(self, prompt_ids: Sequence[int], response_ids: Sequence[int]) -> str | None:
        """Why the grad pass cannot score these ids (a bad row), or None."""
        if len(prompt_ids) < -self.position:
            return (f"the prompt has {len(prompt_ids)} tokens, fewer than |semgrad_position| = {-self.position}; "
                    "pass a position nearer the prompt end")
        if self.max_positions is not None and len(prompt_ids) + len(response_ids) > self.max_positions:
            return (f"prompt + answer are {len(prompt_ids) + len(response_ids)} tokens, more than the model's "
                    f"{self.max_positions} positions")
        if self.vocab_size is not None:
            outside = [t for t in (*prompt_ids, *response_ids) if not 0 <= t < self.vocab_size]
            if outside:
                return f"token ids {outside[:5]} are outside the model's vocabulary (0..{self.vocab_size - 1})"
        return None


def _roundtrip_issue(text_problem: str | None, logged: list[int] | None, prompt_issue: str | None) -> str | None:
    """Why the scored ids may not be the generated ones (None: they are).

    Logged `response_ids` (semgrad-hf logs) are the generated ids themselves: scoring them is exact
    whatever the re-tokenised text gives.
    """
    issues = []
    if prompt_issue:
        issues.append(prompt_issue)
    if logged is None and text_problem:
        issues.append(text_problem)
    return "; ".join(issues) or None


# --------------------------------------------------------------------------- lm-eval sample logs


class HarnessFormat:
    """Rows of lm-eval `samples_<task>_<timestamp>.jsonl` files (any model backend, generative tasks)."""

    name = "lm-eval samples"

    def __init__(
        self,
        tokenizer: Any,
        encoder: PromptEncoder,
        setup: ScoringSetup,
        *,
        task: str,
        correctness_metric: str | None,
        correctness_threshold: float = DEFAULT_CORRECTNESS_THRESHOLD,
        use_logged_ids: bool = True,
        confidence: ConfidenceSetup | None = None,
    ) -> None:
        self.tokenizer, self.encoder, self.setup = tokenizer, encoder, setup
        self.confidence = confidence
        self.task = task
        self.metric, self.threshold = correctness_metric, correctness_threshold
        self.use_logged_ids = use_logged_ids
        self._labellers: dict[str, Any] = {}

    # -- parsing -----------------------------------------------------------------------------

    @staticmethod
    def request(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(context string, generation kwargs) of a generate_until sample row."""
        arguments = row.get("arguments")
        if isinstance(arguments, dict):  # lm-eval >= 0.4.9: {"gen_args_0": {"arg_0": ..., "arg_1": ...}}
            if len(arguments) != 1 or not isinstance(arguments.get("gen_args_0"), dict):
                raise RowError(
                    f"'arguments' has {len(arguments)} request(s) {sorted(arguments)[:3]}; only generative "
                    "(generate_until) tasks with one request per document can be rescored"
                )
            request = arguments["gen_args_0"]
            context, gen_kwargs = request.get("arg_0"), request.get("arg_1")
        elif isinstance(arguments, list) and len(arguments) == 1 and isinstance(arguments[0], (list, tuple)):
            context, gen_kwargs = (list(arguments[0]) + [None, None])[:2]  # older [[context, gen_kwargs]]
        else:
            raise RowError("no 'arguments' field in the lm-eval sample layout; is this a samples_<task>_*.jsonl file?")
        if not isinstance(context, str):
            raise RowError("the request's context (arguments.gen_args_0.arg_0) is not a string")
        if not isinstance(gen_kwargs, dict):
            raise RowError(
                "the request has no generation kwargs (arguments.gen_args_0.arg_1 is "
                f"{type(gen_kwargs).__name__}): a loglikelihood / multiple-choice task, which has no generated answer"
            )
        return context, gen_kwargs

    @staticmethod
    def answers_text(row: dict[str, Any]) -> list[str]:
        resps = row.get("resps")
        if not isinstance(resps, list) or len(resps) != 1 or not isinstance(resps[0], list) or not resps[0]:
            raise RowError("'resps' is not [[answer, ...]] (one generate_until request with its answers)")
        if not all(isinstance(text, str) for text in resps[0]):
            raise RowError("'resps' holds non-string answers")
        return list(resps[0])

    def resume_key(self, row: dict[str, Any]) -> Any:
        if "doc_id" not in row:
            return None
        return (json_key(row["doc_id"]), str(row.get("filter", "none")))

    @staticmethod
    def document_of(row: dict[str, Any], line: int) -> Any:
        return json_key(row.get("doc_id"))

    def parse(self, row: dict[str, Any], line: int) -> Item:
        if "doc_id" not in row:
            raise RowError("no 'doc_id': not an lm-eval sample row")
        context, gen_kwargs = self.request(row)
        if not context.strip():
            raise RowError("empty prompt (arguments.gen_args_0.arg_0)")
        texts = self.answers_text(row)
        correct, label = self.label(row)
        prompt_ids = self.encoder.encode(context, gen_kwargs)
        limit = max_gen_toks(gen_kwargs)
        logged = row.get(SAMPLE_FIELD) if isinstance(row.get(SAMPLE_FIELD), dict) else {}
        logged_ids = logged.get("response_ids") if self.use_logged_ids else None
        if not (isinstance(logged_ids, list) and logged_ids and all(isinstance(t, int) for t in logged_ids)):
            logged_ids = None
        prompt_issue = None
        logged_prompt_len = logged.get("prompt_len")
        if isinstance(logged_prompt_len, int) and logged_prompt_len != len(prompt_ids):
            prompt_issue = (
                f"the re-encoded prompt has {len(prompt_ids)} tokens, the log says {logged_prompt_len} "
                "(another add_bos_token / max_length?)"
            )
        question, question_source = question_of(row.get("doc"), context, "the prompt")
        ending = dict(question=question, question_source=question_source, stops=self._stops(gen_kwargs),
                      max_new_tokens=limit)
        answers = []
        for repeat, text in enumerate(texts):
            rebuilt = rebuild_answer(self.tokenizer, text, limit=limit, eos_token_id=self.setup.eos_token_id)
            exact = logged_ids if repeat == 0 else None
            issue = _roundtrip_issue(rebuilt.text_problem, exact, prompt_issue)
            response_ids = list(exact or rebuilt.ids)
            problem = self.setup.problem(prompt_ids, response_ids)
            if problem is not None:
                raise RowError(problem)
            answers.append(Answer(prompt_ids=prompt_ids, response_ids=response_ids, roundtrip=issue is None, issue=issue,
                                  text=text, **ending))
        return Item(
            line=line, key=self.resume_key(row), source=row, answers=answers,
            group=str(row.get("filter", "none")), correct=correct, correctness=label, document=json_key(row["doc_id"]),
        )

    def _stops(self, gen_kwargs: dict[str, Any]) -> tuple[str, ...]:
        """The request's stop strings as HFLM used them: its `until` plus the EOS string."""
        from lm_eval.models.utils import handle_stop_sequences

        eos = self.tokenizer.decode([self.setup.eos_token_id], skip_special_tokens=False) if self.setup.eos_token_id is not None else None
        return tuple(handle_stop_sequences(gen_kwargs.get("until"), eos=eos))

    def label(self, row: dict[str, Any]) -> tuple[int, str]:
        """Correctness from the row's logged task metric, with the harness's own labeller."""
        metrics = {name: row[name] for name in _metric_names(row) if name in row}
        name = self.metric or _first_numeric(metrics)
        if name is None:
            raise RowError(
                f"no numeric per-sample task metric in the row (fields: {sorted(metrics) or 'none'}); "
                "pass semgrad_correctness=METRIC[:THRESHOLD] in --model_args"
            )
        if name not in self._labellers:
            self._labellers[name] = correctness_labeller(self.task, name, self.threshold)
        try:
            return self._labellers[name](metrics)
        except ValueError as exc:
            raise RowError(str(exc)) from None

    # -- output --------------------------------------------------------------------------------

    def output_row(self, item: Item) -> dict[str, Any]:
        first, scores = item.answers[0], item.scores[0] if item.scores else None
        if self.confidence is not None:
            self.confidence.warn_if_other_correctness(item.correctness)
            self.confidence.warn_if_other_filter(self.task, item.group)
        record = {
            **(item.extras[0] if item.extras else {}),
            "scores": scores, "response_ids": first.response_ids, "prompt_len": len(first.prompt_ids),
        }
        info: dict[str, Any] = {
            **uncertainty_field(
                record, item.correct, item.correctness, self.setup.position,
                self.setup.layers, methods=self.setup.methods, missing_reason=_missing_reason(first),
                p_correct=None if self.confidence is None else self.confidence.p_correct(scores),
            ),
            "rescored": True,
            "roundtrip": item.roundtrip,
            "roundtrip_issue": "; ".join(dict.fromkeys(item.issues)) or None,
        }
        if len(item.answers) > 1:
            info["repeats"] = [
                {"scores": s, "response_ids": list(a.response_ids), "roundtrip": a.roundtrip}
                for a, s in zip(item.answers, item.scores)
            ]
        return {**item.source, SAMPLE_FIELD: info}

    def kept_scores(self, item: Item, kept: dict[str, Any]) -> list[Scores | None] | None:
        """Scores of `item` from an output row of an earlier run; None when that row is stale."""
        if not _same_source(item.source, kept, (SAMPLE_FIELD,)):
            return None
        info = kept.get(SAMPLE_FIELD)
        if not isinstance(info, dict) or not info.get("rescored"):
            return None
        entries = info.get("repeats") if len(item.answers) > 1 else [info]
        return _matching_scores(item.answers, entries)

    @staticmethod
    def kept_extras(kept: dict[str, Any]) -> dict[str, Any]:
        """The sampling baselines' record of the first answer in an output row of an earlier run."""
        return _extras_of(kept.get(SAMPLE_FIELD))


# --------------------------------------------------------------------------- plain JSONL


class PlainFormat:
    """Rows {"prompt": str | "messages": [...], "response": str, "correct": 0/1 (optional)}.

    Optional: "response_ids" (scored verbatim), "truncated": true or "max_tokens": N (no EOS is
    appended when the answer was cut by a token limit). Output rows get "scores" and "rescore" (and
    "p_correct" with a confidence file).
    """

    name = "plain JSONL"

    def __init__(
        self, tokenizer: Any, encoder: PromptEncoder, setup: ScoringSetup, confidence: ConfidenceSetup | None = None
    ) -> None:
        self.tokenizer, self.encoder, self.setup = tokenizer, encoder, setup
        self.confidence = confidence

    def resume_key(self, row: dict[str, Any]) -> Any:
        info = row.get("rescore")
        return info.get("line") if isinstance(info, dict) else None

    @staticmethod
    def document_of(row: dict[str, Any], line: int) -> Any:
        return line

    def parse(self, row: dict[str, Any], line: int) -> Item:
        if "response" not in row:
            hint = " (an lm-eval samples file? pass it without --jsonl)" if "doc_id" in row else ""
            raise RowError(f"missing field 'response'{hint}")
        if not isinstance(row["response"], str):
            raise RowError("'response' is not a string")
        if "messages" in row:
            messages = row["messages"]
            if not (isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages)):
                raise RowError("'messages' is not a non-empty list of chat messages")
            try:
                prompt_ids = self.encoder.encode_messages(messages)
            except Exception as exc:  # template errors: a malformed conversation
                raise RowError(f"cannot render 'messages' with the chat template: {exc}") from None
        elif "prompt" in row:
            if not isinstance(row["prompt"], str) or not row["prompt"].strip():
                raise RowError("empty prompt")
            prompt_ids = self.encoder.encode(row["prompt"])  # verbatim, never truncated
        else:
            raise RowError("missing field 'prompt' (or 'messages')")
        correct = row.get("correct")
        if correct is not None:
            if isinstance(correct, bool) or (isinstance(correct, (int, float)) and correct in (0, 1)):
                correct = int(correct)
            else:
                raise RowError(f"'correct' must be 0/1 (or true/false), got {correct!r}")
        limit = row.get("max_tokens") if isinstance(row.get("max_tokens"), int) else None
        if row.get("truncated") is True:
            limit = 0
        rebuilt = rebuild_answer(self.tokenizer, row["response"], limit=limit, eos_token_id=self.setup.eos_token_id)
        logged = row.get("response_ids")
        if logged is not None and not (isinstance(logged, list) and all(isinstance(t, int) for t in logged)):
            raise RowError("'response_ids' is not a list of token ids")
        issue = _roundtrip_issue(rebuilt.text_problem, logged, None)
        response_ids = list(logged if logged is not None else rebuilt.ids)
        problem = self.setup.problem(prompt_ids, response_ids)
        if problem is not None:
            raise RowError(problem)
        question, source = _plain_question(row)
        answer = Answer(
            prompt_ids, response_ids, issue is None, issue, question=question, question_source=source,
            text=row["response"], stops=_eos_stop(self.tokenizer, self.setup.eos_token_id),
            max_new_tokens=limit if limit else DEFAULT_MAX_GEN_TOKS,
        )
        return Item(line=line, key=line, source=row, answers=[answer], group="all", correct=correct,
                    correctness=None if correct is None else "given", document=line)

    def output_row(self, item: Item) -> dict[str, Any]:
        answer, scores = item.answers[0], item.scores[0] if item.scores else None
        source = {k: v for k, v in item.source.items() if k not in ("scores", "p_correct", "rescore")}
        return {
            **source,
            "scores": None if scores is None else dict(scores),
            **({} if self.confidence is None else {"p_correct": self.confidence.p_correct(scores)}),
            "rescore": {
                "line": item.line,
                "response_ids": list(answer.response_ids),
                "prompt_len": len(answer.prompt_ids),
                "position": self.setup.position,
                "layers": self.setup.layers_field,
                "roundtrip": answer.roundtrip,
                "roundtrip_issue": answer.issue,
                **(item.extras[0] if item.extras else {}),
            },
        }

    def kept_scores(self, item: Item, kept: dict[str, Any]) -> list[Scores | None] | None:
        if not _same_source(item.source, kept, ("scores", "p_correct", "rescore")):
            return None
        info = kept.get("rescore")
        if not isinstance(info, dict):
            return None
        return _matching_scores(item.answers, [{"scores": kept.get("scores"), "response_ids": info.get("response_ids")}])

    @staticmethod
    def kept_extras(kept: dict[str, Any]) -> dict[str, Any]:
        return _extras_of(kept.get("rescore"))


# --------------------------------------------------------------------------- helpers


def _missing_reason(answer: Answer) -> str | None:
    return None if answer.scorable else "empty answer: no token to score"


EXTRA_FIELDS = ("missing", "samples", "sampling", "clusters", "similarity", "question", "question_source")


def _extras_of(info: Any) -> dict[str, Any]:
    return {key: info[key] for key in EXTRA_FIELDS if isinstance(info, dict) and key in info}


def _plain_question(row: dict[str, Any]) -> tuple[str, str]:
    """A plain row's question: its "question" field, else its last user message, else its prompt."""
    if isinstance(row.get("question"), str) and row["question"].strip():
        return row["question"].strip(), "row['question']"
    users = [m.get("content") for m in row.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    if users and isinstance(users[-1], str):
        return users[-1].strip(), "the last user message"
    return str(row.get("prompt", "")).strip(), "the prompt"


def _eos_stop(tokenizer: Any, eos_token_id: int | None) -> tuple[str, ...]:
    return () if eos_token_id is None else (tokenizer.decode([eos_token_id], skip_special_tokens=False),)


def json_key(value: Any) -> str:
    """A hashable, type-stable key for a doc_id (ints and strings both occur)."""
    return f"{type(value).__name__}:{value}"


def _metric_names(row: dict[str, Any]) -> list[str]:
    listed = row.get("metrics")
    if isinstance(listed, list) and all(isinstance(name, str) for name in listed):
        return listed
    return [key for key in row if key not in HARNESS_FIELDS]


def _first_numeric(metrics: dict[str, Any]) -> str | None:
    for name, value in metrics.items():
        if isinstance(value, bool) or (isinstance(value, (int, float)) and not math.isnan(float(value))):
            return name
    return None


def _same_source(source: dict[str, Any], kept: dict[str, Any], ours: Sequence[str]) -> bool:
    """The kept output row was made from this very input row (compared as JSON: NaN equals NaN)."""
    keys = [key for key in source if key not in ours]

    def canonical(row: dict[str, Any]) -> str:
        return json.dumps({key: row.get(key) for key in keys}, sort_keys=True, default=str)

    return all(key in kept for key in keys) and canonical(source) == canonical(kept)


def _matching_scores(answers: Sequence[Answer], entries: Any) -> list[Scores | None] | None:
    if not isinstance(entries, list) or len(entries) != len(answers):
        return None
    out: list[Scores | None] = []
    for answer, entry in zip(answers, entries):
        if not isinstance(entry, dict) or entry.get("response_ids") != list(answer.response_ids):
            return None
        scores = entry.get("scores")
        if scores is None and answer.scorable:
            return None
        out.append(None if scores is None else dict(scores))
    return out
