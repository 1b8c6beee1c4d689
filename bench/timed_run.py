"""Run a benchmark's `lm_eval` command under GNU time: its output and peak RSS, offline (shared by the bench scripts)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path


def run(command: list[str], log: Path) -> tuple[str, int]:
    """Run under GNU time; (combined output, peak RSS in KiB)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    result = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, env=env)
    text = result.stdout + result.stderr
    log.write_text(text)
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({result.returncode}); see {log}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return text, int(peak.group(1)) if peak else -1
