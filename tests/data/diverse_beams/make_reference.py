"""Reference beams for tests/test_diverse_beams.py, from transformers 4.55.4's own group beam search.

Run with a transformers 4.55.4 environment (the last release whose `generate` runs diverse beam
search itself; torch 2.13 CPU was used), from the repository root:

    python tests/data/diverse_beams/make_reference.py

It builds two tiny random causal LMs from a fixed seed (Llama, and GPT-2 for a second architecture:
layer norms, learned positions, tied embeddings), saves them next to this file with `save_pretrained`
(safetensors, a few hundred KB), and writes `reference.json`: per case the prompt, the settings,
and what `generate(..., num_return_sequences=num_beams, output_scores=True, return_dict_in_generate=True)`
returned: the padded `sequences` and `sequences_scores`. The EOS ids of most cases are tokens the greedy
path emits early, so that beams do finish by EOS; `finished_by_eos` counts the beams that hold an EOS id.
(4.55's `beam_indices` cannot tell a beam's length: for groups after the first, a beam finished by EOS
gets one index too many, as `process` reads the first group's already extended indices.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

HERE = Path(__file__).resolve().parent
VOCAB = 96


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(1234)
    if name == "llama":
        config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                             initializer_range=0.25, bos_token_id=1, eos_token_id=2, pad_token_id=0)
        return LlamaForCausalLM(config).eval()
    config = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=128, initializer_range=0.25,
                        bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return GPT2LMHeadModel(config).eval()


def greedy(model: torch.nn.Module, prompt: list[int], steps: int) -> list[int]:
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt):]


def cases(path: list[int]) -> list[dict]:
    """Settings per prompt; `path` is the greedy continuation, whose early tokens serve as EOS ids."""
    base = {"num_beams": 10, "num_beam_groups": 10, "diversity_penalty": 1.0, "pad_token_id": 0,
            "length_penalty": 1.0, "early_stopping": False}
    return [
        {**base, "max_new_tokens": 6, "eos_token_id": [VOCAB - 1]},
        {**base, "max_new_tokens": 14, "eos_token_id": [path[1]]},
        {**base, "max_new_tokens": 12, "eos_token_id": [path[1], path[3], 5], "pad_token_id": path[1]},
        {**base, "max_new_tokens": 10, "num_beams": 4, "num_beam_groups": 2, "eos_token_id": [path[1]]},
        {**base, "max_new_tokens": 9, "num_beams": 6, "num_beam_groups": 3, "diversity_penalty": 0.5,
         "eos_token_id": [path[2], path[0]]},
        {**base, "max_new_tokens": 10, "num_beams": 4, "num_beam_groups": 2, "early_stopping": True,
         "eos_token_id": [path[1], path[2]]},
        {**base, "max_new_tokens": 8, "num_beams": 6, "num_beam_groups": 2, "early_stopping": "never",
         "length_penalty": 0.5, "eos_token_id": [path[1]]},
        {**base, "max_new_tokens": 8, "early_stopping": "never", "length_penalty": -1.0, "eos_token_id": [path[2]]},
    ]


def main() -> None:
    if transformers.__version__ != "4.55.4":
        sys.exit(f"run this with transformers 4.55.4, not {transformers.__version__}")
    out = {"transformers": transformers.__version__, "torch": torch.__version__, "models": {}, "cases": []}
    prompts = torch.Generator().manual_seed(7)
    for name in ("llama", "gpt2"):
        model = build(name)
        model.save_pretrained(HERE / name)
        probe = torch.randint(3, VOCAB, (1, 6), generator=prompts)
        with torch.no_grad():
            out["models"][name] = {"probe_ids": probe[0].tolist(),
                                   "probe_logits": model(probe).logits[0, -1, :8].tolist()}
        for length in (5, 9):
            prompt = torch.randint(3, VOCAB, (length,), generator=prompts).tolist()
            path = greedy(model, prompt, 4)
            for settings in cases(path):
                with torch.no_grad():
                    result = model.generate(
                        torch.tensor([prompt]), attention_mask=torch.ones(1, length, dtype=torch.long),
                        do_sample=False, num_return_sequences=settings["num_beams"], output_scores=True,
                        return_dict_in_generate=True, **settings,
                    )
                generated = result.sequences[:, length:].tolist()
                ends = [next((i for i, t in enumerate(row) if t in settings["eos_token_id"]), None) for row in generated]
                for row, end in zip(generated, ends):
                    assert end is not None or len(row) == settings["max_new_tokens"], "a beam neither ends nor runs out"
                    assert end is None or all(t == settings["pad_token_id"] for t in row[end + 1:]), "padding after EOS"
                out["cases"].append({
                    "model": name, "prompt_ids": prompt, "settings": settings,
                    "sequences": result.sequences.tolist(), "sequences_scores": result.sequences_scores.tolist(),
                    "finished_by_eos": sum(end is not None for end in ends),
                })
    (HERE / "reference.json").write_text(json.dumps(out, indent=1) + "\n")
    for case in out["cases"]:
        print(case["model"], len(case["prompt_ids"]), case["settings"]["num_beams"], case["settings"]["max_new_tokens"],
              "eos-finished:", case["finished_by_eos"])


if __name__ == "__main__":
    main()
