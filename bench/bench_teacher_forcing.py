"""M.I.'s teacher-forced passes, every pair whole vs a shared prefix run once, side by side in one process.

    python bench/bench_teacher_forcing.py RUN/samples_semgrad_sciq_*.jsonl --questions 48 --output bench/results_teacher_forcing.json

M.I. scores every answer cluster's representative a2 after the iterative prompt of every a1 (C^2
pairs per question; docs/method.md §3.9). This script rebuilds those pairs, exactly as the scorer
does, from the samples a `semgrad-hf` run logged (set `mi`), and times `continuation_logprobs` on
SmolLM2-135M-Instruct (the embedded default) two ways, alternating over --rounds: each pair run whole
(prompt and answer in one row, the path before prefix sharing) and the shared path (each a1 prompt
once, its KV cache repeated for the C answers). It checks that both give the same log-probs and
records the median seconds of each, their ratio, the pair and token counts, the date and the machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_score import default_model, load_model, load_tokenizer  # noqa: E402


def mi_pairs(tokenizer, rows: list[dict]) -> tuple[list[list[int]], list[list[int]]]:
    """M.I.'s (prefix, continuation) token ids for the logged questions, as `SamplingScorer` builds them."""
    from lm_eval_semgrad.sampling import mutual_information
    from lm_eval_semgrad.sampling.scorer import _answer_ids, _chat_ids

    prefixes, continuations = [], []
    for row in rows:
        info = row["uncertainty"]
        samples = info["samples"]["mi"]
        try:
            weights = mutual_information.mu1([s["text"] for s in samples], [s["token_logprobs"] for s in samples])
            pairs = mutual_information.mu2_pairs(info["question"], list(weights))
        except ValueError:
            continue
        answers = [_answer_ids(tokenizer, a2) for _, a2 in pairs]
        if any(not ids for ids in answers):
            continue
        prefixes += [_chat_ids(tokenizer, prompt) for prompt, _ in pairs]
        continuations += answers
    return prefixes, continuations


def main() -> None:
    import torch

    from lm_eval_semgrad.sampling.teacher_forcing import _score_whole, continuation_logprobs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("samples", help="a samples_*.jsonl of a semgrad-hf run with semgrad_methods including mi")
    parser.add_argument("--questions", type=int, default=48, help="the first N logged questions")
    parser.add_argument("--batch_size", type=int, default=16, help="rows per forward pass (semgrad-hf: the batch size)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default="bench/results_teacher_forcing.json")
    args = parser.parse_args()
    rows = [json.loads(line) for line in Path(args.samples).read_text().splitlines()[: args.questions]]
    folder, gguf_file = default_model()
    model, tokenizer = load_model(folder, gguf_file, "cpu", "float32"), load_tokenizer(folder, gguf_file)
    prefixes, continuations = mi_pairs(tokenizer, rows)

    def whole() -> list[list[float]]:
        out: list[list[float]] = [[] for _ in prefixes]
        with torch.no_grad():
            _score_whole(model, prefixes, continuations, list(range(len(prefixes))), 1.0, args.batch_size, out)
        return out

    def shared() -> list[list[float]]:
        return continuation_logprobs(model, prefixes, continuations, batch_size=args.batch_size)

    seconds: dict[str, list[float]] = {"whole": [], "shared_prefix": []}
    values = {}
    for round_ in range(args.rounds):
        for name, run in (("whole", whole), ("shared_prefix", shared))[:: 1 if round_ % 2 == 0 else -1]:
            started = time.perf_counter()
            values[name] = run()
            seconds[name].append(time.perf_counter() - started)
    difference = max((abs(a - b) for x, y in zip(values["whole"], values["shared_prefix"]) for a, b in zip(x, y)), default=0.0)
    medians = {name: statistics.median(times) for name, times in seconds.items()}
    record = {
        "what": "M.I.'s teacher-forced passes on logged SciQ samples: every pair whole vs shared prefixes, one process",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}, torch threads "
                   f"{torch.get_num_threads()}",
        "samples_file": args.samples,
        "questions": len(rows),
        "pairs": len(prefixes),
        "distinct_prefixes": len({tuple(p) for p in prefixes}),
        "tokens_whole": sum(len(p) + len(c) for p, c in zip(prefixes, continuations)),
        "batch_size": args.batch_size,
        "seconds": seconds,
        "median_seconds": medians,
        "shared_over_whole": medians["shared_prefix"] / medians["whole"],
        "max_abs_logprob_difference": difference,
    }
    Path(args.output).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
