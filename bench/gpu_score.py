#!/usr/bin/env python
"""Cost of SemGrad on a GPU at a real model size: score() vs a no-grad forward, and the grad pass vs generation.

No real weights reach the lent GPU machine, so the model is a randomly initialised network of
Llama-3.1-8B's shape (32 layers, d=4096, V=128256, bf16). Time and memory do not depend on the
weights' values; answer lengths are fixed (generation is forced to R new tokens).

Per (batch size B, answer length R), with ~P-token prompts:
  forward    : model(prompt+answer) under no_grad (all logits), the cost of a plain scoring pass
  score      : lm_eval_semgrad.score(...) (its own no-grad prefix pass + suffix grad pass)
  generate   : model.generate(prompts, R new tokens, greedy, KV cache)
  grad_reuse : score_with_prefix_cache(...) on generation's own cache (what semgrad-hf adds)
Peak memory is torch.cuda.max_memory_allocated() minus what was allocated before the call.
It also checks that score() and the cache-reuse path agree (max relative difference).

  python bench/gpu_score.py --out results.json            # on a GPU (about 3-5 minutes)
  python bench/gpu_score.py --tiny --device cpu           # smoke test of the script itself
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lm_eval_semgrad import score
from lm_eval_semgrad.scoring import score_with_prefix_cache

LLAMA_8B = dict(
    vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
    num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0,
)
TINY = dict(
    vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(fn, device: str, repeats: int) -> tuple[float, float, object]:
    """(median seconds, peak extra MiB, last result) of fn()."""
    result = fn()  # warm-up
    times = []
    peak = float("nan")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        synchronize(device)
        start = time.perf_counter()
        result = fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
        if device.startswith("cuda"):
            peak = (torch.cuda.max_memory_allocated() - before) / 2**20
    return statistics.median(times), peak, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a tiny model, to test the script")
    parser.add_argument("--prompt-len", type=int, default=120)
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--answer-lengths", default="8,32,128")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--position", type=int, default=-4)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    torch.manual_seed(0)
    config = LlamaConfig(**(TINY if args.tiny else LLAMA_8B))
    dtype = torch.float32 if args.tiny else torch.bfloat16
    with torch.device(args.device):
        model = LlamaForCausalLM(config).to(dtype).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    weights_mib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    vd_mib = config.vocab_size * config.hidden_size * 4 / 2**20
    print(f"model: {'tiny' if args.tiny else 'Llama-3.1-8B shape'}, {dtype}, weights {weights_mib:.0f} MiB, "
          f"one V x d float32 tensor {vd_mib:.0f} MiB, device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""), flush=True)

    rows = []
    generator = torch.Generator().manual_seed(1)
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        lengths = [args.prompt_len - 10 * (i % 3) for i in range(batch_size)]  # mixed prompt lengths
        prompts = [torch.randint(1, config.vocab_size, (n,), generator=generator).tolist() for n in lengths]
        width = max(lengths)
        input_ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts], device=args.device)
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=args.device)
        for answer_len in [int(r) for r in args.answer_lengths.split(",")]:
            def generate():
                with torch.no_grad():
                    return model.generate(
                        input_ids=input_ids, attention_mask=attention, max_new_tokens=answer_len,
                        min_new_tokens=answer_len, do_sample=False, return_dict_in_generate=True,
                    )

            t_gen, m_gen, generated = measure(generate, args.device, args.repeats)
            answers = [row[width:].tolist() for row in generated.sequences]
            full = torch.cat([input_ids, generated.sequences[:, width:]], dim=1)
            full_mask = torch.cat([attention, torch.ones_like(generated.sequences[:, width:])], dim=1)

            def forward():
                with torch.no_grad():
                    return model(input_ids=full, attention_mask=full_mask, use_cache=False).logits.shape

            def scored():
                return score(model, prompts, answers, position=args.position, batch_size=batch_size)

            def reused():
                output = generate()  # a fresh cache each time (the call crops it)
                cache = getattr(output, "past_key_values", None) or getattr(output, "cache", None)
                synchronize(args.device)
                start = time.perf_counter()
                result = score_with_prefix_cache(model, prompts, answers, cache, position=args.position)
                synchronize(args.device)
                reused.seconds = time.perf_counter() - start
                return result

            t_fwd, m_fwd, _ = measure(forward, args.device, args.repeats)
            t_score, m_score, fresh = measure(scored, args.device, args.repeats)
            reuse_times = []
            for _ in range(args.repeats):
                from_cache = reused()
                reuse_times.append(reused.seconds)
            t_reuse = statistics.median(reuse_times)
            diff = max(
                abs(a[k] - b[k]) / max(abs(b[k]), 1e-30) for a, b in zip(from_cache, fresh) for k in b
            )
            row = {
                "batch_size": batch_size, "prompt_len": args.prompt_len, "answer_len": answer_len,
                "forward_s": t_fwd, "score_s": t_score, "score_over_forward": t_score / t_fwd,
                "generate_s": t_gen, "grad_pass_with_reuse_s": t_reuse,
                "grad_pass_over_generate": t_reuse / t_gen,
                "peak_forward_mib": m_fwd, "peak_score_mib": m_score, "peak_generate_mib": m_gen,
                "reuse_vs_fresh_max_rel_diff": diff,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "platform": platform.platform(),
        "torch": torch.__version__, "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "model": "tiny" if args.tiny else "random Llama-3.1-8B shape, bf16", "v_x_d_float32_mib": vd_mib,
        "rows": rows,
    }
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
