"""The Semantic Preservation Score (SPS) and the choice of position and layer band made from it.

For one hidden-state index i and one prompt position t, with h_q the representation of question q
and h_{q,k} that of its k-th paraphrase (the same eval prompt around a different wording):

- `paper` (the paper's Sec. 3.2 formula, docs/method.md §2.2): raw cosines; S_within is, per
  question, the mean cosine over all K_q (K_q + 1) ordered pairs of distinct texts among the
  question and its K_q paraphrases, averaged over questions; S_across is the mean cosine over the
  Q (Q - 1) ordered pairs of different original questions; SPS = S_within - S_across.
- `centred`: subtract the mean representation mu(i, t) over every encoded text (all questions and
  all their paraphrases) from each vector, then
  SPS = mean_q [ mean_k cos(h_q, h_{q,k}) - mean_{r != q} cos(h_q, h_r) ].
  Centring removes the component every prompt shares (at chat-template positions different
  questions have raw cosine 0.99+), so the score measures what distinguishes questions.
- `raw`: the centred formula on the uncentred vectors.
- `retrieval`: paraphrase-retrieval accuracy: the share of paraphrases h_{q,k} whose nearest
  question (centred cosine, among all questions) is their own question q (strictly nearer than
  every other question: ties count as misses, so identical vectors score 0, not 1/Q).

`paper`, `centred` and `raw` lie in [-2, 2], `retrieval` in [0, 1]. `paper` and `centred` can choose
the position (`SPS_RULES`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

VARIANTS = ("paper", "centred", "raw", "retrieval")
SPS_RULES = ("paper", "centred")
TIE_TOLERANCE = 1e-9

__all__ = [
    "SPS_RULES",
    "TIE_TOLERANCE",
    "VARIANTS",
    "band_average",
    "best_contiguous_band",
    "choose_position",
    "sps_tables",
]


def sps_tables(
    question_features: torch.Tensor, paraphrase_features: torch.Tensor, paraphrase_mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """SPS variants as float64 tensors [layers, positions].

    question_features: [Q, L, P, d]; paraphrase_features: [Q, K, L, P, d] (rows beyond a question's
    own number of paraphrases are ignored); paraphrase_mask: [Q, K] bool, True for real paraphrases.
    """
    if question_features.dim() != 4 or paraphrase_features.dim() != 5:
        raise ValueError("expected question features [Q, L, P, d] and paraphrase features [Q, K, L, P, d]")
    num_q, num_layers, num_pos, _ = question_features.shape
    if paraphrase_features.shape[0] != num_q or paraphrase_features.shape[2:] != question_features.shape[1:]:
        raise ValueError(f"shapes differ: questions {tuple(question_features.shape)}, paraphrases {tuple(paraphrase_features.shape)}")
    if num_q < 2:
        raise ValueError("the SPS compares questions with each other: give at least 2 questions")
    mask = paraphrase_mask.to(torch.bool)
    counts = mask.sum(1)
    if bool((counts == 0).any()):
        raise ValueError("every question needs at least one paraphrase")
    weights = mask.to(torch.float64)
    total_texts = num_q + float(weights.sum())
    eye = torch.eye(num_q, dtype=torch.bool)
    own = torch.arange(num_q)
    tables = {name: torch.empty((num_layers, num_pos), dtype=torch.float64) for name in VARIANTS}
    for layer in range(num_layers):
        questions = question_features[:, layer].to(torch.float64)  # [Q, P, d]
        paraphrases = paraphrase_features[:, :, layer].to(torch.float64) * weights[:, :, None, None]  # [Q, K, P, d]
        mean = (questions.sum(0) + paraphrases.sum((0, 1))) / total_texts  # [P, d]
        for name, shift in (("raw", None), ("centred", mean)):
            q = questions if shift is None else questions - shift
            p = paraphrases if shift is None else paraphrases - shift
            qn, pn = F.normalize(q, dim=-1), F.normalize(p, dim=-1)
            same = torch.einsum("qpd,qkpd->qkp", qn, pn)
            same = (same * weights[:, :, None]).sum(1) / counts[:, None]  # [Q, P]
            gram = torch.einsum("qpd,rpd->pqr", qn, qn)  # [P, Q, Q]
            other = gram.masked_fill(eye, 0.0).sum(-1) / (num_q - 1)  # [P, Q]
            tables[name][layer] = (same - other.T).mean(0)
            if name == "raw":
                tables["paper"][layer] = _paper_within(qn, pn, mask) - other.mean(1)
            if name == "centred":
                for pos in range(num_pos):
                    sims = torch.einsum("qkd,rd->qkr", pn[:, :, pos], qn[:, pos])  # [Q, K, Q]
                    own_sims = sims[own, :, own]  # [Q, K]
                    rivals = sims.masked_fill(eye[:, None, :], float("-inf")).amax(-1)
                    hits = (own_sims > rivals) & mask  # strictly nearer than every other question
                    tables["retrieval"][layer, pos] = hits.sum() / mask.sum()
    return tables


def _paper_within(questions: torch.Tensor, paraphrases: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per position: mean over questions of the mean cosine over the ordered pairs of distinct texts
    among a question and its paraphrases. questions [Q, P, d] and paraphrases [Q, K, P, d] are unit
    vectors (masked-out paraphrases are zero and drop out of the sums; `mask` [Q, K] counts them)."""
    texts = torch.cat([questions[:, None], paraphrases], dim=1)  # [Q, 1 + K, P, d]
    gram = torch.einsum("qipd,qjpd->qpij", texts, texts)
    distinct = ~torch.eye(texts.shape[1], dtype=torch.bool)
    pair_sums = (gram * distinct).sum((-2, -1))  # [Q, P]: all ordered pairs i != j
    n_texts = 1 + mask.sum(1).to(torch.float64)  # [Q]
    return (pair_sums / (n_texts * (n_texts - 1))[:, None]).mean(0)


def band_average(table: Sequence[Sequence[float]] | torch.Tensor, layers: Sequence[int]) -> list[float]:
    """Per position: the mean of `table[i][position]` over the hidden-state indices `layers`."""
    tensor = torch.as_tensor(table, dtype=torch.float64)
    if not layers:
        raise ValueError("empty layer band")
    return tensor[list(layers)].mean(0).tolist()


def choose_position(scores: Sequence[float], positions: Sequence[int]) -> int:
    """The position with the highest score; among scores within TIE_TOLERANCE of the best, the one
    nearest the prompt end (-1 first)."""
    if len(scores) != len(positions) or not positions:
        raise ValueError("scores and positions must be non-empty and of equal length")
    best = max(scores)
    tied = [pos for pos, value in zip(positions, scores) if value >= best - TIE_TOLERANCE]
    return max(tied)


def best_contiguous_band(column: Sequence[float], num_layers: int, width: int | None = None) -> list[int]:
    """The contiguous band of `width` hidden-state indices (default floor(N/2), the size of the
    upper half) with the highest mean of `column` (one score per index 0..N), searched inside
    1..N-1: the embeddings h^(0) and the final normed output h^(N) are excluded, as in the
    reference band. Ties go to the higher band (nearer the reference upper half)."""
    if len(column) != num_layers + 1:
        raise ValueError(f"expected {num_layers + 1} scores (hidden states 0..{num_layers}), got {len(column)}")
    width = max(1, num_layers // 2) if width is None else int(width)
    low, high = 1, num_layers - 1  # inclusive range searched
    if num_layers < 2 or width > high - low + 1:
        low, high = 0, num_layers - 1
        width = min(width, num_layers)
    best_start, best_value = None, None
    for start in range(low, high - width + 2):
        value = sum(column[start : start + width]) / width
        if best_value is None or value > best_value + TIE_TOLERANCE:
            best_start, best_value = start, value
        elif value >= best_value - TIE_TOLERANCE:  # a tie: prefer the higher band, keep the best value
            best_start, best_value = start, max(value, best_value)
    assert best_start is not None
    return list(range(best_start, best_start + width))
