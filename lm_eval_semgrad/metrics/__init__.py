"""Uncertainty-quality metrics (harness-independent, numpy only).

Higher ``uncertainty`` = less confident; ``correct`` is binary.  See
:mod:`.uncertainty` for definitions and tie handling, :mod:`.bootstrap` for
confidence intervals.
"""

from .bootstrap import BootstrapResult, bootstrap_ci, evaluate_uncertainty
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
]
