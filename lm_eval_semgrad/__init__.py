"""lm-eval-semgrad: gradient-based uncertainty (SemGrad, HybridGrad) for lm-evaluation-harness runs."""

from .scoring import SCORE_KEYS, score

__version__ = "0.1.0"
__all__ = ["SCORE_KEYS", "score", "__version__"]
