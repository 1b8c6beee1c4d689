"""Reports: leaderboard tables and plots of uncertainty quality across models and tasks.

`lm-eval-semgrad report OUTPUT_DIR...` (`report.cli`): tables (markdown/CSV/HTML) and plots from
lm-eval output folders, recomputed from the per-answer scores in the samples files. (The grid
runner `lm-eval-semgrad sweep` lives in `lm_eval_semgrad.sweep` and writes its report with this.)
With `--confidence`, `report.confidence` adds each method's cross-fitted P(correct) and its
calibration metrics (`metrics.confidence`).

Nothing here imports torch or lm_eval.
"""

from .loading import ReportError
from .table import Report, Row, build_report

__all__ = ["ReportError", "Report", "Row", "build_report"]
