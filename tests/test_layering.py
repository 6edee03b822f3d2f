"""Imports run one way (docs/architecture.md): no module imports a higher floor, no circles.

Every ``import``/``from`` of a ``gansn`` module is read with ``ast``, function-local ones
included, so a circle hidden in a function body is still found.
"""

from __future__ import annotations

import ast
from pathlib import Path

import gansn

ROOT = Path(gansn.__file__).parent

# floor of each top-level part of the package; a module may import its own floor or lower
FLOORS = {
    "cli": 6,
    "train": 6,
    "training": 5,
    "report": 5,
    "checkpoint": 4,
    "study": 4,
    "lipschitz": 3,
    "metrics": 3,
    "nn": 2,
    "data": 2,
    "losses": 2,
    "registry": 1,
    "sampling": 1,
    "utils": 1,
    "distributed": 1,
    "threads": 0,
    "config": 0,
    "errors": 0,
    "schema": 0,
    "rules": 0,
    "_torchvision_compat": 0,
}


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("gansn.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "gansn":
                out |= {f"gansn.{a.name}" for a in node.names}
            elif node.module.startswith("gansn."):
                out.add(node.module)
    return out


def _part(module: str) -> str:
    return module.split(".")[1]


def _graph() -> dict[str, set[str]]:
    files = [p for p in ROOT.rglob("*.py") if "conf" not in p.parts]
    return {_module(p): _imports(p) for p in files if _module(p) != "gansn"}


def test_every_part_of_the_package_has_a_floor():
    parts = {_part(m) for m in _graph()}
    assert parts == set(FLOORS), "give new packages a floor in FLOORS and docs/architecture.md"


def test_no_import_of_a_higher_floor():
    upward = [
        f"{m} -> {t}"
        for m, targets in _graph().items()
        for t in targets
        if FLOORS[_part(t)] > FLOORS[_part(m)]
    ]
    assert upward == []


def test_no_import_circles():
    graph = _graph()
    # resolve "gansn.x.y" imports to modules that exist (a name imported from a package)
    known = set(graph)

    def node(t: str) -> str | None:
        while t and t not in known:
            t = t.rpartition(".")[0]
        return t or None

    edges = {m: {n for t in ts if (n := node(t)) and n != m} for m, ts in graph.items()}
    # a package's __init__ re-exporting its own modules is not a circle of two ideas
    for m in edges:
        edges[m] = {n for n in edges[m] if not (n.startswith(m + ".") or m.startswith(n + "."))}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                cycles.append([*stack[stack.index(n) :], n])
            elif n not in state:
                visit(n, [*stack, n])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_the_checker_sees_function_local_imports(tmp_path):
    src = tmp_path / "x.py"
    src.write_text("def f():\n    from gansn.training.trainer import Trainer\n")
    assert _imports(src) == {"gansn.training.trainer"}
