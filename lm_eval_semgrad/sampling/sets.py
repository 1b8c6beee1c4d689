"""The sample sets of the SemGrad paper's baselines (docs/method.md §3.0): how each is drawn.

Each set is drawn once per question, after the greedy answer and never including it, and shared by
every requested method that uses it. Settings are the reference code's: a method's own sampling
settings, with `top_k=50` inherited from the greedy configuration where the method sets none.
`max_new_tokens` and stop strings are the request's own (the task's `max_gen_toks`, 150 for the
semgrad tasks as in the paper). `k` and the seed can be overridden for every set at once
(`semgrad_samples`, `semgrad_sample_seed`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

DEFAULT_SEED = 42  # the reference code's (run_estimation.py)
DEFAULT_AUX_BATCH_SIZE = 32  # text pairs per NLI / cross-encoder forward pass


@dataclass(frozen=True)
class SampleSet:
    """How one set of answers is sampled; `hidden_states`: the set records INSIDE's embedding per sample."""

    name: str
    k: int
    temperature: float
    top_p: float
    top_k: int
    hidden_states: bool = False

    def with_k(self, k: int | None) -> SampleSet:
        return self if k is None else replace(self, k=k)

    def record(self, max_new_tokens: int, seed: int) -> dict[str, Any]:
        """What a logged sample says about how its set was drawn."""
        return {
            "k": self.k, "temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
            "max_new_tokens": max_new_tokens, "seed": seed,
        }


SAMPLE_SETS: dict[str, SampleSet] = {
    sample_set.name: sample_set
    for sample_set in (
        SampleSet("se", k=10, temperature=1.0, top_p=0.9, top_k=50),  # LN-PE, PE, semantic entropy, lex_sim
        SampleSet("sc", k=10, temperature=0.7, top_p=1.0, top_k=50),  # Self-Con, Deg, EigV, Ecc
        SampleSet("inside", k=10, temperature=0.5, top_p=0.99, top_k=5, hidden_states=True),
        SampleSet("mi", k=10, temperature=0.9, top_p=1.0, top_k=50),
        SampleSet("sar", k=5, temperature=1.0, top_p=1.0, top_k=50),
    )
}


def sample_set(name: str, k: int | None = None) -> SampleSet:
    try:
        return SAMPLE_SETS[name].with_k(k)
    except KeyError:
        raise ValueError(f"unknown sample set {name!r}; the sets are {', '.join(SAMPLE_SETS)}") from None
