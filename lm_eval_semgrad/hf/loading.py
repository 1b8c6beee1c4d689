"""Load a Hugging Face causal LM and its tokenizer from lm-eval style model args, as HFLM loads them.

Used by the plugin's own commands (`rescore`, `calibrate`); `semgrad-hf` loads through HFLM itself.
The args are checked before anything heavy is read: the dtype must name a torch dtype, and the
model's depth is read from its config, so that a bad `semgrad_layers` fails in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

#: model args passed to `from_pretrained` (model and tokenizer) as HFLM passes them.
LOAD_ARGS = ("revision", "trust_remote_code", "gguf_file", "subfolder", "attn_implementation")
DTYPES = ("auto", "float32", "bfloat16", "float16", "float64")


def parse_dtype(value: Any) -> Any:
    """`auto`, a torch dtype, or its name (`bfloat16`, `torch.float16`); anything else is a ValueError naming the arg."""
    import torch

    if value is None or isinstance(value, torch.dtype):
        return "auto" if value is None else value
    name = str(value).strip().removeprefix("torch.")
    if name == "auto":
        return "auto"
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype={value!r} is not a floating-point torch dtype; use one of {', '.join(DTYPES)}.")
    return dtype


@dataclass
class ModelSource:
    """Where the weights and tokenizer come from, from the model args (`pretrained`, `tokenizer`, LOAD_ARGS)."""

    pretrained: str
    tokenizer: str | None
    dtype: Any
    load: dict[str, Any]
    add_bos_token: bool | None = None

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> ModelSource:
        load = {key: args[key] for key in LOAD_ARGS if args.get(key) not in (None, "")}
        for key in ("revision", "gguf_file", "subfolder"):
            if key in load:
                load[key] = str(load[key])
        add_bos = args.get("add_bos_token")
        return cls(
            pretrained=str(args["pretrained"]),
            tokenizer=None if args.get("tokenizer") in (None, "") else str(args["tokenizer"]),
            dtype=parse_dtype(args.get("dtype", "auto")),
            load=load,
            add_bos_token=None if add_bos is None else str(add_bos).lower() in ("true", "1"),
        )

    @cached_property
    def config(self) -> Any:
        """The model's (text) config, read without the weights."""
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(self.pretrained, **self.load)
        return getattr(config, "text_config", None) or config

    def num_layers(self) -> int:
        """The decoder depth from the model's config (no weights read)."""
        layers = getattr(self.config, "num_hidden_layers", None)
        if not isinstance(layers, int):
            raise ValueError(f"{self.pretrained}: its config names no num_hidden_layers; is it a causal LM?")
        return layers

    def load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        kwargs = {key: value for key, value in self.load.items() if key != "attn_implementation"}
        if self.tokenizer is not None:
            kwargs.pop("gguf_file", None)
        if self.add_bos_token is not None:
            kwargs["add_bos_token"] = self.add_bos_token
        return AutoTokenizer.from_pretrained(self.tokenizer or self.pretrained, **kwargs)

    def load_model(self, device: str | None = None) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(self.pretrained, dtype=self.dtype, **self.load)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return model.to(device).eval()
