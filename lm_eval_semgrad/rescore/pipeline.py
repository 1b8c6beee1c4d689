"""The steps every rescore runs, in memory or on files: parse rows, score them (resuming), summarise."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..logs import get_logger
from ..metrics import ConfidenceMap
from ..sample_log import SAMPLE_FIELD
from ..sampling.sets import DEFAULT_SEED
from .engine import Answer, Item, ScoreCache, score_items
from .formats import ScoringSetup
from .output import OutputFile
from .results import metric_values, uncertainty_samples
from .rows import BadRow, RescoreError, RowError

logger = get_logger(__name__)


@dataclass
class RescoreResult:
    """What one rescore produced: output rows (input order), rows skipped as bad, metrics and counts."""

    rows: list[dict[str, Any]]
    bad_rows: list[BadRow]
    metrics: dict[str, dict[str, Any]]  # group (filter) -> {"{method}_{metric}": value, ..._stderr}
    counts: dict[str, int]
    items: list[Item] = field(default_factory=list, repr=False)


def scoring_setup(
    tokenizer: Any, position: int, layers: Sequence[int] | None, methods: Sequence[str], config: Any = None
) -> ScoringSetup:
    return ScoringSetup(
        position=int(position),
        layers=None if layers is None else [int(i) for i in layers],
        eos_token_id=getattr(tokenizer, "eos_token_id", None),
        methods=tuple(methods),
        vocab_size=getattr(config, "vocab_size", None),
        max_positions=getattr(config, "max_position_embeddings", None),
    )


def parse_rows(
    fmt: Any, numbered: Iterable[tuple[int, dict | None, str | None]], source: str, skip_bad: bool,
    limit: float | None = None,
) -> tuple[list[Item], list[BadRow]]:
    """Items of the rows; bad rows raise, or are listed with `skip_bad`.

    `limit`: only the first that many documents (a fraction below 1: that share of them, rounded
    up, as lm-eval's --limit); rows of later documents are not parsed.
    """
    items: list[Item] = []
    bad: list[BadRow] = []
    seen: dict[Any, int] = {}
    documents: dict[Any, None] = {}
    for line, row, problem in numbered:
        if isinstance(limit, int) and row is not None:
            document = fmt.document_of(row, line)
            if document not in documents and len(documents) >= limit:
                continue  # past the limit (a later filter's rows of the first documents still count)
            documents[document] = None
        if problem is None:
            try:
                item = fmt.parse(row, line)
                if item.key in seen:
                    raise RowError(f"duplicate row: same resume key {item.key!r} as line {seen[item.key]}")
                seen[item.key] = line
                items.append(item)
                continue
            except RowError as exc:
                problem = str(exc)
        bad_row = BadRow(source, line, problem)
        if not skip_bad:
            raise RescoreError(f"{bad_row}\n(pass --skip_bad, or skip_bad=True, to skip and count such rows instead)")
        logger.warning("skipping bad row %s", bad_row)
        bad.append(bad_row)
    if isinstance(limit, float):
        order = list(dict.fromkeys(item.document for item in items))
        kept = set(order[: math.ceil(limit * len(order))])
        items = [item for item in items if item.document in kept]
    return items, bad


def run_items(
    get_model: Callable[[], Any],
    fmt: Any,
    items: list[Item],
    setup: ScoringSetup,
    *,
    batch_size: int,
    scores: Sequence[str],
    output: OutputFile | None,
    progress: bool,
    desc: str,
    memory: str | float = "generation",
    sampling: Callable[[list[Answer]], list[tuple[dict[str, float], dict[str, Any]]]] | None = None,
    sampled_methods: Sequence[str] = (),
    sample_draw: tuple[int | None, int] = (None, DEFAULT_SEED),
) -> tuple[int, int]:
    """Score `items` (resuming from `output`'s earlier rows); returns (rows kept, grad-pass samples run).

    A kept row must also cover `sampled_methods` (scored, or missing with a reason) with sample sets
    drawn as `sample_draw` = (K override, seed) says, else it is scored again.
    """
    cache = ScoreCache()
    kept_keys: set[Any] = set()
    if output is not None:
        previous = output.previous_rows(fmt.resume_key)
        kept_rows = []
        for item in items:
            row = previous.get(item.key)
            kept = None if row is None else fmt.kept_scores(item, row)
            if kept is None or not same_setup(row, setup):
                continue
            extras = fmt.kept_extras(row)
            covered = set(kept[0] or {}) | set(extras.get("missing") or {})
            if kept[0] is not None and not (set(sampled_methods) <= covered and _drawn_as(extras, sample_draw)):
                continue
            for index, (answer, answer_scores) in enumerate(zip(item.answers, kept)):
                if answer_scores is not None:
                    cache.seed(answer, answer_scores, extras if index == 0 else None)
            kept_keys.add(item.key)
            kept_rows.append(row)
        if kept_keys:
            logger.info("%s: resuming, %d of %d rows already scored", output.path, len(kept_keys), len(items))
        output.start(kept_rows)

    def emit(done: list[Item]) -> None:
        if output is not None:
            output.append(fmt.output_row(item) for item in done if item.key not in kept_keys)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc=desc, unit="row", initial=0)
    try:
        score_items(
            get_model, items, cache, position=setup.position, layers=setup.layers,
            batch_size=batch_size, scores=scores, emit=emit, progress=bar, memory=memory, sampling=sampling,
        )
    finally:
        if bar is not None:
            bar.close()
        if output is not None:
            output.close()
    if output is not None:
        output.finalize(fmt.output_row(item) for item in items)
    return len(kept_keys), cache.scored


def sampling_stage(
    get_model: Callable[[], Any], tokenizer: Any, settings: Any, *, rows_per_call: int,
) -> Callable[[list[Answer]], list[tuple[dict[str, float], dict[str, Any]]]] | None:
    """The sampling baselines of rescored answers (None when no requested method samples); the models load on use.

    `settings`: the `SemGradSettings` (methods, samples, seed, the auxiliary models).
    """
    from ..hf.response_tokens import answer_cutter, end_of_sequence_ids
    from ..sampling.auxiliary import auxiliary_factories
    from ..sampling.scorer import SCORERS, Question, SamplingScorer

    wanted = [name for name in settings.methods if name in SCORERS]
    if not wanted:
        return None
    scorers: list[SamplingScorer] = []

    def run(answers: list[Answer]) -> list[tuple[dict[str, float], dict[str, Any]]]:
        if not scorers:
            model = get_model()
            scorers.append(SamplingScorer(
                model, tokenizer, wanted, answer_cutter=answer_cutter(tokenizer, end_of_sequence_ids(tokenizer, model)),
                decode_raw=lambda ids: tokenizer.decode(list(ids), skip_special_tokens=False), k=settings.samples,
                seed=settings.sample_seed, rows_per_call=rows_per_call, batch_size=rows_per_call,
                **auxiliary_factories(settings, model),
            ))
            scorers[0].load_auxiliary()
        questions = [Question(a.prompt_ids, a.question, a.text, a.max_new_tokens, a.stops) for a in answers]
        return [
            (result.scores, {"missing": result.missing, "samples": result.samples, "sampling": result.sampling,
                             "clusters": result.clusters, "similarity": result.similarity,
                             "question": answer.question, "question_source": answer.question_source})
            for answer, result in zip(answers, scorers[0].score(questions))
        ]

    return run


def _drawn_as(extras: dict[str, Any], sample_draw: tuple[int | None, int]) -> bool:
    """Whether a kept row's sample sets were drawn with this run's K and seed."""
    from ..sampling.sets import sample_set

    k, seed = sample_draw
    sets = extras.get("sampling") or {}
    return all(info.get("seed") == seed and info.get("k") == sample_set(name, k).k for name, info in sets.items())


def same_setup(row: dict[str, Any], setup: ScoringSetup) -> bool:
    info = row.get(SAMPLE_FIELD) if isinstance(row.get(SAMPLE_FIELD), dict) else row.get("rescore")
    if not isinstance(info, dict):
        return False
    return info.get("position") == setup.position and info.get("layers") == setup.layers_field


def group_metrics(
    items: Sequence[Item], methods: Sequence[str], bootstrap_iters: int,
    confidence_maps: Mapping[str, ConfidenceMap] | None = None,
) -> dict[str, dict[str, Any]]:
    """The metrics of each group (filter) of items: uncertainty metrics, and calibration metrics of the maps."""
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.group, []).append(item)
    return {
        group: metric_values(uncertainty_samples(members), methods, bootstrap_iters, confidence_maps=confidence_maps)
        for group, members in groups.items()
    }
