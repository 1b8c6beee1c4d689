"""Rescore saved generations: in-memory rows (`rescore_samples`, `rescore_jsonl`) and files on disk.

Which ids are scored
    - lm-eval rows logged by semgrad-hf carry the exact generated `response_ids`: those are scored
      (so the scores equal the inline ones up to float noise) and the re-tokenised answer is only
      compared with them (`roundtrip`).
    - every other row (hf, vLLM, API backends): the prompt is re-encoded with HFLM's rule and the
      answer text re-tokenised, plus EOS unless the answer used all `max_gen_toks` (see
      `encoding`). When `decode(encode(answer)) != answer` the row says `"roundtrip": false`.
    These scores equal semgrad-hf's inline scores whenever the re-tokenised ids are the generated
    ids: the answer's tokenisation is the canonical one and generation ended at EOS or at the token
    limit (not at a stop string, whose tokens the log no longer has).
"""

from __future__ import annotations

import glob
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..harness.settings import DEFAULT_CORRECTNESS_THRESHOLD, DEFAULT_METHODS
from .encoding import DEFAULT_MAX_LENGTH, PromptEncoder
from .engine import Item, ScoreCache, score_items
from .formats import HarnessFormat, PlainFormat, ScoringSetup, json_key
from .output import OutputFile, write_json_atomic
from .results import (
    DEFAULT_BOOTSTRAP_ITERS,
    add_counts,
    file_counts,
    higher_is_better,
    is_uncertainty_key,
    metric_values,
    uncertainty_samples,
)
from .rows import BadRow, RescoreError, RowError, first_row, read_jsonl

logger = logging.getLogger(__name__)

SAMPLES_RE = re.compile(r"^samples_(?P<task>.+)_(?P<ts>\d{4}-\d{2}-\d{2}T[0-9.:\-]+)\.jsonl$")
RESCORE_MODEL = "semgrad-rescore"


@dataclass
class RescoreResult:
    """What one rescore produced: output rows (input order), rows skipped as bad, metrics and counts."""

    rows: list[dict[str, Any]]
    bad_rows: list[BadRow]
    metrics: dict[str, dict[str, Any]]  # group (filter) -> {"{method}_{metric}": value, ..._stderr}
    counts: dict[str, int]
    items: list[Item] = field(default_factory=list, repr=False)


# --------------------------------------------------------------------------- shared machinery


def _setup(model: Any, tokenizer: Any, position: int | None, layers: Sequence[int] | None) -> ScoringSetup:
    if position is None:
        from ..harness.chat_positions import resolve_position

        position, _ = resolve_position(None, tokenizer)
    return ScoringSetup(
        position=int(position),
        layers=None if layers is None else [int(i) for i in layers],
        eos_token_id=getattr(tokenizer, "eos_token_id", None),
    )


def _parse_rows(fmt: Any, numbered: Iterable[tuple[int, dict | None, str | None]], source: str, skip_bad: bool):
    items: list[Item] = []
    bad: list[BadRow] = []
    seen: dict[Any, int] = {}
    for line, row, problem in numbered:
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
            raise RescoreError(f"{bad_row}\n(pass --skip-bad, or skip_bad=True, to skip and count such rows instead)")
        logger.warning("skipping bad row %s", bad_row)
        bad.append(bad_row)
    return items, bad


def _run(
    model: Any,
    fmt: Any,
    items: list[Item],
    setup: ScoringSetup,
    *,
    batch_size: int,
    output: OutputFile | None,
    progress: bool,
    desc: str,
) -> tuple[int, int]:
    """Score `items` (resuming from `output`'s earlier rows); returns (rows kept, grad-pass samples run)."""
    cache = ScoreCache()
    kept_keys: set[Any] = set()
    if output is not None:
        previous = output.previous_rows(fmt.resume_key)
        kept_rows = []
        for item in items:
            row = previous.get(item.key)
            scores = None if row is None else fmt.kept_scores(item, row)
            if scores is None or not _same_setup(row, setup):
                continue
            for answer, answer_scores in zip(item.answers, scores):
                if answer_scores is not None:
                    cache.seed(answer, answer_scores)
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
            model, items, cache, position=setup.position, layers=setup.layers,
            batch_size=batch_size, emit=emit, progress=bar,
        )
    finally:
        if bar is not None:
            bar.close()
        if output is not None:
            output.close()
    if output is not None:
        output.finalize(fmt.output_row(item) for item in items)
    return len(kept_keys), cache.scored


def _same_setup(row: dict[str, Any], setup: ScoringSetup) -> bool:
    info = row.get("uncertainty") if isinstance(row.get("uncertainty"), dict) else row.get("rescore")
    if not isinstance(info, dict):
        return False
    return info.get("position") == setup.position and info.get("layers") == setup.layers_field


def _group_metrics(items: Sequence[Item], methods: Sequence[str], bootstrap_iters: int) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.group, []).append(item)
    return {
        group: metric_values(uncertainty_samples(members), methods, bootstrap_iters)
        for group, members in groups.items()
    }


# --------------------------------------------------------------------------- in-memory API


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
) -> RescoreResult:
    """SemGrad scores for lm-eval sample rows (dicts as in `samples_<task>_*.jsonl`), without generating.

    Each returned row is the input row plus an `uncertainty` field in semgrad-hf's format (and
    `"rescored": true`, `"roundtrip"`). `correctness` names the per-sample task metric that labels
    answers (default: the first numeric metric the row lists; `>= correctness_threshold` = correct).
    `position=None` resolves tau as semgrad-hf does (chat template, else -1). Rows logged by
    semgrad-hf are scored on their logged `response_ids` unless `use_logged_ids=False`.
    """
    setup = _setup(model, tokenizer, position, layers)
    encoder = PromptEncoder(tokenizer, add_bos_token, max_length or _default_max_length(model, tokenizer))
    fmt = HarnessFormat(
        tokenizer, encoder, setup, task=task, correctness_metric=correctness,
        correctness_threshold=correctness_threshold, use_logged_ids=use_logged_ids,
    )
    return _rescore_rows(model, fmt, setup, rows, batch_size=batch_size, skip_bad=skip_bad, methods=methods,
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
) -> RescoreResult:
    """SemGrad scores for plain rows {"prompt" | "messages", "response", "correct"?}.

    "prompt" is encoded verbatim with HFLM's rule; "messages" with the chat template and the
    generation prompt (as `apply_chat_template(..., add_generation_prompt=True, tokenize=True)`).
    The response gets EOS appended unless the row says "truncated": true (or has "max_tokens": N
    and N tokens); "response_ids", when given, are scored verbatim. Returned rows add "scores" and
    "rescore" (line, ids, roundtrip); metrics cover rows with a 0/1 "correct".
    """
    setup = _setup(model, tokenizer, position, layers)
    fmt = PlainFormat(tokenizer, PromptEncoder(tokenizer, add_bos_token), setup)
    return _rescore_rows(model, fmt, setup, rows, batch_size=batch_size, skip_bad=skip_bad, methods=methods,
                         bootstrap_iters=bootstrap_iters, progress=progress, desc="rows")


def _rescore_rows(
    model: Any, fmt: Any, setup: ScoringSetup, rows: Iterable[Any], *, batch_size: int, skip_bad: bool,
    methods: Sequence[str], bootstrap_iters: int, progress: bool, desc: str,
) -> RescoreResult:
    """Parse, score and summarise in-memory rows (rows that are not dicts are bad rows)."""
    numbered = ((i, row if isinstance(row, dict) else None, None if isinstance(row, dict) else "not a dict")
                for i, row in enumerate(rows, start=1))
    items, bad = _parse_rows(fmt, numbered, "<rows>", skip_bad)
    _, scored = _run(model, fmt, items, setup, batch_size=batch_size, output=None, progress=progress, desc=desc)
    counts = file_counts(items, len(bad), 0, scored)
    return RescoreResult([fmt.output_row(i) for i in items], bad, _group_metrics(items, methods, bootstrap_iters), counts, items)


def _default_max_length(model: Any, tokenizer: Any) -> int:
    from .model_loading import default_max_length

    try:
        return default_max_length(model, tokenizer)
    except Exception:  # noqa: BLE001 - any odd config: HFLM's own default
        return DEFAULT_MAX_LENGTH


# --------------------------------------------------------------------------- files


@dataclass
class SampleSource:
    """One lm-eval samples file and what sits beside it."""

    path: Path
    task: str
    timestamp: str
    results_path: Path | None
    results: dict[str, Any] | None


def find_sample_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files given, plus every samples_*.jsonl under folders given (sorted, de-duplicated)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            matches = sorted(path.rglob("samples_*.jsonl"))
            if not matches:
                raise RescoreError(f"{path}: no samples_*.jsonl files in this folder")
            found.extend(matches)
        elif path.is_file():
            found.append(path)
        else:
            raise RescoreError(f"{path}: no such file or folder")
    return list(dict.fromkeys(p.resolve() for p in found))


def is_plain_jsonl(path: Path) -> bool:
    """Auto-detection: a file whose first row has "response" and no lm-eval "doc_id" is plain JSONL."""
    if SAMPLES_RE.match(path.name):
        return False
    row = first_row(path)
    return row is not None and "response" in row and "doc_id" not in row


def describe_source(path: Path) -> SampleSource:
    match = SAMPLES_RE.match(path.name)
    if match:
        task, timestamp = match["task"], match["ts"]
    else:  # renamed file: the task from the name, a stable stand-in timestamp from its modification time
        task = re.sub(r"^samples_", "", path.stem)
        timestamp = datetime.fromtimestamp(path.stat().st_mtime).isoformat().replace(":", "-")
    results_path = path.with_name(f"results_{timestamp}.json")
    candidates = [results_path] if results_path.is_file() else []
    candidates += sorted(Path(p) for p in glob.glob(str(path.parent / "results_*.json")) if Path(p) != results_path)[::-1]
    for candidate in candidates:
        data = _read_json(candidate)
        if isinstance(data, dict) and task in (data.get("configs") or {}):
            return SampleSource(path, task, timestamp, candidate, data)
    return SampleSource(path, task, timestamp, None, None)


def _read_json(path: Path) -> Any:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        logger.warning("%s: unreadable results JSON; ignored", path)
        return None


def primary_metric_of(source: SampleSource) -> str | None:
    """The first metric of the task's metric_list in the results JSON beside the samples file."""
    config = ((source.results or {}).get("configs") or {}).get(source.task) or {}
    metric_list = config.get("metric_list") or []
    if metric_list:
        first = metric_list[0]
        name = first.get("metric") if isinstance(first, dict) else first
        return name if isinstance(name, str) else None
    return None


def _source_model_args(results: dict[str, Any] | None) -> dict[str, Any]:
    args = ((results or {}).get("config") or {}).get("model_args")
    if isinstance(args, str):
        from lm_eval.utils import simple_parse_args_string

        return simple_parse_args_string(args)
    return dict(args) if isinstance(args, dict) else {}


@dataclass
class FileOutcome:
    source: Path
    output: Path
    task: str | None
    counts: dict[str, int]
    bad_rows: list[BadRow]
    metrics: dict[str, dict[str, Any]]
    items: list[Item] = field(default_factory=list, repr=False)


@dataclass
class RescoreSummary:
    files: list[FileOutcome]
    results_files: list[Path]
    totals: dict[str, int]

    @property
    def bad_rows(self) -> list[BadRow]:
        return [bad for outcome in self.files for bad in outcome.bad_rows]


def rescore_sample_files(
    loaded: Any,
    paths: Sequence[str | Path],
    output_dir: str | Path,
    *,
    batch_size: int = 8,
    skip_bad: bool = False,
    overwrite: bool = False,
    bootstrap_iters: int = DEFAULT_BOOTSTRAP_ITERS,
    progress: bool = True,
) -> RescoreSummary:
    """Rescore lm-eval samples files into `output_dir/<run folder>/`, plus one results JSON per run.

    `loaded` is a `model_loading.LoadedModel`. Outputs keep the input names (so the report command
    groups them as a run); each run (input folder x timestamp) gets `results_<timestamp>.json` in
    lm-eval's layout, with the task's own metrics copied from the input run's results JSON.
    """
    output_dir = Path(output_dir)
    files = find_sample_files(paths)
    sources = [describe_source(path) for path in files]
    targets: dict[Path, Path] = {}
    for source in sources:
        target = (output_dir / source.path.parent.name / source.path.name).resolve()
        if target == source.path:
            raise RescoreError(f"{source.path}: the output would overwrite the input; choose another --output_path")
        if target in targets.values():
            raise RescoreError(f"{source.path}: two inputs would be written to {target}; rescore them separately")
        targets[source.path] = target
    setup = ScoringSetup(loaded.position, loaded.layers, getattr(loaded.tokenizer, "eos_token_id", None))
    settings = loaded.settings
    outcomes: list[FileOutcome] = []
    for source in sources:
        source_args = _source_model_args(source.results)
        add_bos = loaded.add_bos_token
        if add_bos is None and source_args.get("add_bos_token") is not None:
            add_bos = str(source_args["add_bos_token"]).lower() in ("true", "1")
        max_length = loaded.max_length or (source.results or {}).get("max_length")
        max_length = int(max_length) if isinstance(max_length, (int, float)) else _default_max_length(loaded.model, loaded.tokenizer)
        encoder = PromptEncoder(loaded.tokenizer, add_bos, max_length)
        fmt = HarnessFormat(
            loaded.tokenizer, encoder, setup, task=source.task,
            correctness_metric=settings.correctness_metric or primary_metric_of(source),
            correctness_threshold=settings.correctness_threshold,
        )
        items, bad = _parse_rows(fmt, read_jsonl(source.path), str(source.path), skip_bad)
        _warn_if_logged_setup_differs(source.path, items, setup)
        fingerprint = {**loaded.fingerprint(), "add_bos_token": add_bos, "max_length": max_length}
        output = OutputFile(targets[source.path], fingerprint, overwrite=overwrite)
        kept, scored = _run(
            loaded.model, fmt, items, setup, batch_size=batch_size, output=output, progress=progress, desc=source.task
        )
        outcomes.append(
            FileOutcome(
                source=source.path, output=targets[source.path], task=source.task,
                counts=file_counts(items, len(bad), kept, scored), bad_rows=bad,
                metrics=_group_metrics(items, settings.methods, bootstrap_iters), items=items,
            )
        )
    results_files = _write_results_files(loaded, sources, outcomes, output_dir, batch_size, bootstrap_iters)
    totals: dict[str, int] = {}
    for outcome in outcomes:
        add_counts(totals, outcome.counts)
    return RescoreSummary(outcomes, results_files, totals)


def _warn_if_logged_setup_differs(path: Path, items: Sequence[Item], setup: ScoringSetup) -> None:
    """A semgrad-hf log scored at another tau / band: the rescored values will not equal the inline ones."""
    logged = {
        (info.get("position"), json_key(info.get("layers")))
        for item in items
        if isinstance(info := item.source.get("uncertainty"), dict) and "position" in info
    }
    ours = (setup.position, json_key(setup.layers_field))
    if logged and logged != {ours}:
        logger.warning(
            "%s: the log was scored by semgrad-hf at position/layers %s; rescoring at position %d, layers %s "
            "(pass semgrad_position / semgrad_layers to match)",
            path, sorted(str(x) for x in logged), setup.position, setup.layers_field,
        )


def _write_results_files(
    loaded: Any,
    sources: Sequence[SampleSource],
    outcomes: Sequence[FileOutcome],
    output_dir: Path,
    batch_size: int,
    bootstrap_iters: int,
) -> list[Path]:
    runs: dict[tuple[str, str], list[tuple[SampleSource, FileOutcome]]] = {}
    for source, outcome in zip(sources, outcomes):
        runs.setdefault((source.path.parent.name, source.timestamp), []).append((source, outcome))
    written = []
    methods = loaded.settings.methods
    for (folder, timestamp), members in runs.items():
        data: dict[str, Any] = {
            "results": {}, "group_subtasks": {}, "configs": {}, "versions": {}, "n-shot": {},
            "higher_is_better": {}, "n-samples": {},
        }
        summary: dict[str, Any] = {}
        for source, outcome in members:
            task = source.task
            original = (source.results or {}).get("results", {}).get(task) or {}
            # the task's own metrics; uncertainty metrics of an inline semgrad-hf run are replaced by ours
            entry: dict[str, Any] = {"name": task, "alias": task}
            entry.update({k: v for k, v in original.items() if not is_uncertainty_key(k)})
            entry["sample_len"] = len({json_key(item.source.get("doc_id")) for item in outcome.items})
            for group, values in outcome.metrics.items():
                entry.update({f"{key},{group}": value for key, value in values.items()})
            data["results"][task] = entry
            for section in ("configs", "versions", "n-shot", "n-samples"):
                value = ((source.results or {}).get(section) or {}).get(task)
                if value is not None:
                    data[section][task] = value
            source_hib = ((source.results or {}).get("higher_is_better") or {}).get(task) or {}
            data["higher_is_better"][task] = {
                **{k: v for k, v in source_hib.items() if not is_uncertainty_key(k)},
                **higher_is_better(methods),
            }
            summary[task] = {
                **outcome.counts,
                "source": str(source.path),
                "source_results": None if source.results_path is None else str(source.results_path),
                "bad_row_list": [bad.as_dict() for bad in outcome.bad_rows],
            }
        first_results = next((s.results for s, _ in members if s.results), None) or {}
        pretrained = str(loaded.args.get("pretrained"))
        data["config"] = {
            "model": RESCORE_MODEL,
            "model_args": dict(loaded.args),
            "batch_size": batch_size,
            "device": str(getattr(loaded.model, "device", "")),
            "bootstrap_iters": bootstrap_iters,
            "source_files": [str(s.path) for s, _ in members],
            "source_model": (first_results.get("config") or {}).get("model"),
            "source_model_args": (first_results.get("config") or {}).get("model_args"),
        }
        data["rescore"] = {
            "position": loaded.position,
            "position_source": loaded.position_source,
            "layers": "upper_half" if loaded.layers is None else loaded.layers,
            "tasks": summary,
            "roundtrip_mismatches": sum(o.counts["roundtrip_mismatches"] for _, o in members),
            "bad_rows": sum(o.counts["bad_rows"] for _, o in members),
        }
        data.update(
            model_name=pretrained,
            model_name_sanitized=re.sub(r"[\"<>:/|\\?*\[\]]+", "__", pretrained),
            date=time.time(),
            lm_eval_version=_version("lm_eval"),
            transformers_version=_version("transformers"),
        )
        for key in ("max_length", "chat_template", "chat_template_sha", "system_instruction", "fewshot_as_multiturn"):
            if key in first_results:
                data[key] = first_results[key]
        path = output_dir / folder / f"results_{timestamp}.json"
        write_json_atomic(path, data)
        written.append(path)
    return written


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def rescore_jsonl_file(
    loaded: Any,
    path: str | Path,
    output_dir: str | Path,
    *,
    batch_size: int = 8,
    skip_bad: bool = False,
    overwrite: bool = False,
    bootstrap_iters: int = DEFAULT_BOOTSTRAP_ITERS,
    progress: bool = True,
) -> FileOutcome:
    """Rescore a plain JSONL file into `output_dir/<name>` plus `output_dir/<stem>.summary.json`."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise RescoreError(f"{path}: no such file")
    target = (Path(output_dir) / path.name).resolve()
    if target == path:
        raise RescoreError(f"{path}: the output would overwrite the input; choose another --output_path")
    setup = ScoringSetup(loaded.position, loaded.layers, getattr(loaded.tokenizer, "eos_token_id", None))
    fmt = PlainFormat(loaded.tokenizer, PromptEncoder(loaded.tokenizer, loaded.add_bos_token), setup)
    items, bad = _parse_rows(fmt, read_jsonl(path), str(path), skip_bad)
    output = OutputFile(target, loaded.fingerprint(), overwrite=overwrite)
    kept, scored = _run(loaded.model, fmt, items, setup, batch_size=batch_size, output=output, progress=progress, desc=path.name)
    methods = loaded.settings.methods
    metrics = _group_metrics(items, methods, bootstrap_iters)
    outcome = FileOutcome(path, target, None, file_counts(items, len(bad), kept, scored), bad, metrics, items)
    summary = {
        "source": str(path),
        "output": str(target),
        "config": {"model": RESCORE_MODEL, "model_args": dict(loaded.args), "batch_size": batch_size,
                   "bootstrap_iters": bootstrap_iters},
        "position": loaded.position,
        "position_source": loaded.position_source,
        "layers": "upper_half" if loaded.layers is None else loaded.layers,
        **outcome.counts,
        "bad_row_list": [b.as_dict() for b in bad],
        "metrics": metrics.get("all", metric_values([], methods, 0)),
        "higher_is_better": higher_is_better(methods),
    }
    write_json_atomic(target.with_name(f"{target.stem}.summary.json"), summary)
    return outcome
