"""What lm-eval's evaluator hooks need of a `semgrad-hf` model during one evaluation, and no more.

The hooks recognise the model by `is_semgrad_run` and use only these members, so they never
import the model class (which installs them).
"""

from __future__ import annotations

from typing import Any, Protocol

from ..confidence.applied import ConfidenceSetup
from ..hf.options import SemGradSettings
from ..hf.semantic_setup import SemanticSetup


class SemGradRun(Protocol):
    is_semgrad_run: bool
    semgrad: SemGradSettings  # the parsed semgrad_* model args
    semantic: SemanticSetup  # the resolved position and layers
    confidence: ConfidenceSetup | None  # the saved P(correct) maps applied (semgrad_confidence), if any
    seconds: dict[str, float]  # wall time of generation and of the grad passes so far

    def attach_cached_answers(self, requests: list[Any], answers: list[str]) -> None:
        """Give the answers lm-eval served from its request cache their scores (or the reason they have none)."""

    def know_tasks(self, tasks: dict[str, Any]) -> None:
        """The tasks of this evaluation (the sampling baselines quote a question their documents render)."""


def semgrad_run(lm: Any) -> SemGradRun | None:
    """The semgrad-hf model behind `lm` (also inside lm-eval's CachingLM), or None for any other model."""
    inner = getattr(lm, "lm", lm)
    return inner if getattr(inner, "is_semgrad_run", False) is True else None
