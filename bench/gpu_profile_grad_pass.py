#!/usr/bin/env python
"""Where the grad pass's time goes on a GPU: torch.profiler over score_with_prefix_cache (B=1 and 8, R=8).

Same random Llama-3.1-8B-shaped bf16 model as gpu_score.py; prints the top operators by CUDA and CPU time.
"""

from __future__ import annotations

import torch
from gpu_score import LLAMA_8B  # noqa: E402  (run from bench/ or with bench/ on sys.path)
from torch.profiler import ProfilerActivity, profile
from transformers import LlamaConfig, LlamaForCausalLM

from lm_eval_semgrad.scoring import score_with_prefix_cache


def main() -> None:
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(LlamaConfig(**LLAMA_8B)).to(torch.bfloat16).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    for batch_size in (1, 8):
        prompts = [torch.randint(1, 128000, (120,)).tolist() for _ in range(batch_size)]
        input_ids = torch.tensor(prompts, device="cuda")

        def run():
            with torch.no_grad():
                out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=8,
                                     min_new_tokens=8, do_sample=False, return_dict_in_generate=True)
            answers = [row[120:].tolist() for row in out.sequences]
            torch.cuda.synchronize()
            return out.past_key_values, answers

        cache, answers = run()
        score_with_prefix_cache(model, prompts, answers, cache, position=-4)  # warm-up
        cache, answers = run()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            score_with_prefix_cache(model, prompts, answers, cache, position=-4)
            torch.cuda.synchronize()
        print(f"=== B={batch_size}, R=8: grad pass from the generation cache")
        print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=18, max_name_column_width=50))


if __name__ == "__main__":
    main()
