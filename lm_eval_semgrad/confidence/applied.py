"""A confidence file applied to one `semgrad-hf` or `rescore` run (`semgrad_confidence=PATH`).

The file is read and matched against the run's methods before any model loads: every method that
is both asked for (`semgrad_methods`) and in the file gets `p_correct` and the calibration metrics;
the others are named in a warning, and a file without any of the run's methods is refused. A map
fitted for another model, task or filter, or on answers labelled by another correctness rule, still
applies, with a warning (it may be miscalibrated there).
P(correct) is computed when a sample is logged, from its scores: never stored with them (the
`--use_cache` score store), so a rerun with another file cannot show stale probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..logs import get_logger
from ..metrics import ConfidenceMap
from ..model_names import same_model
from .file_format import ConfidenceFile, load_confidence

logger = get_logger(__name__)


@dataclass(frozen=True)
class ConfidenceSetup:
    """The maps a run applies (method -> map, in the run's method order) and the file they come from."""

    path: str
    file: ConfidenceFile
    maps: Mapping[str, ConfidenceMap]
    _warned: set[tuple[str, str]] = field(default_factory=set, compare=False, repr=False)  # (what, value) warned of

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(self.maps)

    def p_correct(self, scores: Mapping[str, Any] | None) -> dict[str, float | None]:
        """P(correct) of each applied method from one answer's scores; None where the score is missing."""
        out: dict[str, float | None] = {}
        for method, confidence_map in self.maps.items():
            value = None if scores is None else scores.get(method)
            number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
            out[method] = None if math.isnan(number) else float(confidence_map.predict(number))
        return out

    def warn_if_other_model(self, model: Any) -> None:
        if not same_model(self.file.model, str(model)):
            logger.warning(
                "semgrad_confidence=%s: the maps were fitted for model %r, this run's is %r; P(correct) may be "
                "miscalibrated here (fit the maps on a run of this model)", self.path, self.file.model, str(model),
            )

    def warn_if_other_task(self, task: str) -> None:
        if task != self.file.task and ("task", task) not in self._warned:
            self._warned.add(("task", task))
            logger.warning(
                "semgrad_confidence=%s: the maps were fitted on task %r, applied to task %r; P(correct) may be "
                "miscalibrated there (fit the maps on a dev set of this task)", self.path, self.file.task, task,
            )

    def warn_if_other_filter(self, task: str, filter_name: str) -> None:
        """Once per filter of the file's own task that the maps were not fitted on (filters label answers apart)."""
        if task == self.file.task and filter_name != self.file.filter and ("filter", filter_name) not in self._warned:
            self._warned.add(("filter", filter_name))
            logger.warning(
                "semgrad_confidence=%s: the maps were fitted on filter %r of task %r, applied to its filter %r too; "
                "P(correct) may be miscalibrated there (fit a file per filter: confidence fit --filter)",
                self.path, self.file.filter, task, filter_name,
            )

    def warn_if_other_correctness(self, label: str | None) -> None:
        """Once per rule: answers labelled otherwise than those the maps were fitted on."""
        fitted = self.file.correctness
        if label and fitted and label != fitted and ("correctness", label) not in self._warned:
            self._warned.add(("correctness", label))
            logger.warning(
                "semgrad_confidence=%s: the maps were fitted on answers labelled by %r, this run labels them by %r; "
                "the calibration metrics measure P(correct) against another label", self.path, fitted, label,
            )

    def as_record(self) -> dict[str, Any]:
        """What a results file records about the maps applied."""
        return {
            "file": self.path, "methods": list(self.methods), "model": self.file.model, "task": self.file.task,
            "filter": self.file.filter, "fitted_on": list(self.file.fitted_on),
            "n": {method: confidence_map.n for method, confidence_map in self.maps.items()},
        }


def resolve_confidence(path: str | None, methods: Sequence[str]) -> ConfidenceSetup | None:
    """The maps of `path` that apply to a run of `methods` (None without a file); ValueError when none does."""
    if path is None:
        return None
    confidence = load_confidence(path)
    applied = [method for method in methods if method in confidence.maps]
    if not applied:
        raise ValueError(
            f"semgrad_confidence={path}: the file has maps of {', '.join(confidence.maps)}, and this run computes "
            f"none of them (semgrad_methods: {', '.join(methods)}); add them to semgrad_methods or fit maps of "
            "these methods"
        )
    without_map = [method for method in methods if method not in confidence.maps]
    if without_map:
        logger.warning(
            "semgrad_confidence=%s: no map for %s, which are left without p_correct (the file has %s)",
            path, ", ".join(without_map), ", ".join(confidence.maps),
        )
    unused = [method for method in confidence.maps if method not in methods]
    if unused:
        logger.warning(
            "semgrad_confidence=%s: the maps of %s are not applied: semgrad_methods does not name them", path,
            ", ".join(unused),
        )
    return ConfidenceSetup(path, confidence, {method: confidence.maps[method] for method in applied})
