"""Cost of the NLI and cross-encoder steps at the real models' shapes, next to SemGrad's, in one `lm_eval` run.

    python bench/bench_nli_cost.py --limit 8 --output bench/results_nli_cost.json

No NLI model or cross-encoder can be downloaded here, so the script builds randomly initialised
models of the reference's configurations: `microsoft/deberta-v2-xlarge-mnli` (DeBERTa-v2, hidden
1536, 24 layers, 24 heads, intermediate 6144, vocabulary 128100, relative attention with c2p/p2c, a convolution layer,
3 labels) and `cross-encoder/stsb-roberta-large` (RoBERTa, hidden 1024, 24 layers, 16 heads,
intermediate 4096, vocabulary 50265, 1 label). Random weights cost what trained ones cost; their
scores mean nothing, so no AUROC is recorded. The texts are tokenised with SmolLM2's byte-level BPE
tokenizer (DeBERTa-v2's own is sentencepiece, not installed here), which gives English token counts
close to both models' own tokenizers.

One `semgrad-hf` run of SmolLM2-135M-Instruct on `semgrad_sciq` computes SemGrad and every NLI /
cross-encoder baseline; semgrad-hf logs what generation, the grad passes and each sampling, NLI and
cross-encoder stage took, all inside the same process, so every ratio to generation is from one run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import sys
from pathlib import Path

from timed_run import run  # bench/ is on sys.path when a script here runs

METHODS = "semgrad:hybridgrad:se:discrete_se:self_con:deg:eigv:ecc:sar:token_sar:sentence_sar:sd"
DEBERTA_V2_XLARGE = dict(
    vocab_size=128100, hidden_size=1536, num_hidden_layers=24, num_attention_heads=24, intermediate_size=6144,
    max_position_embeddings=512, relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=256,
    max_relative_positions=-1, norm_rel_ebd="layer_norm", share_att_key=True, type_vocab_size=0,
    position_biased_input=False, hidden_act="gelu", layer_norm_eps=1e-7, conv_kernel_size=3, conv_act="gelu",
    id2label={0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"},
    label2id={"CONTRADICTION": 0, "NEUTRAL": 1, "ENTAILMENT": 2},
)
ROBERTA_LARGE = dict(
    vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
    max_position_embeddings=514, type_vocab_size=1, num_labels=1, layer_norm_eps=1e-5,
)


def build_models(work: Path) -> tuple[Path, Path]:
    """The two randomly initialised models, saved with SmolLM2's tokenizer (ids < 49152 fit both vocabularies)."""
    import torch
    from transformers import (
        AutoTokenizer,
        DebertaV2Config,
        DebertaV2ForSequenceClassification,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    from lm_eval_semgrad.hf.embedded_models import resolve_embedded_model

    args: dict = {}
    folder = resolve_embedded_model("smollm2-135m-instruct", args)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=args.get("gguf_file"))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(0)
    built = []
    for name, config_class, model_class, config in (
        ("deberta-v2-xlarge-mnli-random", DebertaV2Config, DebertaV2ForSequenceClassification, DEBERTA_V2_XLARGE),
        ("stsb-roberta-large-random", RobertaConfig, RobertaForSequenceClassification, ROBERTA_LARGE),
    ):
        folder = work / name
        if not (folder / "config.json").is_file():
            model = model_class(config_class(pad_token_id=tokenizer.pad_token_id, **config)).eval()
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
        built.append(folder)
    return built[0], built[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--workdir", default="/tmp/bench_nli_cost")
    parser.add_argument("--output", default="bench/results_nli_cost.json")
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    nli, cross_encoder = build_models(work)
    lm_eval = str(Path(sys.executable).with_name("lm_eval"))
    started = datetime.datetime.now(datetime.timezone.utc)
    model_args = (f"pretrained=smollm2-135m-instruct,semgrad_methods={METHODS},semgrad_nli={nli},"
                  f"semgrad_cross_encoder={cross_encoder}")
    text, rss = run(
        [lm_eval, "--model", "semgrad-hf", "--model_args", model_args, "--tasks", "semgrad_sciq", "--limit",
         str(args.limit), "--batch_size", str(args.batch_size), "--apply_chat_template", "--log_samples",
         "--output_path", str(work / "run")], work / "semgrad.log",
    )
    generation, grad = (float(x) for x in re.search(r"generation took ([\d.]+) s, the grad passes ([\d.]+) s", text).groups())
    stages = {name: float(seconds) for name, seconds in re.findall(r"(\S+) ([\d.]+) s \(\d+%\)", text.split("sampling baselines:")[-1])}
    n = args.limit
    record = {
        "what": "NLI / cross-encoder steps at the real models' shapes (random weights) beside SemGrad, one semgrad-hf run",
        "date": started.isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}",
        "python": sys.version.split()[0],
        "command": f"lm_eval --model semgrad-hf --model_args {model_args} --tasks semgrad_sciq --limit {n} "
                   f"--batch_size {args.batch_size} --apply_chat_template --log_samples",
        "questions": n,
        "seconds": {"generation": generation, "grad_passes": grad, **stages},
        "seconds_per_question": {"generation": generation / n, "grad_passes": grad / n,
                                 **{name: seconds / n for name, seconds in stages.items()}},
        "ratio_to_generation": {"grad_passes": grad / generation, **{k: v / generation for k, v in stages.items()}},
        "peak_rss_mib": round(rss / 1024),
        "models": {"nli": DEBERTA_V2_XLARGE, "cross_encoder": ROBERTA_LARGE},
    }
    Path(args.output).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("seconds_per_question", "ratio_to_generation", "peak_rss_mib")}, indent=2))


if __name__ == "__main__":
    main()
