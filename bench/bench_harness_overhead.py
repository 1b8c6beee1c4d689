#!/usr/bin/env python
"""What SemGrad adds to a real lm_eval run, next to the stock `hf` model and a sampling baseline.

Runs, on the same model, questions, batch size and machine, one after the other:
  hf          : `lm_eval --model hf ... --tasks semgrad_sciq --limit N` (generation only)
  semgrad-hf  : the same with `--model semgrad-hf` (generation + grad pass from the generation cache)
  semgrad-hf (no reuse): `semgrad_reuse_cache=false` (the grad pass recomputes the prompt prefix)
(that one only with --no-reuse-run) and, in-process, a sampling baseline of the kind semantic entropy needs: 10 sampled answers per
question (HF generate, temperature 1, same prompts, same batch size in questions), generation only
(no NLI model), on the first --sampling-limit questions.

For each lm_eval run it records the wall time of the subprocess, lm-eval's own evaluation time
(`total_evaluation_time_seconds`, which excludes interpreter start-up), and the peak resident memory
of the process (VmHWM via wait4's rusage). Default model: the embedded SmolLM2-135M-Instruct.
Because separate runs on a shared machine vary by +-15%, each semgrad-hf run also reports what its
own log says its grad passes took (timed in the same process, memory probe and checks included):
grad-pass seconds / (evaluation seconds - grad-pass seconds) is the overhead without run-to-run noise.

  python bench/bench_harness_overhead.py --limit 200 --out bench/results_harness_overhead.json
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_score import sciq_chat_prompt  # this folder is on sys.path when run as a script

from lm_eval_semgrad.hf.embedded_models import EMBEDDED_MODELS


def smollm2_args() -> str:
    embedded = EMBEDDED_MODELS["smollm2-135m-instruct"]
    spec = importlib.util.find_spec(embedded.package)
    if spec is None:
        sys.exit(f"SmolLM2 is not installed: {embedded.install}")
    return f"pretrained={list(spec.submodule_search_locations)[0]},gguf_file={embedded.gguf_file}"


def run_lm_eval(model: str, model_args: str, limit: int, batch_size: int, workdir: Path) -> dict:
    output = workdir / f"out_{model}_{int(time.time() * 1000)}"
    command = [
        sys.executable, "-m", "lm_eval", "--model", model.split(":")[0], "--model_args", model_args,
        "--tasks", "semgrad_sciq", "--limit", str(limit), "--batch_size", str(batch_size),
        "--apply_chat_template", "--output_path", str(output),
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    log_path = output.with_suffix(".log")
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)  # rusage of this child alone: its peak RSS
    wall = time.perf_counter() - start
    log = log_path.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{log[-3000:]}")
    (results_path,) = glob.glob(str(output / "*" / "results_*.json"))
    results = json.loads(Path(results_path).read_text())
    table = log[log.rfind("|Tasks") if "|Tasks" in log else len(log):]
    cost = re.search(r"semgrad-hf: generation took ([\d.]+) s, the grad passes ([\d.]+) s", log)
    return {
        "model": model, "model_args": model_args, "wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024,
        "eval_s": float(results.get("total_evaluation_time_seconds", "nan")),
        # semgrad-hf's own log: its generate calls and grad passes timed inside the same process
        "generation_s": float(cost.group(1)) if cost else None, "grad_pass_s": float(cost.group(2)) if cost else None,
        "results": results["results"]["semgrad_sciq"], "table": table,
    }


def sampling_baseline(model_args: str, limit: int, batch_size: int, samples: int, max_new_tokens: int) -> dict:
    """Seconds per question to draw `samples` answers per question (generation only)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lm_eval_semgrad.data import data_path

    args = dict(item.split("=", 1) for item in model_args.split(","))
    tokenizer = AutoTokenizer.from_pretrained(args["pretrained"], gguf_file=args.get("gguf_file"))
    model = AutoModelForCausalLM.from_pretrained(args["pretrained"], gguf_file=args.get("gguf_file")).eval()
    tokenizer.padding_side = "left"
    questions = [json.loads(line)["query"] for line in data_path("sciq/test.jsonl").read_text().splitlines()[:limit]]
    prompts = [sciq_chat_prompt(tokenizer, question) for question in questions]
    torch.manual_seed(0)
    start = time.perf_counter()
    generated_tokens = 0
    for first in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[first : first + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(
                **batch, do_sample=True, temperature=1.0, num_return_sequences=samples,
                max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
            )
        generated_tokens += int((out[:, batch["input_ids"].shape[1]:] != tokenizer.pad_token_id).sum())
    seconds = time.perf_counter() - start
    return {"questions": len(prompts), "samples_per_question": samples, "max_new_tokens": max_new_tokens,
            "seconds": seconds, "seconds_per_question": seconds / len(prompts),
            "generated_tokens": generated_tokens}


def sampling_in_child(model_args: str, args: argparse.Namespace) -> dict:
    """The sampling baseline in its own process, so that its peak RSS compares with the lm_eval runs'."""
    command = [
        sys.executable, __file__, "--_sampling_child", "--model_args", model_args,
        "--batch_size", str(args.batch_size), "--sampling-limit", str(args.sampling_limit),
        "--sampling-samples", str(args.sampling_samples), "--sampling-max-new-tokens", str(args.sampling_max_new_tokens),
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the sampling baseline failed: {' '.join(command)}")
    return {**json.loads(stdout.strip().splitlines()[-1]), "peak_rss_mib": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_args", default=None, help="default: the embedded SmolLM2-135M-Instruct")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--sampling-limit", type=int, default=40)
    parser.add_argument("--sampling-samples", type=int, default=10)
    parser.add_argument("--sampling-max-new-tokens", type=int, default=150)
    parser.add_argument("--no-reuse-run", action="store_true", help="also run semgrad-hf with semgrad_reuse_cache=false")
    parser.add_argument("--rounds", type=int, default=1,
                        help="pairs of hf and semgrad-hf runs, in alternating order; the overhead is the median pair's")
    parser.add_argument("--no-sampling", action="store_true", help="skip the sampling baseline")
    parser.add_argument("--out", default=None)
    parser.add_argument("--_sampling_child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    model_args = args.model_args or smollm2_args()
    if args._sampling_child:
        print(json.dumps(sampling_baseline(model_args, args.sampling_limit, args.batch_size, args.sampling_samples,
                                           args.sampling_max_new_tokens)))
        return

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            pair = [("hf", ""), ("semgrad-hf", "")]
            configs = (pair if round_index % 2 == 0 else pair[::-1]) + (
                [("semgrad-hf", ",semgrad_reuse_cache=false")] if args.no_reuse_run and round_index == 0 else []
            )
            for model, extra in configs:
                run = run_lm_eval(model, model_args + extra, args.limit, args.batch_size, Path(tmp))
                run["label"] = model + (" (no cache reuse)" if extra else "")
                run["round"] = round_index
                runs.append(run)
                in_process = "" if run["grad_pass_s"] is None else (
                    f"; in-process: grad passes {run['grad_pass_s']:.1f} s = {100 * run['grad_pass_s'] / (run['eval_s'] - run['grad_pass_s']):.1f}% "
                    f"of the rest of the evaluation ({100 * run['grad_pass_s'] / run['generation_s']:.0f}% of generation)"
                )
                print(f"round {round_index}: {run['label']}: wall {run['wall_s']:.1f} s, lm-eval evaluation "
                      f"{run['eval_s']:.1f} s, peak RSS {run['peak_rss_mib']:.0f} MiB{in_process}", flush=True)
    sampling = None if args.no_sampling else sampling_in_child(model_args, args)
    if sampling is not None:
        print(f"sampling baseline: {sampling['seconds_per_question']:.2f} s/question "
              f"({sampling['samples_per_question']} samples, {sampling['questions']} questions), "
              f"peak RSS {sampling['peak_rss_mib']:.0f} MiB", flush=True)
    pairs = [
        ({r["label"]: r for r in runs if r["round"] == i}["hf"], {r["label"]: r for r in runs if r["round"] == i}["semgrad-hf"])
        for i in range(args.rounds)
    ]
    eval_overheads = sorted(s_run["eval_s"] / h_run["eval_s"] - 1 for h_run, s_run in pairs)
    wall_overheads = sorted(s_run["wall_s"] / h_run["wall_s"] - 1 for h_run, s_run in pairs)
    semgrad = pairs[0][1]
    in_process = sorted(
        r["grad_pass_s"] / (r["eval_s"] - r["grad_pass_s"]) for r in runs if r["label"] == "semgrad-hf" and r["grad_pass_s"]
    )
    summary = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": platform.platform(),
        "cpu_count": os.cpu_count(), "limit": args.limit, "batch_size": args.batch_size, "rounds": args.rounds,
        "overhead_eval_time": statistics.median(eval_overheads),
        "overhead_wall_time": statistics.median(wall_overheads),
        "overheads_eval_time_per_round": eval_overheads,
        "overheads_in_process": in_process,
        "runs": runs, "sampling": sampling,
    }
    print(f"semgrad-hf adds {100 * summary['overhead_eval_time']:.1f}% to lm-eval's evaluation time "
          f"({100 * summary['overhead_wall_time']:.1f}% of the whole command; rounds: "
          f"{', '.join(f'{100 * o:.1f}%' for o in eval_overheads)}); in-process, the grad passes add "
          f"{', '.join(f'{100 * o:.1f}%' for o in in_process)} to the rest of semgrad-hf's evaluation")
    print(semgrad["table"])
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
