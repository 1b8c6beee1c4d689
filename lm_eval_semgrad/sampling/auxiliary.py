"""The auxiliary models of the NLI- and cross-encoder-based baselines (docs/method.md §3.0.5, §3.0.6).

- `NLIModel`: any Hugging Face sequence-classification entailment model. Its label order is read
  from `config.id2label` (contradiction / neutral / entailment, any case and order); a model whose
  labels cannot be matched is refused, listing the labels it has. `probabilities(pairs)` gives
  softmax probabilities in the order [contradiction, neutral, entailment] whatever the model's own.
- `CrossEncoder`: a one-label sequence-classification model; `scores(pairs)` = sigmoid(logit), as
  sentence-transformers' `CrossEncoder.predict` computes it for one label.

Both load once, in inference mode, on the scored model's device or another; identical pairs are
scored once, and pairs are batched (`batch_size`), shortest first. The pair is tokenised as
`tokenizer(premise, hypothesis, truncation=True)`, padded per batch (a tokenizer without a
`model_max_length` truncates to the model's positions).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .sets import DEFAULT_AUX_BATCH_SIZE

NLI_CLASSES = ("contradiction", "neutral", "entailment")


def _load(kind: str, option: str, name_or_path: str, device: str | torch.device) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if _looks_like_a_path(name_or_path) and not Path(name_or_path).expanduser().is_dir():
        raise ValueError(f"{option}={name_or_path}: no such folder; pass the folder of a saved {kind} model "
                         "(with its config.json) or a Hugging Face hub id")
    device = _checked_device(device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForSequenceClassification.from_pretrained(name_or_path)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{option}={name_or_path}: the {kind} model could not be loaded ({error}). Without internet, download it "
            f"once elsewhere (`huggingface-cli download {name_or_path}`) and pass {option}=/path/to/its/folder, "
            "or point HF_HOME at a cache that holds it."
        ) from None
    return model.to(device).eval(), tokenizer


def _looks_like_a_path(name: str) -> bool:
    """Not a hub id ("org/name"): absolute, relative to . or ~, or deeper than one slash."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1


def _checked_device(device: str | torch.device) -> torch.device:
    """`semgrad_aux_device` as a torch device that exists here."""
    try:
        checked = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"semgrad_aux_device={device}: not a torch device ({error}); pass e.g. cpu, cuda or cuda:1") from None
    if checked.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"semgrad_aux_device={device}: this torch sees no CUDA device; pass semgrad_aux_device=cpu")
    return checked


def _max_pair_length(model: Any, tokenizer: Any) -> int | None:
    """The tokens a pair is truncated to: the tokenizer's `model_max_length` (what `truncation=True` uses); where a
    tokenizer sets none, the model's position embeddings less 2 (RoBERTa's offset), so that a long sampled answer is
    cut rather than crash the run."""
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < 1_000_000:
        return limit
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return positions - 2 if isinstance(positions, int) and positions > 2 else None


def _unique(pairs: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[int]]:
    """The distinct pairs (first-seen order) and, per input pair, its index among them."""
    index: dict[tuple[str, str], int] = {}
    positions = [index.setdefault(pair, len(index)) for pair in pairs]
    return list(index), positions


class _PairClassifier:
    def __init__(self, model: Any, tokenizer: Any, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.max_length = _max_pair_length(model, tokenizer)

    @torch.inference_mode()
    def _logits(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Logits per pair. The distinct pairs go through the model shortest first, so that a batch pads its pairs to
        a similar length (sampled answers range from one word to 150 tokens: in build order, the NLI and
        cross-encoder stages took half as long again, bench/RESULTS.md)."""
        unique, positions = _unique(pairs)
        device = next(self.model.parameters()).device
        logits = np.zeros((len(unique), self.model.config.num_labels), dtype=np.float32)
        if unique:
            lengths = [len(ids) for ids in self.tokenizer([p for p, _ in unique], [h for _, h in unique],
                                                          truncation=True, max_length=self.max_length)["input_ids"]]
            by_length = sorted(range(len(unique)), key=lengths.__getitem__)
            for start in range(0, len(by_length), self.batch_size):
                chunk = by_length[start : start + self.batch_size]
                encoded = self.tokenizer(
                    [unique[i][0] for i in chunk], [unique[i][1] for i in chunk], truncation=True,
                    max_length=self.max_length, padding=True, return_tensors="pt",
                )
                logits[chunk] = self.model(**{k: v.to(device) for k, v in encoded.items()}).logits.float().cpu().numpy()
        return logits[positions]


class NLIModel(_PairClassifier):
    """(premise, hypothesis) -> P(contradiction), P(neutral), P(entailment)."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = DEFAULT_AUX_BATCH_SIZE) -> None:
        super().__init__(model, tokenizer, batch_size)
        labels = {int(i): str(name).lower() for i, name in (getattr(model.config, "id2label", None) or {}).items()}
        found = {cls: [i for i, name in labels.items() if name.startswith(cls[:7])] for cls in NLI_CLASSES}
        if any(len(ids) != 1 for ids in found.values()) or len(labels) != 3:
            raise ValueError(
                f"the NLI model's labels {sorted(labels.values())} cannot be matched to contradiction, neutral and "
                "entailment (config.id2label); pass an NLI model whose labels name them."
            )
        self.order = [found[cls][0] for cls in NLI_CLASSES]

    @classmethod
    def load(cls, name_or_path: str, device: str | torch.device, batch_size: int = DEFAULT_AUX_BATCH_SIZE) -> NLIModel:
        return cls(*_load("NLI", "semgrad_nli", name_or_path, device), batch_size=batch_size)

    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """(len(pairs), 3) float64 softmax probabilities, columns contradiction, neutral, entailment."""
        logits = self._logits(pairs)[:, self.order].astype(np.float64)  # float32 rounds a near-certain class to 1.0
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)


class CrossEncoder(_PairClassifier):
    """(text a, text b) -> similarity in [0, 1]: the sigmoid of a one-label classifier's logit."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = DEFAULT_AUX_BATCH_SIZE) -> None:
        super().__init__(model, tokenizer, batch_size)
        if int(model.config.num_labels) != 1:
            raise ValueError(
                f"the cross-encoder has {model.config.num_labels} labels; semgrad_cross_encoder needs a one-label "
                "(similarity) sequence-classification model such as cross-encoder/stsb-roberta-large."
            )

    @classmethod
    def load(cls, name_or_path: str, device: str | torch.device, batch_size: int = DEFAULT_AUX_BATCH_SIZE) -> CrossEncoder:
        return cls(*_load("cross-encoder", "semgrad_cross_encoder", name_or_path, device), batch_size=batch_size)

    def scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        return (1.0 / (1.0 + np.exp(-self._logits(pairs)[:, 0]))).astype(np.float64)


def auxiliary_factories(settings: Any, model: Any) -> dict[str, Any]:
    """`nli` and `cross_encoder` loaders for a `SamplingScorer`, from the semgrad_* settings (on `semgrad_aux_device`,
    else the scored model's device)."""
    from ..scoring.model_access import model_device

    device = settings.aux_device or model_device(model)
    return {
        "nli": lambda: NLIModel.load(settings.nli, device, settings.aux_batch_size),
        "cross_encoder": lambda: CrossEncoder.load(settings.cross_encoder, device, settings.aux_batch_size),
    }
