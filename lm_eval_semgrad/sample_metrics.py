"""Per-task uncertainty metrics of scored answers, computed the same way for `semgrad-hf` and `rescore`.

`UncertaintySample` is one answer as the metrics see it (its record, correctness label, and where it
belongs); `UncertaintyAggregation` reduces a list of them to one `{method}_{metric}` value and its
bootstrap standard error, logging once per task, filter and method why a value is NaN.
`ConfidenceAggregation` does the same for the calibration metrics of a saved confidence map
(`semgrad_confidence`): `{method}_{ece,brier,log_loss}` of the map's P(correct) and
`{method}_selective_accuracy_{50,80,90}` of the scores, as `metrics.calibration_metrics` defines them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from .logs import get_logger
from .metrics import (
    METRICS,
    ConfidenceMap,
    UndefinedMetricWarning,
    bootstrap_ci,
    brier,
    ece,
    log_loss,
    selective_accuracy,
)
from .metrics.confidence import SELECTIVE_PERCENTS
from .sample_log import Record

logger = get_logger(__name__)

MAX_BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 1234

#: calibration metric -> (function, whether it reads P(correct) rather than the score, higher is better)
CONFIDENCE_METRICS: dict[str, tuple[Callable[..., float], bool, bool]] = {
    "ece": (ece, True, False),
    "brier": (brier, True, False),
    "log_loss": (log_loss, True, False),
    **{f"selective_accuracy_{percent}": (partial(selective_accuracy, coverage=percent / 100), False, True)
       for percent in SELECTIVE_PERCENTS},
}


@dataclass(frozen=True)
class UncertaintySample:
    """One answer as the uncertainty metrics see it; `record` is None when it was not scored (`missing_reason`)."""

    record: Record | None
    correct: int
    label: str
    task: str = ""
    filter: str = "none"
    missing_reason: str | None = None

    def score(self, method: str) -> float:
        """NaN (missing) when unscored, or when the record lacks this method."""
        return math.nan if self.record is None else float(self.record["scores"].get(method, math.nan))


def metric_key(method: str, metric: str) -> str:
    return f"{method}_{metric}"


def uncertainty_metric_keys(methods: Sequence[str]) -> list[str]:
    return [metric_key(method, metric) for method in methods for metric in METRICS]


def confidence_metric_keys(methods: Sequence[str]) -> list[str]:
    return [metric_key(method, metric) for method in methods for metric in CONFIDENCE_METRICS]


class UncertaintyAggregation:
    """Aggregation of one `{method}_{metric}` key; carries its own bootstrap standard error.

    lm-eval gives custom aggregations no stderr, so `evaluator_hooks` asks this object for it.
    Why a value is NaN (no scores, all answers correct or all wrong) is logged once per task,
    filter and method, through `warned` (shared by the aggregations of one run).
    """

    def __init__(self, method: str, metric: str, warned: set[tuple[str, ...]] | None = None) -> None:
        self.method, self.metric = method, metric
        self.__name__ = metric_key(method, metric)
        self._warned = set() if warned is None else warned
        self._function: Callable[..., float] = METRICS.get(metric) or CONFIDENCE_METRICS[metric][0]

    def _arrays(self, samples: Sequence[UncertaintySample]) -> tuple[np.ndarray, np.ndarray]:
        """(what the metric reads per answer, NaN when missing; the correctness labels)."""
        return np.array([s.score(self.method) for s in samples]), np.array([s.correct for s in samples])

    def _warn_once(self, samples: Sequence[UncertaintySample], key: str, message: str) -> None:
        where = (samples[0].task, samples[0].filter) if samples else ("", "")
        if (*where, key) not in self._warned:
            self._warned.add((*where, key))
            prefix = f"semgrad: task {where[0]!r}, filter {where[1]!r}: " if where[0] else "semgrad: "
            logger.warning(prefix + message)

    def __call__(self, samples: Sequence[UncertaintySample]) -> float:
        uncertainty, correct = self._arrays(samples)
        missing = np.isnan(uncertainty)
        if missing.all():
            reasons = sorted({s.missing_reason for s in samples if s.missing_reason})
            self._warn_once(
                samples, f"none:{self.method}",
                f"no answer has a {self.method} score ({'; '.join(reasons) or 'not computed'}); reporting NaN",
            )
            return math.nan
        if missing.any():
            self._warn_once(
                samples, f"some:{self.method}",
                f"{int(missing.sum())} of {len(samples)} answers have no {self.method} score and are left out",
            )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = self._function(uncertainty[~missing], correct[~missing])
        for warning in caught:
            if not issubclass(warning.category, UndefinedMetricWarning):
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
            elif len(set(correct[~missing].tolist())) == 1:
                outcome = "correct" if correct[~missing][0] == 1 else "wrong"
                self._warn_once(
                    samples, "one label",
                    f"all {int((~missing).sum())} scored answers are {outcome}, so AUROC, AUPRC, PRR and Spearman "
                    "are undefined (NaN) for every method; evaluate more (or harder/easier) questions",
                )
            else:
                self._warn_once(samples, f"undefined:{self.method}", f"{self.method}: {warning.message}")
        return value

    def stderr(self, samples: Sequence[UncertaintySample], bootstrap_iters: int) -> float | str:
        uncertainty, correct = self._arrays(samples)
        keep = ~np.isnan(uncertainty)
        if not keep.any():
            return "N/A"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)  # the value's own warning says why
            result = bootstrap_ci(
                self._function, uncertainty[keep], correct[keep],
                n_resamples=max(2, min(bootstrap_iters, MAX_BOOTSTRAP_RESAMPLES)), seed=BOOTSTRAP_SEED,
            )
        return "N/A" if math.isnan(result.stderr) else float(result.stderr)


class ConfidenceAggregation(UncertaintyAggregation):
    """Aggregation of one calibration key `{method}_{metric}` of a saved map (not cross-fitted: the map is fixed).

    The probability metrics read `confidence_map.predict(score)`; selective accuracy reads the score.
    """

    def __init__(
        self, method: str, metric: str, confidence_map: ConfidenceMap, warned: set[tuple[str, ...]] | None = None
    ) -> None:
        super().__init__(method, metric, warned)
        self.confidence_map = confidence_map
        self._reads_probability = CONFIDENCE_METRICS[metric][1]

    def _arrays(self, samples: Sequence[UncertaintySample]) -> tuple[np.ndarray, np.ndarray]:
        uncertainty, correct = super()._arrays(samples)
        return (self.confidence_map.predict(uncertainty) if self._reads_probability else uncertainty), correct


def confidence_aggregations(
    maps: Mapping[str, ConfidenceMap], warned: set[tuple[str, ...]] | None = None
) -> dict[str, ConfidenceAggregation]:
    """Every calibration key of the applied maps, with its aggregation."""
    return {
        metric_key(method, metric): ConfidenceAggregation(method, metric, confidence_map, warned)
        for method, confidence_map in maps.items() for metric in CONFIDENCE_METRICS
    }


def confidence_higher_is_better(methods: Sequence[str]) -> dict[str, bool]:
    return {metric_key(method, metric): CONFIDENCE_METRICS[metric][2] for method in methods for metric in CONFIDENCE_METRICS}
