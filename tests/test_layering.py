"""Imports run one way: no module of harness imports, directly or through others, a module that imports it
back, and none imports inside a function to dodge such a cycle (only the command line imports lazily,
so that `harness --help` starts at once)."""

from __future__ import annotations

import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parent.parent / "harness"
LAZY_OK = {"harness.cli"}


def modules() -> dict[str, Path]:
    out = {}
    for path in HARNESS.rglob("*.py"):
        name = ".".join(path.relative_to(HARNESS.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(module-level imports, function-level imports) of harness modules; TYPE_CHECKING blocks do not count."""
    top: set[str] = set()
    lazy: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            targets: list[str] = []
            if isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("harness"):
                targets = [child.module] + [f"{child.module}.{a.name}" for a in child.names]
            elif isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            for target in targets:
                if target in known:
                    (lazy if inner else top).add(target)
            visit(child, inner)

    visit(ast.parse(path.read_text()), False)
    return top, lazy


def test_imports_have_no_cycles_and_no_lazy_dodges() -> None:
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        top, lazy = imports(path, known)
        top.discard(name)  # a package importing its own submodules names itself
        assert name in LAZY_OK or not lazy, f"{name} imports {sorted(lazy)} inside a function"
        # importing a.b.c runs a and a.b first: a package's __init__ is a dependency too
        graph[name] = top | {".".join(t.split(".")[:i]) for t in top for i in range(2, t.count(".") + 1)
                             if not name.startswith(".".join(t.split(".")[:i]))}
    state: dict[str, int] = {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join(trail + [node, nxt])}"
            if nxt not in state:
                walk(nxt, trail + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [])


def test_low_layers_do_not_reach_up() -> None:
    """The data types and the store import no stage."""
    known = modules()
    stages = {"harness.pipeline", "harness.cli", "harness.generation.generate", "harness.judging", "harness.verdict.gate",
              "harness.planning.plan", "harness.building.build", "harness.report"}
    for low in ("harness.core.request", "harness.core.sampling", "harness.store.sqlite", "harness.verdict.stats", "harness.scoring.base",
                "harness.serving.base", "harness.building.kinds.base"):
        top, _ = imports(known[low], known)
        assert not top & stages, f"{low} imports {sorted(top & stages)}"
