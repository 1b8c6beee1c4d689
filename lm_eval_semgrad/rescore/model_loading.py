"""`--model_args` of the rescore command: the HF checkpoint to load, and the `semgrad_*` settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..harness.chat_positions import resolve_position
from ..harness.embedded_models import resolve_embedded_model
from ..harness.settings import SemGradSettings, pop_settings
from .rows import RescoreError

logger = logging.getLogger(__name__)

#: model args passed to `from_pretrained` (model and tokenizer) as HFLM would.
LOAD_ARGS = ("revision", "trust_remote_code", "gguf_file", "subfolder", "attn_implementation")
#: model args that change how prompts are encoded (see encoding.PromptEncoder).
ENCODING_ARGS = ("add_bos_token", "max_length")
#: model args of `hf`/`semgrad-hf` that do not matter here; accepted so that a run's args can be pasted.
IGNORED_ARGS = ("batch_size", "max_batch_size", "device", "parallelize", "use_fast_tokenizer")
KNOWN_ARGS = ("pretrained", "tokenizer", "dtype", *LOAD_ARGS, *ENCODING_ARGS, *IGNORED_ARGS)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    settings: SemGradSettings
    args: dict[str, Any]  # the parsed model args (semgrad_* included), as recorded in the outputs
    position: int
    position_source: str
    add_bos_token: bool | None
    max_length: int | None  # None: from the source run's results JSON, else the model config

    @property
    def layers(self) -> list[int] | None:
        return None if self.settings.layers is None else list(self.settings.layers)

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes the stored scores: a resumed output must have been made with the same."""
        keys = ("pretrained", "tokenizer", "dtype", "revision", "gguf_file", "subfolder", "add_bos_token", "max_length")
        return {
            **{key: _plain(self.args.get(key)) for key in keys},
            "position": self.position,
            "layers": "upper_half" if self.layers is None else self.layers,
        }


def parse_model_args(text: str) -> dict[str, Any]:
    from lm_eval.utils import simple_parse_args_string

    args = simple_parse_args_string(text or "")
    if not args.get("pretrained"):
        raise RescoreError("--model_args needs pretrained=PATH_OR_NAME (the HF model that generated, or any HF model)")
    return args


def load_model(model_args: str, device: str | None = None) -> LoadedModel:
    """Load the model and tokenizer named by `model_args` (HFLM's syntax) onto `device`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    args = parse_model_args(model_args)
    recorded = dict(args)
    try:
        settings = pop_settings(args)
    except ValueError as exc:
        raise RescoreError(str(exc)) from None
    unknown = sorted(set(args) - set(KNOWN_ARGS))
    if unknown:
        raise RescoreError(
            f"unsupported model arg(s) {', '.join(unknown)} for rescore; known: {', '.join(KNOWN_ARGS)} and semgrad_*"
        )
    pretrained = resolve_embedded_model(args.pop("pretrained"), args)
    load = {key: args[key] for key in LOAD_ARGS if args.get(key) not in (None, "")}
    dtype = args.get("dtype", "auto")
    if isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype)
    tokenizer_kwargs = {k: v for k, v in load.items() if k != "attn_implementation"}
    if args.get("add_bos_token") is not None:
        tokenizer_kwargs["add_bos_token"] = bool(args["add_bos_token"])
    tokenizer = AutoTokenizer.from_pretrained(args.get("tokenizer") or pretrained, **tokenizer_kwargs)
    model = AutoModelForCausalLM.from_pretrained(pretrained, dtype=dtype, **load)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    try:
        position, source = resolve_position(settings.position, tokenizer)
    except ValueError as exc:
        raise RescoreError(str(exc)) from None
    max_length = args.get("max_length")
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        settings=settings,
        args=recorded,
        position=position,
        position_source=source,
        add_bos_token=None if args.get("add_bos_token") is None else bool(args["add_bos_token"]),
        max_length=None if max_length is None else int(max_length),
    )


def default_max_length(model: Any, tokenizer: Any) -> int:
    """HFLM's max_length when none is given: model config, tokenizer, else 2048."""
    try:
        from lm_eval.models.utils import resolve_max_length

        return int(resolve_max_length(getattr(model, "config", None), tokenizer, default=2048))
    except ImportError:  # older lm-eval: the plain model-config lookup
        for name in ("n_positions", "max_position_embeddings", "n_ctx"):
            value = getattr(getattr(model, "config", None), name, None)
            if isinstance(value, int):
                return value
        return 2048


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
