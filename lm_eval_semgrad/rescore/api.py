"""Rescore in-memory rows with a loaded model: `rescore_samples` (lm-eval sample rows) and `rescore_jsonl` (plain rows).

Which ids are scored
    - lm-eval rows logged by semgrad-hf carry the exact generated `response_ids`: those are scored
      (so the scores equal the inline ones up to float noise).
    - every other row (hf, vLLM, API backends): the prompt is re-encoded with HFLM's rule and the
      answer text re-tokenised, plus EOS unless the answer used all `max_gen_toks` (see
      `encoding`). When `decode(encode(answer)) != answer` the row says `"roundtrip": false`.
    These scores equal semgrad-hf's inline scores whenever the re-tokenised ids are the generated
    ids: the answer's tokenisation is the canonical one and generation ended at EOS or at the token
    limit (not at a stop string, whose tokens the log no longer has).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..hf.chat_positions import resolve_position
from ..hf.options import (
    DEFAULT_CORRECTNESS_THRESHOLD,
    DEFAULT_CROSS_ENCODER,
    DEFAULT_METHODS,
    DEFAULT_NLI,
    SemGradSettings,
    computed_scores,
)
from ..sampling.sets import DEFAULT_AUX_BATCH_SIZE, DEFAULT_SEED
from .encoding import DEFAULT_MAX_LENGTH, PromptEncoder
from .formats import HarnessFormat, PlainFormat, ScoringSetup
from .pipeline import RescoreResult, group_metrics, parse_rows, run_items, sampling_stage, scoring_setup
from .results import DEFAULT_BOOTSTRAP_ITERS, file_counts


def rescore_samples(
    model: Any,
    tokenizer: Any,
    rows: Iterable[dict[str, Any]],
    *,
    position: int | None = None,
    layers: Sequence[int] | None = None,
    batch_size: int = 8,
    correctness: str | None = None,
    correctness_threshold: float = DEFAULT_CORRECTNESS_THRESHOLD,
    task: str = "task",
    add_bos_token: bool | None = None,
    max_length: int | None = None,
    use_logged_ids: bool = True,
    skip_bad: bool = False,
    methods: Sequence[str] = DEFAULT_METHODS,
    bootstrap_iters: int = DEFAULT_BOOTSTRAP_ITERS,
    progress: bool = False,
    samples: int | None = None,
    sample_seed: int = DEFAULT_SEED,
    nli: str = DEFAULT_NLI,
    cross_encoder: str = DEFAULT_CROSS_ENCODER,
    aux_device: str | None = None,
    aux_batch_size: int = DEFAULT_AUX_BATCH_SIZE,
) -> RescoreResult:
    """SemGrad scores for lm-eval sample rows (dicts as in `samples_<task>_*.jsonl`), without generating.

    Each returned row is the input row plus an `uncertainty` field in semgrad-hf's format (and
    `"rescored": true`, `"roundtrip"`). `correctness` names the per-sample task metric that labels
    answers (default: the first numeric metric the row lists; `>= correctness_threshold` = correct).
    `position=None` resolves tau as semgrad-hf does (chat template, else -1). Rows logged by
    semgrad-hf are scored on their logged `response_ids` unless `use_logged_ids=False`. Sampling
    methods among `methods` draw their sample sets (`samples` answers each, seeded by `sample_seed`); the NLI- and
    cross-encoder-based ones load `nli` / `cross_encoder` (a path or hub id) on `aux_device` (default: the model's),
    `aux_batch_size` pairs per pass, as semgrad-hf's `semgrad_nli`, ... do.
    """
    setup = _setup(model, tokenizer, position, layers, methods)
    encoder = PromptEncoder(tokenizer, add_bos_token, max_length or _default_max_length(model, tokenizer))
    fmt = HarnessFormat(
        tokenizer, encoder, setup, task=task, correctness_metric=correctness,
        correctness_threshold=correctness_threshold, use_logged_ids=use_logged_ids,
    )
    settings = SemGradSettings(methods=tuple(methods), samples=samples, sample_seed=sample_seed, nli=nli,
                               cross_encoder=cross_encoder, aux_device=aux_device, aux_batch_size=aux_batch_size)
    return _rescore_rows(model, fmt, setup, rows, settings, batch_size=batch_size, skip_bad=skip_bad,
                         bootstrap_iters=bootstrap_iters, progress=progress, desc=task)


def rescore_jsonl(
    model: Any,
    tokenizer: Any,
    rows: Iterable[dict[str, Any]],
    *,
    position: int | None = None,
    layers: Sequence[int] | None = None,
    batch_size: int = 8,
    add_bos_token: bool | None = None,
    skip_bad: bool = False,
    methods: Sequence[str] = DEFAULT_METHODS,
    bootstrap_iters: int = DEFAULT_BOOTSTRAP_ITERS,
    progress: bool = False,
    samples: int | None = None,
    sample_seed: int = DEFAULT_SEED,
    nli: str = DEFAULT_NLI,
    cross_encoder: str = DEFAULT_CROSS_ENCODER,
    aux_device: str | None = None,
    aux_batch_size: int = DEFAULT_AUX_BATCH_SIZE,
) -> RescoreResult:
    """SemGrad scores for plain rows {"prompt" | "messages", "response", "correct"?}.

    "prompt" is encoded verbatim with HFLM's rule; "messages" with the chat template and the
    generation prompt (as `apply_chat_template(..., add_generation_prompt=True, tokenize=True)`).
    The response gets EOS appended unless the row says "truncated": true (or has "max_tokens": N
    and N tokens); "response_ids", when given, are scored verbatim. Returned rows add "scores" and
    "rescore" (line, ids, roundtrip); metrics cover rows with a 0/1 "correct". The sampling baselines' arguments
    are `rescore_samples`'.
    """
    setup = _setup(model, tokenizer, position, layers, methods)
    fmt = PlainFormat(tokenizer, PromptEncoder(tokenizer, add_bos_token), setup)
    settings = SemGradSettings(methods=tuple(methods), samples=samples, sample_seed=sample_seed, nli=nli,
                               cross_encoder=cross_encoder, aux_device=aux_device, aux_batch_size=aux_batch_size)
    return _rescore_rows(model, fmt, setup, rows, settings, batch_size=batch_size, skip_bad=skip_bad,
                         bootstrap_iters=bootstrap_iters, progress=progress, desc="rows")


def _setup(model: Any, tokenizer: Any, position: int | None, layers: Sequence[int] | None, methods) -> ScoringSetup:
    if position is None:
        position, _ = resolve_position(None, tokenizer)
    return scoring_setup(tokenizer, position, layers, methods, getattr(model, "config", None))


def _rescore_rows(
    model: Any, fmt: Any, setup: ScoringSetup, rows: Iterable[Any], settings: SemGradSettings, *, batch_size: int,
    skip_bad: bool, bootstrap_iters: int, progress: bool, desc: str,
) -> RescoreResult:
    """Parse, score and summarise in-memory rows (rows that are not dicts are bad rows)."""
    numbered = ((i, row if isinstance(row, dict) else None, None if isinstance(row, dict) else "not a dict")
                for i, row in enumerate(rows, start=1))
    items, bad = parse_rows(fmt, numbered, "<rows>", skip_bad)
    sampling = sampling_stage(lambda: model, fmt.tokenizer, settings, rows_per_call=batch_size)
    _, scored = run_items(lambda: model, fmt, items, setup, batch_size=batch_size,
                          scores=computed_scores(settings.methods), output=None, progress=progress, desc=desc,
                          sampling=sampling)
    counts = file_counts(items, len(bad), 0, scored)
    return RescoreResult([fmt.output_row(i) for i in items], bad, group_metrics(items, settings.methods, bootstrap_iters),
                         counts, items)


def _default_max_length(model: Any, tokenizer: Any) -> int:
    from .model_loading import default_max_length

    try:
        return default_max_length(getattr(model, "config", None), tokenizer)
    except Exception:  # noqa: BLE001 - any odd config: HFLM's own default
        return DEFAULT_MAX_LENGTH
