"""Answer equivalence from a sentence-embedding model (a stand-in for the paper's BEM).

The paper labels an answer correct when its best BEM answer-equivalence score against any
reference is >= 0.7. BEM (a BERT classifier on question, reference and candidate) ships only as a
TensorFlow-Hub model; here the score is the cosine similarity of sentence embeddings instead:

- the model is any Hugging Face encoder folder the user names by path, meant for
  sentence-transformers' all-MiniLM-L6-v2 (mean pooling over the non-padding tokens, as that model
  was trained); it is loaded with plain `transformers` (`AutoTokenizer`, `AutoModel`), so
  sentence-transformers is not needed;
- `equivalence_score` = max over references of cosine(embedding(answer), embedding(reference));
- `equivalent` = score >= 0.7 (`EQUIVALENCE_THRESHOLD`, the paper's BEM threshold; cosine
  similarities and BEM probabilities are on different scales, so treat 0.7 as a default to check
  on your data, not as calibrated).

The question is not used (BEM sees it; an embedding of the answer alone does not). Empty answers
score 0.0, as do answers that are empty after `normalize_answer` ("The."). `torch` and `transformers` are imported only when a model is loaded.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .lexical import normalize_answer

__all__ = ["EQUIVALENCE_THRESHOLD", "SentenceEmbedder", "load_embedder", "equivalence_score"]

EQUIVALENCE_THRESHOLD = 0.7
DEFAULT_MAX_LENGTH = 256  # all-MiniLM-L6-v2's max_seq_length


class SentenceEmbedder:
    """Mean-pooled, L2-normalised sentence embeddings from a transformers encoder (CPU by default)."""

    def __init__(self, model_path: str | Path, device: str = "cpu", batch_size: int = 64) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.model_path = str(model_path)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.model = AutoModel.from_pretrained(self.model_path).to(self.device).eval()
        self.max_length = _max_length(self.model_path, self.tokenizer)

    def encode(self, texts: Sequence[str]) -> Any:
        """A (len(texts), hidden) float32 tensor of unit-length embeddings."""
        import torch

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    list(texts[start : start + self.batch_size]), padding=True, truncation=True,
                    max_length=self.max_length, return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                chunks.append(torch.nn.functional.normalize(pooled, p=2, dim=-1).cpu())
        return torch.cat(chunks) if chunks else torch.empty(0)

    def similarities(self, answer: str, references: Sequence[str]) -> list[float]:
        """Cosine similarity of the answer with each reference."""
        embeddings = self.encode([answer, *references])
        return (embeddings[1:] @ embeddings[0]).tolist()


def _max_length(model_path: str, tokenizer: Any) -> int:
    config = Path(model_path) / "sentence_bert_config.json"
    if config.is_file():
        try:
            return int(json.loads(config.read_text())["max_seq_length"])
        except (ValueError, KeyError, TypeError):
            pass
    model_max = getattr(tokenizer, "model_max_length", None)
    return min(int(model_max), 512) if isinstance(model_max, int) and model_max > 0 else DEFAULT_MAX_LENGTH


def _cache_key(model: str | Path) -> str:
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else str(model)


@functools.lru_cache(maxsize=4)
def _load_cached(key: str, device: str) -> SentenceEmbedder:
    return SentenceEmbedder(key, device=device)


def load_embedder(model: str | Path, device: str = "cpu") -> SentenceEmbedder:
    """Load (once per process, then from cache) the embedding model at `model` (a folder path)."""
    path = Path(model).expanduser()
    if not path.exists() and (str(model).startswith((".", "/", "~")) or "\\" in str(model)):
        raise FileNotFoundError(f"equivalence model folder {str(model)!r} does not exist")
    return _load_cached(_cache_key(model), device)


def equivalence_score(
    answer: str | None, references: str | Iterable[str] | None, model: str | Path | SentenceEmbedder
) -> float:
    """Best cosine similarity of the answer's embedding with any reference's (0.0 for empty input)."""
    answer = (answer or "").strip()
    if isinstance(references, str):
        references = [references]
    # an answer or reference with nothing left after normalisation ("", "The.", "...") never matches
    references = [r.strip() for r in (references or []) if isinstance(r, str) and normalize_answer(r)]
    if not normalize_answer(answer) or not references:
        return 0.0
    embedder = model if isinstance(model, SentenceEmbedder) else load_embedder(model)
    return float(max(embedder.similarities(answer, references)))
