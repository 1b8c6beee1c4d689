"""Registration of `semgrad-hf` and of the packaged task folder with lm-eval 0.4.x."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

MODEL_NAME = "semgrad-hf"
MODEL_TARGET = "lm_eval_semgrad.harness.model:SemGradHFLM"


def task_config_dir() -> Path:
    """The YAML task folder: inside the installed package, or at the top of a source checkout."""
    package_dir = Path(__file__).resolve().parents[1]
    for candidate in (package_dir / "task_configs", package_dir.parent / "task_configs"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"lm-eval-semgrad's task_configs folder is missing next to {package_dir}; reinstall the package.")


def register_model() -> None:
    """Register `semgrad-hf` lazily (the class is imported only when a run asks for it)."""
    import lm_eval.models  # noqa: F401  (lm-eval's own models first, see module docstring of the autoload)
    from lm_eval.api.registry import model_registry

    if MODEL_NAME not in model_registry:
        model_registry.register(MODEL_NAME, target=MODEL_TARGET)


def register_task_path() -> None:
    """Make every TaskManager also index the packaged tasks, so no --include_path is needed."""
    from lm_eval.tasks import TaskManager

    if getattr(TaskManager.__init__, "_semgrad_wrapped", False):
        return
    original_init = TaskManager.__init__
    signature = inspect.signature(original_init)

    @functools.wraps(original_init)
    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        include_path = bound.arguments.get("include_path")
        user_paths = [] if include_path is None else list(include_path) if isinstance(include_path, (list, tuple)) else [include_path]
        # ours first: lm-eval lets later paths override earlier ones, so user tasks win on a name clash
        bound.arguments["include_path"] = [str(task_config_dir()), *user_paths]
        original_init(*bound.args, **bound.kwargs)

    __init__._semgrad_wrapped = True
    TaskManager.__init__ = __init__


def register() -> None:
    """Everything the plugin needs from lm-eval; idempotent. Call it when not installed with the .pth."""
    register_model()
    register_task_path()
