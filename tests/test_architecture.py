"""The house rules that keep the code easy to change, checked on the source itself:
no import circles, sim_core never imports finetune / pages / streamlit, no page file named
like a package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sim_core", "finetune", "pages")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every module named by an import anywhere in the file (function-level ones too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among the project's modules, or None."""
    project = set(graph)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node] & project - {node}):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(project):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles(graph):
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_cycle_finder_finds_a_planted_cycle(graph):
    planted = {k: set(v) for k, v in graph.items()}
    planted["sim_core.errors"].add("sim_core.models")
    assert _cycle(planted) is not None


@pytest.mark.parametrize("package, forbidden", [
    ("sim_core", ("finetune", "pages", "streamlit")),
    ("finetune", ("pages", "streamlit")),
])
def test_layers_point_one_way(graph, package, forbidden):
    offenders = {name: sorted(i for i in imports if i.split(".")[0] in forbidden)
                 for name, imports in graph.items() if name.split(".")[0] == package}
    assert not {k: v for k, v in offenders.items() if v}


def test_no_page_file_shadows_a_package():
    top_level = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    pages = {p.stem for p in (ROOT / "pages").glob("*.py")}
    assert not pages & (top_level | {"streamlit", "torch", "transformers", "peft"})
