"""mean |dL/dW_out| without materialising the V x d gradient of the output projection."""

from __future__ import annotations

import torch

CHUNK_ELEMENTS = 1 << 22  # 16 MiB of float32 per vocabulary chunk of the gradient


def mean_abs_output_weight_grad(logit_grads: torch.Tensor, final_hidden: torch.Tensor) -> float:
    """mean_{v,j} |sum_t g_{t,v} h_{t,j}| for one sample, i.e. mean |dL/dW_out| with W_out of shape V x d.

    `logit_grads` (R, V) holds dL/dlogits at the sample's response positions and `final_hidden`
    (R, d) the inputs of the output projection there. The gradient G^T H is formed one vocabulary
    chunk at a time, so peak extra memory is one chunk, not V x d.
    """
    grads = logit_grads.float()
    hidden = final_hidden.to(device=grads.device, dtype=torch.float32)
    vocab, width = grads.shape[1], hidden.shape[1]
    chunk = max(1, CHUNK_ELEMENTS // max(width, 1))
    total = torch.zeros((), dtype=torch.float64, device=grads.device)
    for start in range(0, vocab, chunk):
        block = grads[:, start : start + chunk].T @ hidden
        total += block.abs().sum(dtype=torch.float64)
    return float(total / (vocab * width))
