#!/usr/bin/env python
"""How score()'s cost grows with prompt length, answer length and batch size (next to a forward pass).

Reads one or more `bench_score.py --json` files and draws a 2 x 3 figure: wall time (top) and peak
extra memory (bottom) of score() and of a plain no-grad forward pass of the same batch, against
each factor with the other two held at --batch/--response/--prompt. Each point is one measured
configuration (median of the timed rounds); the ratio score/forward is printed at every point.

  python bench/plot_cost_growth.py bench/results_cpu_run4a.json bench/results_cpu_run4b.json \
      --out bench/cost_growth.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

FACTORS = (
    ("prompt_len", "prompt length P (tokens)"),
    ("response_len", "answer length R (tokens)"),
    ("batch", "batch size B"),
)
SYMBOLS = {"prompt_len": "P", "response_len": "R", "batch": "B"}


def load_rows(paths: list[str]) -> list[dict]:
    rows = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        for row in data["rows"]:
            rows.append({**row, "prompt_len": row.get("prompt_len", 60), "source": path})
    return rows


def series(rows: list[dict], factor: str, fixed: dict[str, int]) -> list[dict]:
    """Rows that vary `factor` with the other factors at their fixed values, sorted by `factor`."""
    chosen = [r for r in rows if all(r[k] == v for k, v in fixed.items() if k != factor)]
    by_value = {r[factor]: r for r in chosen}  # a later file's row replaces an earlier one
    return [by_value[v] for v in sorted(by_value)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+", help="bench_score.py --json files")
    parser.add_argument("--batch", type=int, default=4, help="batch size held fixed (default 4)")
    parser.add_argument("--response", type=int, default=32, help="answer length held fixed (default 32)")
    parser.add_argument("--prompt", type=int, default=60, help="prompt length held fixed (default 60)")
    parser.add_argument("--out", default="bench/cost_growth.png")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = load_rows(args.results)
    fixed = {"batch": args.batch, "response_len": args.response, "prompt_len": args.prompt}
    figure, axes = plt.subplots(2, 3, figsize=(13, 7))
    for column, (factor, label) in enumerate(FACTORS):
        points = series(rows, factor, fixed)
        if len(points) < 2:
            sys.exit(f"plot_cost_growth: fewer than 2 configurations vary {factor} with {fixed}; "
                     "pass the JSON files of a run that covers them, or change --batch/--response/--prompt.")
        xs = [p[factor] for p in points]
        held = ", ".join(f"{SYMBOLS[k]}={v}" for k, v in fixed.items() if k != factor)
        time_axis, memory_axis = axes[0][column], axes[1][column]
        for method, style in (("forward", "--o"), ("score", "-o")):
            time_axis.plot(xs, [p["median_s"][method] * 1e3 for p in points], style, label=method)
            memory = [p["peak_extra_bytes"][method] for p in points]
            if all(m is not None for m in memory):
                memory_axis.plot(xs, [m / 2**20 for m in memory], style, label=method)
        for x, p in zip(xs, points):
            time_axis.annotate(f"{p['ratio']:.2f}x", (x, p["median_s"]["score"] * 1e3),
                               textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
        time_axis.set(title=f"time vs {SYMBOLS[factor]} ({held})", xlabel=label, ylabel="wall time (ms)")
        memory_axis.set(title=f"peak extra memory vs {SYMBOLS[factor]} ({held})", xlabel=label, ylabel="MiB above the weights")
        for axis in (time_axis, memory_axis):
            axis.set_xticks(xs)
            axis.legend(fontsize=8)
            axis.grid(alpha=0.3)
    figure.suptitle("score() vs a no-grad forward pass of the same batch (labels: score/forward time)")
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
