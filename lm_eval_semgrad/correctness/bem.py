"""BEM answer equivalence, the paper's correctness label, from a BERT-style pair classifier.

The paper calls an answer correct when its BEM score against some reference is >= 0.7. BEM
(Bulian et al. 2022) is a BERT classifier over (candidate, reference, question); the reference
code runs the TF-Hub model. Here any transformers sequence classifier of the same input format
works (a PyTorch conversion of BEM, or a model trained the same way), built exactly as the
reference's `generation_evaluation/metrics/bem.py` builds its inputs (docs/method.md §5.3):

- each of question, reference and candidate is lower-cased and WordPiece-tokenised on its own;
- when they hold more than 512 - 4 tokens together, the candidate loses its last tokens;
- the input is `[CLS] candidate [SEP] reference [SEP] question [SEP]` with token types 0 (CLS,
  candidate and its SEP), 1 (reference and its SEP) and 2 (question and its SEP);
- the score is softmax(logits)[1]; an answer's score is its best over the references; an empty
  answer is scored as the text "None", as the reference code does.

Padding: the reference pads to 512 and feeds no mask (the TF-Hub model masks id 0); here a batch
is padded to its longest row and the attention mask excludes the padding, which gives the same
logits for a model that masks its padding.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["BEM_THRESHOLD", "BEMClassifier", "bem_score", "load_bem"]

BEM_THRESHOLD = 0.7
MAX_LENGTH = 512
SEGMENTS = 3  # candidate, reference, question
EMPTY_CANDIDATE = "None"  # what the reference code scores in place of an empty answer


class NotBEMShaped(ValueError):
    """A model that loads but does not take BEM's inputs or give its two-class output."""


class BEMClassifier:
    """A BEM-style classifier and its lower-casing WordPiece tokenizer (CPU by default)."""

    def __init__(self, model_path: str | Path, device: str = "cpu", batch_size: int = 25) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.model_path = str(model_path)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, do_lower_case=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(self.model_path).to(self.device).eval()
        config = self.model.config
        problems = []
        if int(getattr(config, "num_labels", 0)) != 2:
            problems.append(f"it has {getattr(config, 'num_labels', None)} output labels, BEM has 2")
        if int(getattr(config, "type_vocab_size", 0) or 0) < SEGMENTS:
            problems.append(
                f"its type_vocab_size is {getattr(config, 'type_vocab_size', None)}, BEM's inputs use {SEGMENTS} token "
                "types (candidate, reference, question)"
            )
        if self.tokenizer.cls_token_id is None or self.tokenizer.sep_token_id is None:
            problems.append("its tokenizer has no [CLS]/[SEP] tokens")
        if problems:
            raise NotBEMShaped(f"bem_model {self.model_path!r} is not a BEM-style classifier: {'; '.join(problems)}")

    def _pieces(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(self, question: str, reference: str, candidate: str) -> tuple[list[int], list[int]]:
        """Input ids and token type ids of one (question, reference, candidate) triple."""
        q, r, c = self._pieces(question), self._pieces(reference), self._pieces(candidate)
        overflow = len(q) + len(r) + len(c) - (MAX_LENGTH - 4)
        if overflow > 0:
            c = c[:-overflow]
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        ids = [cls, *c, sep, *r, sep, *q, sep]
        types = [0] * (len(c) + 2) + [1] * (len(r) + 1) + [2] * (len(q) + 1)
        return ids, types

    def scores(self, examples: Sequence[tuple[str, str, str]]) -> list[float]:
        """softmax(logits)[1] of each (question, reference, candidate) triple."""
        import torch

        out: list[float] = []
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        with torch.inference_mode():
            for start in range(0, len(examples), self.batch_size):
                encoded = [self.encode(*example) for example in examples[start : start + self.batch_size]]
                width = max(len(ids) for ids, _ in encoded)
                ids = torch.full((len(encoded), width), pad, dtype=torch.long)
                types = torch.zeros((len(encoded), width), dtype=torch.long)
                mask = torch.zeros((len(encoded), width), dtype=torch.long)
                for row, (row_ids, row_types) in enumerate(encoded):
                    ids[row, : len(row_ids)] = torch.tensor(row_ids)
                    types[row, : len(row_types)] = torch.tensor(row_types)
                    mask[row, : len(row_ids)] = 1
                logits = self.model(
                    input_ids=ids.to(self.device), token_type_ids=types.to(self.device), attention_mask=mask.to(self.device)
                ).logits
                out.extend(torch.softmax(logits.double(), dim=-1)[:, 1].cpu().tolist())
        return out


@functools.lru_cache(maxsize=2)
def _load_cached(key: str, device: str) -> BEMClassifier:
    return BEMClassifier(key, device=device)


def load_bem(model: str | Path, device: str = "cpu") -> BEMClassifier:
    """Load (once per process) the BEM-style classifier at `model` (a folder, or a hub id when online).

    Raises ValueError naming the model and the fix when it is missing or not a 2-label classifier
    with 3 token types."""
    path = Path(model).expanduser()
    key = str(path.resolve()) if path.exists() else str(model)
    if not path.exists() and (str(model).startswith((".", "/", "~")) or "\\" in str(model)):
        raise ValueError(f"bem_model folder {str(model)!r} does not exist; {_HOW}")
    try:
        return _load_cached(key, device)
    except NotBEMShaped:
        raise
    except Exception as error:  # transformers raises OSError, KeyError, ... for what is not a classifier
        raise ValueError(f"bem_model {str(model)!r} could not be loaded ({type(error).__name__}: {error}); {_HOW}") from None


_HOW = (
    "pass --metadata '{\"bem_model\": \"/path/to/folder\"}' with a transformers BERT-style sequence classifier "
    "of BEM's input format ([CLS] candidate [SEP] reference [SEP] question [SEP], token types 0/1/2, 2 labels)"
)


def bem_score(
    answer: str | None, references: str | Iterable[str] | None, question: str, model: str | Path | BEMClassifier
) -> float:
    """The answer's best BEM score over the references."""
    if isinstance(references, str):
        references = [references]
    references = [r for r in (references or []) if isinstance(r, str)]
    if not references:
        raise ValueError(f"question {question!r}: no reference answer to compare with")
    candidate = answer if answer else EMPTY_CANDIDATE
    classifier = model if isinstance(model, BEMClassifier) else load_bem(model)
    return float(max(classifier.scores([(question, reference, candidate) for reference in references])))
