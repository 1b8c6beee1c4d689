"""The calibration record: what `calibrate` measured and chose, and how to tell whether it fits an eval's prompts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .prompts import chat_template_sha256, prompt_text, render_prompt
from .sps import band_average

FORMAT_VERSION = 1
LAYER_RULES = ("upper_half", "best_band")
EXAMPLE_QUESTION = "Which gas do plants absorb from the air?"


@dataclass
class Calibration:
    """What `calibrate` measured and chose; `position` and `layers` are what the harness applies.

    Tables: `sps[variant][i][j]` is the score at hidden-state index `i` (0..N) and position
    `positions[j]`; `band_sps[variant][j]` is its mean over `upper_half_layers`, `best_band_sps`
    the same over `best_band_layers`. `sps_rule` is the variant that chose `position` (files from
    before the paper's SPS was offered were chosen by "centred"); `position_by_sps` the position
    each selector would choose.
    """

    model_name: str
    num_layers: int
    apply_chat_template: bool
    prompt_template: str
    position: int
    layers: list[int]
    layers_rule: str
    upper_half_layers: list[int]
    best_band_layers: list[int]
    positions: list[int]
    sps: dict[str, list[list[float]]]
    band_sps: dict[str, list[float]]
    best_band_sps: dict[str, list[float]]
    n_questions: int
    paraphrases_per_question: int
    package_version: str
    created: str
    model_revision: str | None = None
    gguf_file: str | None = None
    chat_template_sha256: str | None = None
    add_special_tokens: bool | None = None
    example_prompt: str = ""
    position_tokens: list[str] = field(default_factory=list)
    data_source: str = ""
    sps_rule: str = "centred"
    position_by_sps: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def band_table(self, variant: str | None = None, layers: Sequence[int] | None = None) -> list[float]:
        """Per position, `variant` (default: the one that chose) averaged over `layers` (default: the applied `layers`)."""
        return band_average(self.sps[variant or self.sps_rule], self.layers if layers is None else layers)

    @property
    def prompt_suffix(self) -> str:
        """The prompt text after the question (e.g. "<|im_end|>\\n<|im_start|>assistant\\n"): an eval
        context that does not end with it was built differently from the calibration prompts."""
        question = prompt_text(EXAMPLE_QUESTION, self.prompt_template)
        cut = self.example_prompt.rfind(question)
        return self.example_prompt[cut + len(question) :] if cut >= 0 else ""

    def format_warnings(self, tokenizer: Any, context: str | None = None) -> list[str]:
        """Reasons to doubt that this calibration fits how `tokenizer` (and, when given, an eval
        prompt `context`) builds prompts; empty when everything matches."""
        problems = []
        if self.apply_chat_template and chat_template_sha256(tokenizer) != self.chat_template_sha256:
            problems.append("the tokenizer's chat template differs from the one the calibration was made with")
        if context is not None:
            suffix = self.prompt_suffix
            if self.apply_chat_template and suffix.strip() and not context.endswith(suffix):
                problems.append(
                    f"the eval prompt does not end with the calibration prompt's {suffix!r}: the calibration was made "
                    "with the chat template (--apply_chat_template)"
                )
            if not self.apply_chat_template and getattr(tokenizer, "chat_template", None):
                rendered = render_prompt(tokenizer, "x", True)
                tail = rendered[rendered.rfind("x") + 1 :]
                if tail.strip() and context.endswith(tail):
                    problems.append("the eval prompt uses the chat template, the calibration was made without it")
        return problems
