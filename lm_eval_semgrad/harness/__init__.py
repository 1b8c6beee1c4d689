"""The lm-eval side of the plugin: the `semgrad-hf` model, task and evaluator hooks, registration."""

from .registration import register

__all__ = ["register"]
