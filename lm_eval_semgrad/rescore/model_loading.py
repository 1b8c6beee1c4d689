"""`--model_args` of the rescore command: the HF checkpoint to load, and the `semgrad_*` settings.

Everything is checked before the weights are read (dtype, semantic position and layers against the
model's config, the calibration and confidence files); the weights load only when there is something to score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..confidence.applied import ConfidenceSetup, resolve_confidence
from ..hf.embedded_models import resolve_embedded_model
from ..hf.loading import LOAD_ARGS, ModelSource
from ..hf.options import SemGradSettings, computed_scores, pop_settings
from ..hf.semantic_setup import SemanticSetup, resolve_semantic_setup
from ..logs import get_logger
from .rows import RescoreError

logger = get_logger(__name__)

#: model args that change how prompts are encoded (see encoding.PromptEncoder).
ENCODING_ARGS = ("add_bos_token", "max_length")
#: model args of `hf`/`semgrad-hf` that do not apply to rescoring; accepted (with a warning) so that a run's args can be pasted.
GENERATION_ONLY_ARGS = ("batch_size", "max_batch_size", "device", "parallelize", "use_fast_tokenizer")
#: `semgrad_*` args of semgrad-hf's grad pass on generation's own cache: rescoring has no generation.
GENERATION_ONLY_SEMGRAD_ARGS = ("semgrad_reuse_cache",)
KNOWN_ARGS = ("pretrained", "tokenizer", "dtype", *LOAD_ARGS, *ENCODING_ARGS, *GENERATION_ONLY_ARGS)


@dataclass
class LoadedModel:
    """The rescore model: its tokenizer and settings at once, its weights on first use of `model`."""

    source: ModelSource
    tokenizer: Any
    settings: SemGradSettings
    args: dict[str, Any]  # the parsed model args (semgrad_* included), as recorded in the outputs
    semantic: SemanticSetup
    max_length: int | None  # None: from the source run's results JSON, else the model config
    device: str | None = None
    confidence: ConfidenceSetup | None = None  # the saved P(correct) maps applied (semgrad_confidence)
    _model: Any = field(default=None, repr=False)

    @property
    def model(self) -> Any:
        if self._model is None:
            logger.info("rescore: loading %s", self.source.pretrained)
            self._model = self.source.load_model(self.device)
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def position(self) -> int:
        return self.semantic.position

    @property
    def position_source(self) -> str:
        return self.semantic.position_source

    @property
    def layers(self) -> list[int] | None:
        return self.semantic.layers_list

    @property
    def add_bos_token(self) -> bool | None:
        return self.source.add_bos_token

    @property
    def computed_scores(self) -> tuple[str, ...]:
        return computed_scores(self.settings.methods)

    @property
    def sampled_methods(self) -> tuple[str, ...]:
        from ..sampling.scorer import SCORERS

        return tuple(name for name in self.settings.methods if name in SCORERS)

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes the stored scores: a resumed output must have been made with the same."""
        keys = ("pretrained", "tokenizer", "dtype", "revision", "gguf_file", "subfolder", "add_bos_token", "max_length")
        return {
            **{key: _plain(self.args.get(key)) for key in keys},
            "position": self.position,
            "layers": self.semantic.layers_field,
        }


def parse_model_args(text: str) -> dict[str, Any]:
    """lm-eval's `key=value,...` model args (values typed as lm-eval types them)."""
    from lm_eval.utils import simple_parse_args_string

    args = simple_parse_args_string(text or "")
    if not args.get("pretrained"):
        raise RescoreError("--model_args needs pretrained=PATH_OR_NAME (the HF model that generated, or any HF model)")
    return args


def load_model(model_args: str, device: str | None = None) -> LoadedModel:
    """The model named by `model_args` (HFLM's syntax), checked; its weights load on first use."""
    args = parse_model_args(model_args)
    recorded = dict(args)
    try:
        settings = pop_settings(args)
        confidence = resolve_confidence(settings.confidence, settings.methods)
    except ValueError as exc:
        raise RescoreError(str(exc)) from None
    unknown = sorted(set(args) - set(KNOWN_ARGS))
    if unknown:
        raise RescoreError(
            f"unsupported model arg(s) {', '.join(unknown)} for rescore; known: {', '.join(KNOWN_ARGS)} and semgrad_*"
        )
    ignored = [key for key in GENERATION_ONLY_ARGS if key in args]
    ignored += [key for key in GENERATION_ONLY_SEMGRAD_ARGS if key in settings.given]
    if ignored:
        logger.warning(
            "rescore: ignoring model arg(s) %s: they apply to generation (rescore scores saved answers in batches of "
            "--batch_size / semgrad_batch_size on --device)", ", ".join(ignored),
        )
    if confidence is not None:
        confidence.warn_if_other_model(args["pretrained"])
    args["pretrained"] = resolve_embedded_model(args["pretrained"], args)
    try:
        source = ModelSource.from_args(args)
        tokenizer = source.load_tokenizer()
        semantic = resolve_semantic_setup(settings, source.num_layers(), tokenizer, source.pretrained)
    except (ValueError, OSError) as exc:
        raise RescoreError(str(exc)) from None
    max_length = args.get("max_length")
    return LoadedModel(
        source=source, tokenizer=tokenizer, settings=settings, args=recorded, semantic=semantic,
        max_length=None if max_length is None else int(max_length), device=device, confidence=confidence,
    )


def default_max_length(config: Any, tokenizer: Any) -> int:
    """HFLM's max_length when none is given: model config, tokenizer, else 2048."""
    try:
        from lm_eval.models.utils import resolve_max_length

        return int(resolve_max_length(config, tokenizer, default=2048))
    except ImportError:  # older lm-eval: the plain model-config lookup
        for name in ("n_positions", "max_position_embeddings", "n_ctx"):
            value = getattr(config, name, None)
            if isinstance(value, int):
                return value
        return 2048


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
