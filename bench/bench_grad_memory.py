#!/usr/bin/env python
"""The grad pass next to the generation it follows: time and peak memory, in one process.

What `semgrad-hf` does per generation batch, measured directly: greedy generation of SciQ answers
(the `semgrad_sciq` prompt in the chat template, up to --max-new-tokens, stopping at EOS, as HFLM
calls `generate`, with the lowest semantic layer's inputs recorded), then the grad pass on
generation's own prompt KV cache:
  generation                          : the default `semgrad_memory=generation` budget (rows per pass
                                        planned from the grad pass's measured memory per answer and
                                        prompt token and the batch's KV-cache size), the layers below
                                        the band taken from generation (what semgrad-hf does);
  generation_recomputing_lower_layers : the same budget, the layers below the band run again;
  unbounded                           : one pass over the whole batch, lower layers from generation.

Peak extra memory = peak CPU tensor bytes during the call minus what was allocated before it
(torch.profiler memory events, as in bench_score.py); generation's peak includes the KV cache it
returns. Each grad pass runs on a fresh generation (the pass crops and extends the cache).
Times: the median of --repeats runs without the profiler, the variants in rotating order.

  python bench/bench_grad_memory.py --batch-sizes 8,16 --json bench/results_grad_memory_run2.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_score import (  # noqa: E402
    SCIQ,
    default_model,
    load_model,
    load_tokenizer,
    peak_extra_cpu_alloc,
    sciq_chat_prompt,
)


def sciq_prompts(tokenizer, count: int, offset: int) -> list[list[int]]:
    lines = SCIQ.read_text().splitlines()[offset : offset + count]
    texts = [sciq_chat_prompt(tokenizer, json.loads(line)["query"]) for line in lines]
    return [tokenizer(text, add_special_tokens=False).input_ids for text in texts]


def main() -> None:
    import torch
    import transformers

    from lm_eval_semgrad.hf.options import DEFAULT_METHODS, computed_scores
    from lm_eval_semgrad.hf.response_tokens import answer_token_ids
    from lm_eval_semgrad.scoring import score_with_prefix_cache
    from lm_eval_semgrad.scoring.layer_inputs import LayerInputRecorder
    from lm_eval_semgrad.scoring.memory import cache_bytes, grad_pass_memory
    from lm_eval_semgrad.scoring.model_access import decoder_layers, graph_start_layer, upper_half_layers

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", default="8,16")
    parser.add_argument("--max-new-tokens", type=int, default=150)
    parser.add_argument("--position", type=int, default=-4, help="-4: semgrad-hf's default in SmolLM2's chat template")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant (median reported)")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scores = computed_scores(DEFAULT_METHODS)  # what semgrad-hf computes by default

    folder, gguf_file = default_model()
    model, tokenizer = load_model(folder, gguf_file, "cpu", "float32"), load_tokenizer(folder, gguf_file)
    eos = {tokenizer.eos_token_id, *([model.generation_config.eos_token_id] if isinstance(
        model.generation_config.eos_token_id, int) else model.generation_config.eos_token_id or [])}
    memory = grad_pass_memory(model, position=args.position)
    num_layers = len(decoder_layers(model))
    graph_start = graph_start_layer(num_layers, upper_half_layers(num_layers))
    print(f"# grad pass: {memory.per_token / 1024:.0f} KiB per answer token and {memory.per_prompt_token / 1024:.0f} "
          f"KiB per prompt token of a row, + {memory.fixed / 2**20:.1f} MiB ({memory.source}); "
          f"load {os.getloadavg()[0]:.1f}", flush=True)

    rows_out = []
    for offset, batch_size in enumerate(int(b) for b in args.batch_sizes.split(",")):
        prompts = sciq_prompts(tokenizer, batch_size, offset * 100)
        width = max(map(len, prompts))
        input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])

        recorder = functools.partial(LayerInputRecorder, model, graph_start, width + args.position)

        def generate():
            with torch.no_grad(), recorder() as record:
                output = model.generate(
                    input_ids=input_ids, attention_mask=mask, max_new_tokens=args.max_new_tokens, do_sample=False,
                    return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id, use_cache=True,
                )
            return output, record.inputs(fed_columns=output.sequences.shape[1] - 1)

        def answers_cache_inputs(generated):
            output, graph_inputs = generated
            answers = [answer_token_ids(row[width:].tolist(), [], eos, tokenizer.decode) for row in output.sequences]
            return answers, output.past_key_values, graph_inputs

        gen_peak = peak_extra_cpu_alloc(generate)
        gen_times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            generated = generate()
            gen_times.append(time.perf_counter() - start)
        gen_s = statistics.median(gen_times)
        answers, cache, _ = answers_cache_inputs(generated)
        budget = cache_bytes(cache)
        passes = len(memory.row_groups([len(a) - args.position for a in answers], width, budget))
        row = {"batch": batch_size, "prompt_width": width, "answer_lens": [len(a) for a in answers],
               "generate_s": gen_s, "generate_s_each": gen_times, "generate_peak_extra_bytes": gen_peak, "kv_cache_bytes": budget,
               "passes_generation_budget": passes, "grad": {}}
        del generated, cache
        variants = {  # label: (memory budget, lower layers' outputs taken from generation)
            "generation": ((memory, budget), True),
            "generation_recomputing_lower_layers": ((memory, budget), False),
            "unbounded": (None, True),
        }

        def grad_pass(label, answers, cache, graph_inputs):
            memory_budget, reuse_lower = variants[label]
            return score_with_prefix_cache(
                model, prompts, answers, cache, position=args.position, memory_budget=memory_budget,
                scores=scores, graph_inputs=graph_inputs if reuse_lower else None,
            )

        times = {label: [] for label in variants}
        for repeat in range(args.repeats):  # the variants in rotating order, each on a fresh generation
            labels = list(variants)
            for label in labels[repeat % len(labels) :] + labels[: repeat % len(labels)]:
                inputs = answers_cache_inputs(generate())
                start = time.perf_counter()
                grad_pass(label, *inputs)
                times[label].append(time.perf_counter() - start)
                del inputs
        for label in variants:
            peak = peak_extra_cpu_alloc(functools.partial(grad_pass, label, *answers_cache_inputs(generate())))
            seconds = statistics.median(times[label])
            row["grad"][label] = {"seconds": seconds, "seconds_each": times[label], "peak_extra_bytes": peak,
                                  "share_of_generate": seconds / gen_s}
        row["loadavg_1min"] = os.getloadavg()[0]
        rows_out.append(row)
        print(f"B={batch_size} P<={width} answers mean {sum(row['answer_lens']) / batch_size:.1f} max "
              f"{max(row['answer_lens'])}: generate {gen_s:.2f} s, peak {gen_peak / 2**20:.0f} MiB "
              f"(KV cache {budget / 2**20:.0f} MiB); grad pass ({passes} passes under the generation budget):", flush=True)
        for label, result in row["grad"].items():
            print(f"  {label}: {result['seconds']:.2f} s ({100 * result['share_of_generate']:.0f}% of generate), "
                  f"peak {result['peak_extra_bytes'] / 2**20:.0f} MiB", flush=True)
    if args.json:
        meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": platform.platform(),
                "cpu_count": os.cpu_count(), "threads": args.threads, "torch": torch.__version__,
                "transformers": transformers.__version__, "model": f"{folder}/{gguf_file} (float32)",
                "max_new_tokens": args.max_new_tokens, "position": args.position, "scores": scores,
                "grad_pass_bytes_per_answer_token": memory.per_token,
                "grad_pass_bytes_per_prompt_token": memory.per_prompt_token, "grad_pass_fixed_bytes": memory.fixed,
                "grad_pass_memory_source": memory.source}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows_out}, indent=1) + "\n")


if __name__ == "__main__":
    main()
