"""Imports run one way, the way the data flows: a stage imports only the stages before it in LAYERS
and the shared packages at the bottom; imports under TYPE_CHECKING count too (a type-only import is
a dependency a reader follows, and a circle closed through one is still a circle); no module imports
inside a function to dodge such a cycle (only the command line, harness.cli and its one module per
command, imports lazily: each command imports the stages it runs when it runs, so that `harness
--help` starts at once)."""

from __future__ import annotations

import ast
from pathlib import Path

from support.paths import REPO

HARNESS = REPO / "harness"
LAZY_OK = "harness.cli."  # the command line and its modules: those whose name, dot added, starts so
# Bottom to top. The config names engines, candidate kinds, scorers and rubrics, and is validated
# against them when it is read (so `harness check` finds every problem before a model starts): the
# stages that declare those (serving, building, scoring) sit below planning; from planning on, the
# layers are the order a run takes.
LAYERS = (
    "core",
    "store",
    "serving",
    "building",
    "scoring",
    "planning",
    "generation",
    "judging",
    "verdict",
    "report",
    "runs",
    "waves",
    "pipeline",
    "cli",
)


def modules() -> dict[str, Path]:
    out = {}
    for path in HARNESS.rglob("*.py"):
        name = ".".join(path.relative_to(HARNESS.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(module-level imports, TYPE_CHECKING ones included; function-level imports) of harness
    modules."""
    top: set[str] = set()
    lazy: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            targets: list[str] = []
            if (
                isinstance(child, ast.ImportFrom)
                and child.module
                and child.module.startswith("harness")
            ):
                targets = [child.module] + [f"{child.module}.{a.name}" for a in child.names]
            elif isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            for target in targets:
                if target in known:
                    (lazy if inner else top).add(target)
            visit(child, inner)

    visit(ast.parse(path.read_text()), False)
    return top, lazy


def layer(module: str) -> int:
    parts = module.split(".")
    assert len(parts) > 1 and parts[1] in LAYERS, (
        f"{module} is in no layer: add its package to LAYERS"
    )
    return LAYERS.index(parts[1])


def graph() -> dict[str, set[str]]:
    known = modules()
    out: dict[str, set[str]] = {}
    for name, path in known.items():
        if name == "harness":
            continue
        top, lazy = imports(path, known)
        top.discard(name)  # a package importing its own submodules names itself
        assert f"{name}.".startswith(LAZY_OK) or not lazy, (
            f"{name} imports {sorted(lazy)} inside a function"
        )
        # importing a.b.c runs a and a.b first: a package's __init__ is a dependency too
        out[name] = top | {
            ".".join(t.split(".")[:i])
            for t in top
            for i in range(2, t.count(".") + 1)
            if not name.startswith(".".join(t.split(".")[:i]))
        }
    return out


def test_every_module_is_in_a_layer_and_imports_only_layers_below_or_its_own() -> None:
    wrong = [
        f"{name} ({LAYERS[layer(name)]}) imports {dep} ({LAYERS[layer(dep)]})"
        for name, deps in sorted(graph().items())
        for dep in sorted(deps)
        if layer(dep) > layer(name)
    ]
    assert wrong == []


def test_imports_have_no_cycles_and_no_lazy_dodges() -> None:
    edges = graph()
    state: dict[str, int] = {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join(trail + [node, nxt])}"
            if nxt not in state:
                walk(nxt, trail + [node])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            walk(name, [])


def test_the_layer_test_sees_type_only_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from harness.verdict.gate import Verdict\n"
    )
    top, _ = imports(module, modules())
    assert "harness.verdict.gate" in top
