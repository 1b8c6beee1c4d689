"""Rescore saved generations with SemGrad, without generating again.

- `rescore_samples(model, tokenizer, rows, ...)`: lm-eval sample rows (any backend) -> rows with
  semgrad-hf's `uncertainty` field, plus the uncertainty metrics per filter.
- `rescore_jsonl(model, tokenizer, rows, ...)`: plain {"prompt" | "messages", "response", "correct"}.
- `rescore_sample_files` / `rescore_jsonl_file`: the same for files, resumable (the CLI:
  `lm-eval-semgrad rescore`, see `rescore.cli`).

Everything heavy (torch, transformers) is imported on first use, so the CLI's parser stays light.
"""

from typing import Any

__all__ = [
    "BadRow",
    "RescoreError",
    "RescoreResult",
    "PromptEncoder",
    "rebuild_answer",
    "rescore_samples",
    "rescore_jsonl",
    "rescore_sample_files",
    "rescore_jsonl_file",
    "load_model",
]

_WHERE = {
    "BadRow": "rows",
    "RescoreError": "rows",
    "PromptEncoder": "encoding",
    "rebuild_answer": "encoding",
    "RescoreResult": "pipeline",
    "rescore_samples": "api",
    "rescore_jsonl": "api",
    "rescore_sample_files": "files",
    "rescore_jsonl_file": "files",
    "load_model": "model_loading",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
