"""The SemGrad paper's set-up and published numbers (docs/method.md §7): what `reproduce` compares with.

Everything here is copied from the paper, not measured. `tests/test_reproduce.py` checks these
tables against docs/method.md §7.1, so the two cannot drift apart.
"""

from __future__ import annotations

#: the paper's datasets as this package's tasks, in its column order, and its question counts
PAPER_TASKS = {"semgrad_sciq": "SciQ", "semgrad_triviaqa": "TriviaQA", "semgrad_truthfulqa": "TruthfulQA"}
PAPER_N = {"semgrad_sciq": 1000, "semgrad_triviaqa": 11313, "semgrad_truthfulqa": 817}

#: the paper's models: Table 1's column name by checkpoint name (the last component of `pretrained`)
PAPER_MODELS = {
    "qwen3-4b-instruct-2507": "Qwen3-4B",
    "mistral-nemo-instruct-2407": "Mistral-Nemo-12B",
    "llama-3.1-8b-instruct": "Llama-3.1-8B",
}

#: Table 1, AUROC x 100 (correctness by BEM >= 0.7): row -> model column -> (SciQ, TriviaQA, TruthfulQA)
TABLE_1: dict[str, dict[str, tuple[float, float, float]]] = {
    "LN-PE": {"Qwen3-4B": (67.08, 80.00, 64.78), "Mistral-Nemo-12B": (76.68, 84.02, 66.29), "Llama-3.1-8B": (72.51, 84.53, 63.38)},
    "G-NLL": {"Qwen3-4B": (72.70, 81.01, 60.44), "Mistral-Nemo-12B": (76.83, 84.61, 63.67), "Llama-3.1-8B": (75.49, 85.91, 57.51)},
    "SAR": {"Qwen3-4B": (72.72, 81.52, 67.98), "Mistral-Nemo-12B": (76.57, 85.23, 68.55), "Llama-3.1-8B": (75.28, 85.65, 64.44)},
    "S.E.": {"Qwen3-4B": (56.88, 76.16, 63.10), "Mistral-Nemo-12B": (68.53, 80.64, 66.71), "Llama-3.1-8B": (70.27, 83.12, 59.59)},
    "ExGrad": {"Qwen3-4B": (71.34, 80.37, 63.77), "Mistral-Nemo-12B": (77.53, 84.53, 66.40), "Llama-3.1-8B": (74.11, 85.22, 62.00)},
    "ParaGrad": {"Qwen3-4B": (72.09, 82.02, 66.40), "Mistral-Nemo-12B": (77.99, 85.91, 70.54), "Llama-3.1-8B": (74.98, 86.49, 63.91)},
    "SemGrad": {"Qwen3-4B": (72.20, 80.40, 69.06), "Mistral-Nemo-12B": (75.55, 82.37, 72.27), "Llama-3.1-8B": (75.76, 84.72, 69.42)},
    "HybridGrad": {"Qwen3-4B": (72.83, 81.69, 69.61), "Mistral-Nemo-12B": (76.90, 84.13, 72.72), "Llama-3.1-8B": (76.31, 85.89, 69.25)},
}

#: Table 1's "avg" column (over the 3 models x 3 data sets); the last six rows are published as averages only
TABLE_1_AVERAGE = {
    "LN-PE": 73.25, "G-NLL": 73.13, "SAR": 75.33, "S.E.": 69.45, "ExGrad": 73.92, "ParaGrad": 75.59,
    "SemGrad": 75.75, "HybridGrad": 76.59, "P(True)": 65.20, "Self-Con": 70.51, "Deg": 71.99, "INSIDE": 66.73,
    "S.D.": 69.63, "M.I.": 72.01,
}

#: why Table 5 (AURC) has no paper column: its values are not in docs/method.md
TABLE_5_UNAVAILABLE = "the paper's Table 5 (AURC) values are not transcribed in docs/method.md §7, so no paper column"


def paper_model(pretrained: str) -> str | None:
    """Table 1's column for a checkpoint (a hub id or a local folder of that name), or None."""
    last = pretrained.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1].lower()
    return PAPER_MODELS.get(last)


def paper_auroc(row: str, model_column: str | None, task: str) -> float | None:
    """The paper's AUROC x 100 for one cell of Table 1, or None when it published none."""
    if model_column is None or task not in PAPER_TASKS:
        return None
    values = TABLE_1.get(row, {}).get(model_column)
    return None if values is None else values[list(PAPER_TASKS).index(task)]
