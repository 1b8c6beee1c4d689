"""Per-token statistics and the two losses of SemGrad, computed in float32 from response logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch

ENTROPY_FLOOR = 1e-15  # the reference's clamp inside log(q) of the entropy


@dataclass(frozen=True)
class ResponseLosses:
    """Token-level statistics of a batch over the K right-aligned response columns.

    `valid` (B, K) marks each row's own response tokens; statistics elsewhere are zero (`where`, not a
    product, so that nothing computed at padding can leak in).
    `entropy_weighted` and `cross_entropy` are per-row losses L_w and L_ce (each row's mean over
    its own tokens), still attached to the graph so that their sum can be differentiated.
    """

    token_nll: torch.Tensor
    token_entropy: torch.Tensor
    valid: torch.Tensor
    entropy_weighted: torch.Tensor
    cross_entropy: torch.Tensor


def response_losses(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> ResponseLosses:
    """L_w = -(1/R) sum_t H_t log q_t(y_t) and L_ce = -(1/R) sum_t log q_t(y_t), per row.

    The entropy H_t is a detached weight: it scales each token's loss but is not differentiated.
    """
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    token_nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        probs = log_probs.exp()
        token_entropy = -(probs * probs.clamp_min(ENTROPY_FLOOR).log()).sum(-1)
    zero = token_nll.new_zeros(())
    token_nll = torch.where(valid, token_nll, zero)
    token_entropy = torch.where(valid, token_entropy, zero)
    lengths = valid.sum(-1).to(token_nll.dtype)
    return ResponseLosses(
        token_nll=token_nll,
        token_entropy=token_entropy,
        valid=valid,
        entropy_weighted=(token_entropy * token_nll).sum(-1) / lengths,
        cross_entropy=token_nll.sum(-1) / lengths,
    )
