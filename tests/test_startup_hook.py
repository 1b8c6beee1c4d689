"""The installed start-up hook (`lm_eval_semgrad_autoload.pth`) in fresh interpreters of this environment."""

from __future__ import annotations

import re
import subprocess
import sys

from harness_fixtures import offline_env


def python(code: str, *flags: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *flags, "-c", code], env=offline_env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def test_the_hook_imports_nothing_at_start_up():
    """Its own import only: every other Python start of the environment pays nothing for the plugin."""
    lines = python("pass", "-X", "importtime").stderr.splitlines()
    (index,) = [i for i, line in enumerate(lines) if re.search(r"\|\s+lm_eval_semgrad_autoload$", line)]
    self_us, cumulative_us = (int(part) for part in re.findall(r"(\d+)\s*\|", lines[index])[:2])
    assert self_us == cumulative_us, lines[max(0, index - 10): index + 1]  # no module imported beneath it
    assert "importlib.abc" not in python("import sys; print(sorted(sys.modules))").stdout


def test_lm_eval_packages_keep_their_own_loaders():
    out = python(
        "import importlib.resources, pkgutil\n"
        "print(len(list(importlib.resources.files('lm_eval.tasks').iterdir())))\n"
        "print(pkgutil.get_data('lm_eval.tasks', '__init__.py') is not None)\n"
        "import lm_eval.models\n"
        "from lm_eval.api.registry import model_registry\n"
        "print('semgrad-hf' in model_registry, 'hf' in model_registry)\n"
    ).stdout.split()
    assert int(out[0]) > 100 and out[1:] == ["True", "True", "True"]
