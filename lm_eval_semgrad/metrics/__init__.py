"""Uncertainty-quality metrics (harness-independent, numpy/scipy only).

Higher ``uncertainty`` = less confident; ``correct`` is binary.  See
:mod:`.uncertainty` for definitions and tie handling, :mod:`.bootstrap` for
confidence intervals, :mod:`.confidence` for calibrated P(correct) and
calibration / selective-prediction metrics.
"""

from .bootstrap import BootstrapResult, bootstrap_ci, evaluate_uncertainty
from .confidence import (
    PLATT_L2,
    ConfidenceMap,
    brier,
    calibration_metrics,
    cross_fit_probabilities,
    ece,
    fit_confidence_map,
    log_loss,
    reliability_curve,
    selective_accuracy,
)
from .uncertainty import (
    HIGHER_IS_BETTER,
    METRICS,
    UndefinedMetricWarning,
    auprc,
    aurc,
    auroc,
    prr,
    spearman,
)

__all__ = [
    "auroc",
    "auprc",
    "aurc",
    "prr",
    "spearman",
    "METRICS",
    "HIGHER_IS_BETTER",
    "UndefinedMetricWarning",
    "BootstrapResult",
    "bootstrap_ci",
    "evaluate_uncertainty",
    "ConfidenceMap",
    "fit_confidence_map",
    "cross_fit_probabilities",
    "ece",
    "brier",
    "log_loss",
    "selective_accuracy",
    "reliability_curve",
    "calibration_metrics",
    "PLATT_L2",
]
