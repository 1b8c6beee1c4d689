"""The `custom_dataset` loader of the `semgrad_*` tasks (lm-eval 0.4.x).

lm-eval calls a task's `custom_dataset` as `custom_dataset(**metadata, **dataset_kwargs)`, where
`metadata` is the task YAML's `metadata` merged with the run's `--metadata` JSON and `--model_args`
(and with `TaskManager(metadata=...)` in Python). The semgrad task YAMLs put a `semgrad_source`
mapping into `dataset_kwargs` that says where the questions come from:

    semgrad_source: {task: semgrad_sciq, packaged: sciq/test.jsonl, split: test}
    semgrad_source: {task: semgrad_truthfulqa, path: truthfulqa/truthful_qa, name: generation, split: validation}

and this loader reads, in this order of precedence:

1. a local file named by the run's metadata key `<task>_data_files` (for example
   `--metadata '{"semgrad_truthfulqa_data_files": "tqa.jsonl"}'`): `.jsonl`, `.json` or `.parquet`,
   a path or a list of paths (concatenated); relative paths are relative to the working directory;
2. a file shipped inside this package (`packaged`, relative to `lm_eval_semgrad/data`), so the
   task works from any working directory and offline;
3. the Hugging Face hub (`datasets.load_dataset(path, name, split=split)`), or its local cache.

When the metadata names an `equivalence_model` (a sentence-embedding model folder), the model is
loaded once here, so that a wrong path fails before generation starts, and its absolute path is
stored in every document's `semgrad_equivalence_model` field: `process_results` only sees the
document, and this is how it learns which model to use. A `bem_model` (a BEM-style classifier,
`lm_eval_semgrad.correctness.bem`) is handled the same way, in `semgrad_bem_model`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent
EQUIVALENCE_MODEL_KEY = "equivalence_model"
EQUIVALENCE_COLUMN = "semgrad_equivalence_model"
BEM_MODEL_KEY = "bem_model"
BEM_COLUMN = "semgrad_bem_model"
DATA_FILES_SUFFIX = "_data_files"
#: the per-sample metrics that exist only when the run's metadata names a scoring model
MODEL_OF_METRIC = {
    "equivalence": EQUIVALENCE_MODEL_KEY, "equivalence_score": EQUIVALENCE_MODEL_KEY,
    "bem": BEM_MODEL_KEY, "bem_score": BEM_MODEL_KEY,
}


def data_files_key(task: str) -> str:
    """The metadata key that points `task` at a local file: `<task>_data_files`."""
    return f"{task}{DATA_FILES_SUFFIX}"


def _read_json(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".jsonl":
        try:
            content = json.loads(text)
        except json.JSONDecodeError:
            content = None  # JSON lines in a .json file
        else:
            if isinstance(content, Mapping) and isinstance(content.get("data"), list):
                content = content["data"]
            if not isinstance(content, list):
                raise ValueError(f"{path}: expected a JSON list of objects (or {{'data': [...]}}) or JSON lines")
            return list(content)
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not valid JSON ({error})") from error
    return records


def read_records(files: str | Path | Iterable[str | Path]) -> list[dict[str, Any]]:
    """Rows of one or more local `.jsonl` / `.json` / `.parquet` files, in order."""
    paths = [files] if isinstance(files, (str, Path)) else list(files)
    if not paths:
        raise ValueError("no data file given")
    records: list[dict[str, Any]] = []
    for given in paths:
        path = Path(given).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"data file {str(given)!r} not found (relative paths are relative to {Path.cwd()})")
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".json"):
            rows = _read_json(path)
        elif suffix == ".parquet":
            import pyarrow.parquet

            rows = pyarrow.parquet.read_table(path).to_pylist()
        else:
            raise ValueError(f"{path}: unsupported data file type {suffix!r}; use .jsonl, .json or .parquet")
        if not all(isinstance(row, Mapping) for row in rows):
            raise ValueError(f"{path}: every record must be a JSON object / table row")
        records.extend(dict(row) for row in rows)
    if not records:
        raise ValueError(f"data files {[str(p) for p in paths]} hold no records")
    return records


def _from_hub(source: Mapping[str, Any], task: str, split: str):
    import datasets

    try:
        return datasets.load_dataset(source["path"], source.get("name"), split=split)
    except Exception as error:
        key = data_files_key(task)
        raise RuntimeError(
            f"{task}: could not load {source['path']!r} ({source.get('name')}, split {split!r}) from the Hugging Face hub "
            f"or its cache: {error}. To use a local copy instead, pass "
            f"--metadata '{{\"{key}\": \"/path/to/{split}.jsonl\"}}' (.jsonl, .json or .parquet with the hub's columns)."
        ) from error


def load_task_dataset(semgrad_source: Mapping[str, Any] | None = None, **metadata: Any):
    """The `custom_dataset` of every semgrad task: a `DatasetDict` holding the one evaluation split."""
    import datasets

    if not isinstance(semgrad_source, Mapping) or "task" not in semgrad_source or "split" not in semgrad_source:
        raise ValueError("the task YAML must set dataset_kwargs.semgrad_source with at least 'task' and 'split'")
    task, split = str(semgrad_source["task"]), str(semgrad_source["split"])
    local_files = metadata.get(data_files_key(task))
    if local_files:
        dataset = datasets.Dataset.from_list(read_records(local_files))
    elif semgrad_source.get("packaged"):
        dataset = datasets.Dataset.from_list(read_records(DATA_DIR / str(semgrad_source["packaged"])))
    elif semgrad_source.get("path"):
        dataset = _from_hub(semgrad_source, task, split)
    else:
        raise ValueError(f"{task}: semgrad_source needs 'packaged' (a file in lm_eval_semgrad/data) or 'path' (a hub dataset)")

    from lm_eval_semgrad.correctness import load_bem, load_embedder

    for key, column, load in ((EQUIVALENCE_MODEL_KEY, EQUIVALENCE_COLUMN, load_embedder), (BEM_MODEL_KEY, BEM_COLUMN, load_bem)):
        dataset = _with_model_column(dataset, metadata.get(key), column, load)
    return datasets.DatasetDict({split: dataset})


def _with_model_column(dataset: Any, model: Any, column: str, load: Any) -> Any:
    """Load the scoring model now (a wrong path fails before generation; cached for process_results)
    and name it in every document's `column`."""
    if not model:
        return dataset
    path = Path(str(model)).expanduser()
    model = str(path.resolve()) if path.exists() else str(model)
    load(model)
    if column in dataset.column_names:
        dataset = dataset.remove_columns(column)
    return dataset.add_column(column, [model] * len(dataset))
