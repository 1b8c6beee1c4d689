"""The package's import graph: no cycles, and only the lm-eval integration imports the harness glue.

Every import counts, also the ones inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "lm_eval_semgrad"
HARNESS_FREE = (
    "scoring", "metrics", "calibration", "rescore", "report", "correctness", "sampling", "methods", "hf", "confidence",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py") if "task_configs" not in path.parts}


def imports_of(name: str) -> set[str]:
    """The package modules `name` imports (relative and absolute, at any depth of the file)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            for alias in node.names:
                candidate = f"{prefix}.{alias.name}"
                found.add(candidate if candidate in MODULES else prefix)
    return {module for module in found if module in MODULES and module != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def test_there_is_no_import_cycle():
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for child in sorted(GRAPH[node]):
            if state.get(child) == "open":
                cycles.append(path[path.index(child):] + [child])
            elif child not in state:
                visit(child, [*path, child])
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_only_the_lm_eval_integration_imports_the_harness_glue():
    offenders = {
        name: sorted(module for module in imports if module.startswith("lm_eval_semgrad.harness"))
        for name, imports in GRAPH.items()
        if name.split(".")[1:2] and name.split(".")[1] in HARNESS_FREE
    }
    assert not {name: found for name, found in offenders.items() if found}


def test_the_graph_is_read_at_all():
    """A parser that found nothing would pass the two tests above: it must see known edges."""
    assert "lm_eval_semgrad.scoring.core" in GRAPH["lm_eval_semgrad.scoring.memory"]
    assert "lm_eval_semgrad.methods" in GRAPH["lm_eval_semgrad.scoring.core"]
    assert "lm_eval_semgrad.harness.evaluator_hooks" in GRAPH["lm_eval_semgrad.harness.model"]
