"""`lm-eval-semgrad calibrate`: choose a model's semantic position and layers with the SPS.

    lm-eval-semgrad calibrate --model_args pretrained=PATH[,dtype=...,gguf_file=...,revision=...] \\
        [--apply_chat_template] [--paraphrases FILE.jsonl] [--limit 64] [--paraphrases_per_question 6] \\
        [--positions -8..-1] [--sps paper|centred] [--batch_size 16] [--device cpu|cuda] \\
        --output_path calib.json [--plot sps.png]

Then evaluate with `lm_eval --model semgrad-hf --model_args pretrained=PATH,semgrad_calibration=calib.json`
(and the same --apply_chat_template setting as here: the calibration is made for one prompt format).
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from ..cli_common import output_problem
from .choice import DEFAULT_LIMIT, DEFAULT_PARAPHRASES_PER_QUESTION, LAYER_RULES, calibrate
from .file_format import save_calibration
from .prompts import DEFAULT_PROMPT_TEMPLATE
from .record import Calibration
from .sps import SPS_RULES, VARIANTS

#: model args passed to from_pretrained; HFLM-only args (batch sizes, parallelism, ...) are ignored.
MODEL_KEYS = (
    "pretrained", "revision", "dtype", "gguf_file", "trust_remote_code", "tokenizer", "add_bos_token", "subfolder",
    "attn_implementation",
)

__all__ = ["add_arguments", "format_table", "parse_model_args", "parse_positions", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model_args", required=True,
        help="as for lm_eval: pretrained=PATH_OR_ID plus dtype (auto, float32, bfloat16, float16), gguf_file, "
             "revision, tokenizer, trust_remote_code, add_bos_token; other args are ignored with a warning",
    )
    parser.add_argument("--apply_chat_template", action="store_true",
                        help="build prompts with the tokenizer's chat template (use the same setting as the eval run)")
    parser.add_argument("--paraphrases", default=None,
                        help="JSONL with {\"query\", \"paraphrases\": [...]} per line (default: the packaged SciQ paraphrases)")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help=f"questions used (default {DEFAULT_LIMIT})")
    parser.add_argument("--paraphrases_per_question", type=int, default=DEFAULT_PARAPHRASES_PER_QUESTION,
                        help=f"paraphrases per question (default {DEFAULT_PARAPHRASES_PER_QUESTION})")
    parser.add_argument("--seed", type=int, default=None,
                        help="draw the --limit questions at random with this seed (default: the first ones)")
    parser.add_argument("--positions", default="-8..-1",
                        help="positions from the prompt end: a range like -8..-1 or a list like -1,-3,-5 (default -8..-1)")
    _accept_negative_position_values(parser)
    parser.add_argument("--prompt_template", default=DEFAULT_PROMPT_TEMPLATE,
                        help="user text with a {question} placeholder (default: the semgrad_* tasks' prompt)")
    parser.add_argument("--sps", choices=SPS_RULES, default="paper",
                        help="the SPS that chooses the position: the paper's formula (default) or the centred variant; "
                             "both are measured and recorded")
    parser.add_argument("--layer_rule", choices=LAYER_RULES, default="upper_half",
                        help="layers written as the choice: the reference upper half (default) or the best SPS band")
    parser.add_argument("--batch_size", type=int, default=16, help="prompts per forward pass (default 16)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)")
    parser.add_argument("--output_path", "-o", required=True, metavar="FILE", help="calibration JSON to write")
    parser.add_argument("--plot", default=None, help="also save a PNG heatmap of the SPS")


def _accept_negative_position_values(parser: argparse.ArgumentParser) -> None:
    """Let `--positions -8..-1` / `--positions -1,-3` through: argparse takes any other word that starts
    with '-' and is not a plain negative number for an option. (`--positions=-8..-1` always works.)"""
    matcher = getattr(parser, "_negative_number_matcher", None)
    if matcher is not None and hasattr(matcher, "pattern"):
        parser._negative_number_matcher = re.compile(rf"{matcher.pattern}|^-\d+(\.\.-?\d+|(,\s*-?\d+)+)$")


def parse_positions(text: str) -> list[int]:
    """'-8..-1' (inclusive range, listed from -1 down) or '-1,-3,-5'."""
    text = str(text).strip()
    try:
        if ".." in text:
            low, high = (int(part) for part in text.split("..", 1))
            low, high = min(low, high), max(low, high)
            positions = list(range(high, low - 1, -1))
        else:
            positions = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ValueError(f"--positions {text!r}: use a range like -8..-1 or a list like -1,-3,-5") from None
    if not positions or any(p >= 0 for p in positions) or len(set(positions)) != len(positions):
        raise ValueError(f"--positions {text!r}: give distinct negative positions (-1 = last prompt token)")
    return positions


def parse_model_args(text: str) -> tuple[dict[str, Any], list[str]]:
    """lm-eval's `simple_parse_args_string`, keeping the keys used to load the model; returns the
    kept args and the names of the ignored ones. A packaged model's short name (e.g.
    pretrained=smollm2-135m-instruct) becomes its folder and gguf_file, as in semgrad-hf."""
    from lm_eval.utils import simple_parse_args_string

    from ..hf.embedded_models import resolve_embedded_model

    parsed = simple_parse_args_string(text)
    if "pretrained" not in parsed or parsed["pretrained"] in (None, ""):
        raise ValueError(f"--model_args {text!r} has no pretrained=PATH_OR_ID")
    parsed["pretrained"] = resolve_embedded_model(str(parsed["pretrained"]), parsed)
    kept = {key: value for key, value in parsed.items() if key in MODEL_KEYS}
    ignored = [key for key in parsed if key not in MODEL_KEYS]
    return kept, ignored


def usage_command(typed_model_args: str, calibration_path: Path, apply_chat_template: bool) -> str:
    """The `lm_eval` command that uses a calibration, with the model args as the user typed them (so that a short
    name of an embedded model keeps working) and the packaged SciQ task: it runs as printed."""
    from lm_eval.utils import simple_parse_args_string

    typed = simple_parse_args_string(typed_model_args)
    model_args = ",".join(
        f"{key}={value}" for key, value in typed.items() if key in MODEL_KEYS and not key.startswith("semgrad_")
    )
    command = [
        "lm_eval --model semgrad-hf",
        f"--model_args {shlex.quote(f'{model_args},semgrad_calibration={calibration_path}')}",
        "--tasks semgrad_sciq --log_samples --output_path out/",
    ]
    if apply_chat_template:
        command.append("--apply_chat_template")
    return " ".join(command)


def format_table(cal: Calibration) -> str:
    """Band-averaged SPS variants (rows) per position (columns), and the choice."""
    width = 9
    header = f"{'':<24}" + "".join(f"{p:>{width}}" for p in cal.positions)
    lines = []
    if len(cal.position_tokens) == len(cal.positions):
        lines.append(f"{'token (example prompt)':<24}" + "".join(f"{t[:width - 1]!s:>{width}}" for t in cal.position_tokens))
    lines.insert(0, header)
    for band_name, rows in (("upper half", cal.band_sps), ("best band", cal.best_band_sps)):
        for variant in (v for v in VARIANTS if v in rows):
            label = f"{variant} ({band_name})"
            lines.append(f"{label:<24}" + "".join(f"{v:>{width}.3f}" for v in rows[variant]))
        if cal.best_band_layers == cal.upper_half_layers:
            break
    if cal.position_by_sps:
        lines.append("best position by SPS: " + ", ".join(f"{rule} {pos}" for rule, pos in cal.position_by_sps.items()))
    lines.append(
        f"choice ({cal.sps_rule} SPS): position {cal.position}, layers {cal.layers[0]}..{cal.layers[-1]} ({cal.layers_rule}; "
        f"upper half {cal.upper_half_layers[0]}..{cal.upper_half_layers[-1]}, "
        f"best band at {cal.position}: {cal.best_band_layers[0]}..{cal.best_band_layers[-1]}); "
        f"{cal.n_questions} questions x {cal.paraphrases_per_question} paraphrases"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..hf.loading import ModelSource
    from .paraphrases import read_paraphrases

    try:
        model_args, ignored = parse_model_args(args.model_args)
        source = ModelSource.from_args(model_args)
        positions = parse_positions(args.positions)
        items = read_paraphrases(args.paraphrases) if args.paraphrases else None
        for target in (args.output_path, args.plot):
            problem = None if target is None else output_problem(target, folder=False)
            if problem is not None:
                raise ValueError(problem)
    except (ValueError, OSError) as error:
        print(f"lm-eval-semgrad calibrate: {error}", file=sys.stderr)
        return 2
    if ignored:
        print(f"lm-eval-semgrad calibrate: ignoring model args that calibration does not use: {', '.join(ignored)}",
              file=sys.stderr)
    model, tokenizer = source.load_model(args.device), source.load_tokenizer()
    data_source = str(Path(args.paraphrases).resolve()) if args.paraphrases else None
    cal = calibrate(
        model, tokenizer, items,
        apply_chat_template=args.apply_chat_template,
        positions=positions,
        limit=args.limit,
        paraphrases_per_question=args.paraphrases_per_question,
        seed=args.seed,
        batch_size=args.batch_size,
        prompt_template=args.prompt_template,
        add_bos_token=source.add_bos_token,
        layer_rule=args.layer_rule,
        sps_rule=args.sps,
        model_name=model_args["pretrained"],
        model_revision=model_args.get("revision"),
        gguf_file=model_args.get("gguf_file"),
        data_source=data_source,
        progress=True,
        metadata={"device": str(next(model.parameters()).device)},
    )
    print(format_table(cal))
    path = save_calibration(cal, args.output_path)
    print(f"wrote {path}")
    if args.plot:
        from .plot import plot_sps

        print(f"wrote {plot_sps(cal, args.plot)}")
    print(f"use it with: {usage_command(args.model_args, path.resolve(), cal.apply_chat_template)}")
    return 0
