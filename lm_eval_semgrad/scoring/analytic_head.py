"""The answer losses' gradients at the output projection, in closed form and in chunks.

When the logits are the output projection's own output (no soft-capping or scaling after it),
dL/dlogits_t = s_t (q_t - onehot(y_t)) with s_t = 1/R for L_ce and H_t/R for L_w. Computing this
chunk by chunk, and dL_w/dh = g_w W_out from it, avoids autograd through a float32 (B, R, V)
logits tensor and its gradients (several GB for 8B models at realistic batch sizes): peak extra
memory is one chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .losses import ENTROPY_FLOOR
from .output_gradient import vocabulary_chunk

# float32 elements of one (tokens x vocabulary) chunk of the per-token statistics; each chunk makes
# about five temporaries, so this bounds their memory (CPU: 1 MiB each; GPU: fewer, larger launches)
CPU_LOGIT_CHUNK_ELEMENTS = 1 << 18
ACCELERATOR_LOGIT_CHUNK_ELEMENTS = 1 << 23


def logit_chunk_elements(device: torch.device) -> int:
    return CPU_LOGIT_CHUNK_ELEMENTS if device.type == "cpu" else ACCELERATOR_LOGIT_CHUNK_ELEMENTS


@dataclass(frozen=True)
class HeadGradients:
    """Per-token statistics and output-projection gradients of a batch over its answer columns."""

    token_nll: torch.Tensor  # (B, K), zero where `valid` is False
    token_entropy: torch.Tensor  # (B, K), zero where `valid` is False
    valid: torch.Tensor  # (B, K)
    hidden_grad: torch.Tensor  # (B, K, d): dL_w/dh at the projection's input, float32
    exgrad: torch.Tensor | None  # (B,): mean |dL_ce/dW_out|; None when not asked for
    weighted_exgrad: torch.Tensor | None  # (B,): mean |dL_w/dW_out| (G_w); None when not asked for


def logits_are_projection_output(logits: torch.Tensor, projection_output: torch.Tensor) -> bool:
    """True when the model returns its output projection's values unchanged (perhaps upcast)."""
    if logits.shape != projection_output.shape:
        return False
    return bool(torch.equal(logits[:, -1:].float(), projection_output[:, -1:].float()))


@torch.no_grad()
def analytic_head_gradients(
    logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, weight: torch.Tensor, hidden: torch.Tensor,
    *, exgrad: bool = True, weighted_exgrad: bool = True,
) -> HeadGradients:
    """Closed-form gradients for logits (B, K, V) = hidden (B, K, d) @ weight (V, d)^T.

    `exgrad` / `weighted_exgrad` ask for mean |dL_ce/dW_out| and mean |dL_w/dW_out|: each costs a
    (B, V, d) reduction, as much arithmetic as the logits themselves, so callers skip unused ones.
    """
    batch, columns, vocab = logits.shape
    width = hidden.shape[-1]
    lengths = valid.sum(-1).clamp(min=1).float()
    token_nll, token_entropy, log_normaliser = _token_statistics(logits, targets)
    zero = token_nll.new_zeros(())
    token_nll = torch.where(valid, token_nll, zero)
    token_entropy = torch.where(valid, token_entropy, zero)
    ce_scale = valid.float() / lengths[:, None]
    w_scale = token_entropy * ce_scale
    # the asked-for mean |dL/dW_out|; (s_t (q_t - y_t))^T h_t = (q_t - y_t)^T (s_t h_t): scale the
    # d-wide hidden states once, not every vocabulary chunk
    scales = {"exgrad": ce_scale, "weighted_exgrad": w_scale}
    wanted = [name for name, asked in (("exgrad", exgrad), ("weighted_exgrad", weighted_exgrad)) if asked]
    scaled_hidden = {name: hidden.float() * scales[name][..., None] for name in wanted}
    totals = {name: torch.zeros(batch, dtype=torch.float64, device=logits.device) for name in wanted}
    unscaled_hidden_grad = torch.zeros(batch, columns, width, dtype=torch.float32, device=logits.device)
    rows = vocabulary_chunk(logits.device, batch, vocab, width)
    chunk = max(1, min(logit_chunk_elements(logits.device) // (batch * columns), rows))
    # one reused buffer for the (B, chunk, d) gradient blocks: fresh multi-MB allocations each chunk
    # cost page faults on CPU (measured 4x slower bmm calls inside score())
    block_buffer = torch.empty(batch * chunk * width, dtype=torch.float32, device=logits.device)
    for start in range(0, vocab, chunk):
        stop = min(start + chunk, vocab)
        residual = (logits[:, :, start:stop].float() - log_normaliser[..., None]).exp_()  # q_t(v)
        in_chunk = (targets >= start) & (targets < stop)
        local = (targets - start).clamp(0, stop - start - 1).unsqueeze(-1)
        residual.scatter_add_(-1, local, -in_chunk.float().unsqueeze(-1))  # q - onehot, without a host sync
        unscaled_hidden_grad += residual @ weight[start:stop].float()
        block = block_buffer[: batch * (stop - start) * width].view(batch, stop - start, width)
        residual_t = residual.transpose(1, 2)
        for name, scaled in scaled_hidden.items():
            totals[name] += torch.bmm(residual_t, scaled, out=block).abs_().sum(dim=(1, 2)).double()
    means = {name: total / (vocab * width) for name, total in totals.items()}
    return HeadGradients(
        token_nll=token_nll, token_entropy=token_entropy, valid=valid,
        hidden_grad=unscaled_hidden_grad * w_scale[..., None],
        exgrad=means.get("exgrad"), weighted_exgrad=means.get("weighted_exgrad"),
    )


def _token_statistics(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-log q_t(y_t), H_t and logsumexp_t in float32, a few tokens (full vocabulary) at a time."""
    batch, columns, vocab = logits.shape
    flat_logits, flat_targets = logits.reshape(-1, vocab), targets.reshape(-1)
    step = max(1, logit_chunk_elements(logits.device) // vocab)
    nll, entropy, normaliser = [], [], []
    for start in range(0, flat_logits.shape[0], step):
        chunk = flat_logits[start : start + step].float()
        log_q = torch.log_softmax(chunk, dim=-1)
        nll.append(-log_q.gather(-1, flat_targets[start : start + step, None]).squeeze(-1))
        q = log_q.exp()
        entropy.append(-(q * q.clamp_min(ENTROPY_FLOOR).log()).sum(-1))
        normaliser.append(torch.logsumexp(chunk, dim=-1))
    shape = (batch, columns)
    return torch.cat(nll).view(shape), torch.cat(entropy).view(shape), torch.cat(normaliser).view(shape)
