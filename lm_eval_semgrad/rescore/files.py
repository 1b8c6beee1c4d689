"""Rescore files on disk, resumably: lm-eval samples files into a run folder each, and plain JSONL files.

Outputs keep the input names (so `report` groups them as a run); each run (input folder x
timestamp) gets `results_<timestamp>.json` in lm-eval's layout. A run none of whose rows could be
parsed writes no results file (an empty one would read as a run without answers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cli_common import output_problem
from ..logs import get_logger
from ..metrics import ConfidenceMap
from ..sample_log import SAMPLE_FIELD
from .encoding import PromptEncoder
from .engine import Item
from .formats import HarnessFormat, PlainFormat, ScoringSetup, json_key
from .model_loading import LoadedModel, default_max_length
from .output import OutputFile, write_json_atomic
from .pipeline import group_metrics, parse_rows, run_items, sampling_stage, scoring_setup
from .results import (
    DEFAULT_BOOTSTRAP_ITERS,
    RESCORE_MODEL,
    add_counts,
    file_counts,
    higher_is_better,
    metric_values,
    write_results_file,
)
from .rows import BadRow, RescoreError, read_jsonl
from .sources import SampleSource, describe_source, find_sample_files

logger = get_logger(__name__)


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


def check_writable(folder: str | Path) -> Path:
    """The output folder, created and checked writable before any model loads (RescoreError otherwise)."""
    problem = output_problem(folder, folder=True)
    if problem is not None:
        raise RescoreError(f"--output_path: {problem}; choose another folder")
    return Path(folder).expanduser()


def _sampling(loaded: LoadedModel, batch_size: int):
    return sampling_stage(lambda: loaded.model, loaded.tokenizer, loaded.settings, rows_per_call=batch_size)


def _maps(loaded: LoadedModel) -> dict[str, ConfidenceMap]:
    return {} if loaded.confidence is None else dict(loaded.confidence.maps)


def _setup(loaded: LoadedModel) -> ScoringSetup:
    return scoring_setup(loaded.tokenizer, loaded.position, loaded.layers, loaded.settings.methods, loaded.source.config)


def rescore_sample_files(
    loaded: LoadedModel,
    paths: Sequence[str | Path],
    output_dir: str | Path,
    *,
    batch_size: int = 8,
    skip_bad: bool = False,
    overwrite: bool = False,
    bootstrap_iters: int = DEFAULT_BOOTSTRAP_ITERS,
    progress: bool = True,
    limit: int | None = None,
) -> RescoreSummary:
    """Rescore lm-eval samples files into `output_dir/<run folder>/`, plus one results JSON per run.

    The task's own metrics are copied from the input run's results JSON. `limit`: only the first
    that many documents of each file.
    """
    output_dir = Path(output_dir)
    sources = [describe_source(path) for path in find_sample_files(paths)]
    targets: dict[Path, Path] = {}
    for source in sources:
        target = (output_dir / source.path.parent.name / source.path.name).resolve()
        if target == source.path:
            raise RescoreError(f"{source.path}: the output would overwrite the input; choose another --output_path")
        if target in targets.values():
            raise RescoreError(f"{source.path}: two inputs would be written to {target}; rescore them separately")
        targets[source.path] = target
    setup = _setup(loaded)
    settings = loaded.settings
    outcomes: list[FileOutcome] = []
    for source in sources:
        source_args = source.model_args
        add_bos = loaded.add_bos_token
        if add_bos is None and source_args.get("add_bos_token") is not None:
            add_bos = str(source_args["add_bos_token"]).lower() in ("true", "1")
        max_length = loaded.max_length or (source.results or {}).get("max_length")
        if not isinstance(max_length, (int, float)):
            max_length = default_max_length(loaded.source.config, loaded.tokenizer)
        encoder = PromptEncoder(loaded.tokenizer, add_bos, int(max_length))
        fmt = HarnessFormat(
            loaded.tokenizer, encoder, setup, task=source.task,
            correctness_metric=settings.correctness_metric or source.primary_metric,
            correctness_threshold=settings.correctness_threshold, confidence=loaded.confidence,
        )
        if loaded.confidence is not None:
            loaded.confidence.warn_if_other_task(source.task)
        items, bad = parse_rows(fmt, read_jsonl(source.path), str(source.path), skip_bad, limit)
        _warn_if_logged_setup_differs(source.path, items, setup)
        fingerprint = {**loaded.fingerprint(), "add_bos_token": add_bos, "max_length": int(max_length)}
        output = OutputFile(targets[source.path], fingerprint, overwrite=overwrite)
        kept, scored = run_items(
            lambda: loaded.model, fmt, items, setup, batch_size=batch_size, scores=loaded.computed_scores,
            output=output, progress=progress, desc=source.task, memory=settings.memory,
            sampling=_sampling(loaded, batch_size), sampled_methods=loaded.sampled_methods,
            sample_draw=(settings.samples, settings.sample_seed),
        )
        outcomes.append(
            FileOutcome(
                source=source.path, output=targets[source.path], task=source.task,
                counts=file_counts(items, len(bad), kept, scored), bad_rows=bad,
                metrics=group_metrics(items, settings.methods, bootstrap_iters, _maps(loaded)), items=items,
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
        if isinstance(info := item.source.get(SAMPLE_FIELD), dict) and "position" in info
    }
    ours = (setup.position, json_key(setup.layers_field))
    if logged and logged != {ours}:
        logger.warning(
            "%s: the log was scored by semgrad-hf at position/layers %s; rescoring at position %d, layers %s "
            "(pass semgrad_position / semgrad_layers to match)",
            path, sorted(str(x) for x in logged), setup.position, setup.layers_field,
        )


def _write_results_files(
    loaded: LoadedModel, sources: Sequence[SampleSource], outcomes: Sequence[FileOutcome], output_dir: Path,
    batch_size: int, bootstrap_iters: int,
) -> list[Path]:
    runs: dict[tuple[str, str], list[tuple[SampleSource, FileOutcome]]] = {}
    for source, outcome in zip(sources, outcomes):
        runs.setdefault((source.path.parent.name, source.timestamp), []).append((source, outcome))
    written = []
    for (folder, timestamp), members in runs.items():
        usable = [(source, outcome) for source, outcome in members if outcome.items]
        if not usable:
            logger.warning(
                "%s: no row of %s could be scored; no results file written",
                output_dir / folder, ", ".join(str(source.path.name) for source, _ in members),
            )
            continue
        path = output_dir / folder / f"results_{timestamp}.json"
        write_results_file(path, loaded, usable, batch_size, bootstrap_iters)
        written.append(path)
    return written


def rescore_jsonl_file(
    loaded: LoadedModel,
    path: str | Path,
    output_dir: str | Path,
    *,
    batch_size: int = 8,
    skip_bad: bool = False,
    overwrite: bool = False,
    bootstrap_iters: int = DEFAULT_BOOTSTRAP_ITERS,
    progress: bool = True,
    limit: int | None = None,
) -> FileOutcome:
    """Rescore a plain JSONL file into `output_dir/<name>` plus `output_dir/<stem>.summary.json`."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise RescoreError(f"{path}: no such file")
    target = (Path(output_dir) / path.name).resolve()
    if target == path:
        raise RescoreError(f"{path}: the output would overwrite the input; choose another --output_path")
    setup = _setup(loaded)
    fmt = PlainFormat(loaded.tokenizer, PromptEncoder(loaded.tokenizer, loaded.add_bos_token), setup, loaded.confidence)
    items, bad = parse_rows(fmt, read_jsonl(path), str(path), skip_bad, limit)
    output = OutputFile(target, loaded.fingerprint(), overwrite=overwrite)
    kept, scored = run_items(
        lambda: loaded.model, fmt, items, setup, batch_size=batch_size, scores=loaded.computed_scores,
        output=output, progress=progress, desc=path.name, memory=loaded.settings.memory,
        sampling=_sampling(loaded, batch_size), sampled_methods=loaded.sampled_methods,
        sample_draw=(loaded.settings.samples, loaded.settings.sample_seed),
    )
    methods = loaded.settings.methods
    metrics = group_metrics(items, methods, bootstrap_iters, _maps(loaded))
    outcome = FileOutcome(path, target, None, file_counts(items, len(bad), kept, scored), bad, metrics, items)
    summary = {
        "source": str(path),
        "output": str(target),
        "config": {"model": RESCORE_MODEL, "model_args": dict(loaded.args), "batch_size": batch_size,
                   "bootstrap_iters": bootstrap_iters},
        **loaded.semantic.as_record(),
        **outcome.counts,
        "bad_row_list": [b.as_dict() for b in bad],
        "metrics": metrics.get("all", metric_values([], methods, 0, confidence_maps=_maps(loaded))),
        "higher_is_better": higher_is_better(methods, list(_maps(loaded))),
    }
    write_json_atomic(target.with_name(f"{target.stem}.summary.json"), summary)
    return outcome
