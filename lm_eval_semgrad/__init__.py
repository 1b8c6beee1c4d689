"""lm-eval-semgrad: gradient-based uncertainty (SemGrad, HybridGrad) for lm-evaluation-harness runs.

`score` is imported lazily so that light entry points (the start-up hook, task utilities,
reports) do not pay for importing torch.
"""

from typing import TYPE_CHECKING, Any

from .version import __version__

__all__ = ["SCORE_KEYS", "score", "__version__"]

if TYPE_CHECKING:
    from .scoring import SCORE_KEYS, score


def __getattr__(name: str) -> Any:
    if name in ("score", "SCORE_KEYS"):
        from . import scoring

        return getattr(scoring, name)
    raise AttributeError(f"module 'lm_eval_semgrad' has no attribute {name!r}")
