"""The house rules that keep the code easy to change, checked on the source itself:
no import circles; sim_core's layers (base <- survey <- simulation <- evaluation <- report <-
commands) import only downwards; sim_core never imports finetune / dashboard / pages /
streamlit, finetune never the dashboard; no private name crosses a module boundary; pages/ holds
only the pages the app navigates to, none named like a package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sim_core", "finetune", "dashboard", "pages")
# sim_core's layers, ground first: a module may import from its own layer and those before it.
LAYERS = ("base", "survey", "simulation", "evaluation", "report", "commands")
ROOT_MODULES = {"sim_core", "sim_core.__main__"}      # all else lives in a layer


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
    planted["sim_core.base.errors"].add("sim_core.simulation.models")
    assert _cycle(planted) is not None


@pytest.mark.parametrize("package, forbidden", [
    ("sim_core", ("finetune", "dashboard", "pages", "streamlit")),
    ("finetune", ("dashboard", "pages", "streamlit")),
    ("dashboard", ("pages",)),
    ("pages", ("pages",)),              # a page shares code through dashboard, not another page
])
def test_packages_point_one_way(graph, package, forbidden):
    offenders = {name: sorted(i for i in imports if i.split(".")[0] in forbidden)
                 for name, imports in graph.items() if name.split(".")[0] == package}
    assert not {k: v for k, v in offenders.items() if v}


def _layer(module: str) -> int | None:
    """Position of a sim_core module's layer (None: not in sim_core or at its root)."""
    parts = module.split(".")
    if parts[0] != "sim_core" or len(parts) < 2 or parts[1] not in LAYERS:
        return None
    return LAYERS.index(parts[1])


def _downward_violations(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    out = {}
    for name, imports in graph.items():
        own = _layer(name)
        if own is None:
            continue
        above = sorted(i for i in imports if (other := _layer(i)) is not None and other > own)
        if above:
            out[name] = above
    return out


def test_sim_core_layers_import_only_downwards(graph):
    assert not _downward_violations(graph)


def test_layer_check_catches_an_upward_import(graph):
    planted = {k: set(v) for k, v in graph.items()}
    planted["sim_core.survey.slices"].add("sim_core.simulation.prompts")
    assert "sim_core.survey.slices" in _downward_violations(planted)


def test_sim_core_keeps_its_modules_in_layers(graph):
    """Only the package itself and `python -m sim_core` stay at the root; every layer is a
    package whose __init__ holds a docstring and nothing else (no re-exported names)."""
    stray = {n for n in graph if n.split(".")[0] == "sim_core" and n not in ROOT_MODULES
             and _layer(n) is None and not n.startswith("sim_core.data.")}  # data + its script
    assert not stray
    for layer in LAYERS[:-1]:
        tree = ast.parse((ROOT / "sim_core" / layer / "__init__.py").read_text(encoding="utf-8"))
        assert ast.get_docstring(tree) and len(tree.body) == 1, layer


def _private_crossings(path: Path, project: set[str]) -> list[str]:
    """`from project.module import _name`, and `module._name` on an imported project module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] in PACKAGES:
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{node.module}.{alias.name}")
                elif f"{node.module}.{alias.name}" in project:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names
                        if a.asname and a.name.split(".")[0] in PACKAGES}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in modules and node.attr.startswith("_") \
                and not node.attr.startswith("__"):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_no_private_name_crosses_a_module():
    project = set(_modules())
    offenders = {name: found for name, path in _modules().items()
                 if (found := _private_crossings(path, project))}
    assert not offenders


def test_private_check_catches_a_crossing(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("from sim_core.survey.slices import _respondent_frame\n"
                    "from sim_core.report import pdf_kit\nx = pdf_kit._table\n")
    assert _private_crossings(path, {"sim_core.report.pdf_kit"}) == [
        "sim_core.survey.slices._respondent_frame", "pdf_kit._table"]


def _top_level_names(path: Path) -> set[str]:
    """Names a module defines itself: functions, classes and assigned names."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for target in targets for n in ast.walk(target)
                      if isinstance(n, ast.Name)}
    return names


def _borrowed_imports(path: Path, modules: dict[str, Path]) -> list[str]:
    """`from project.module import name` where the module only imports `name` itself (a
    re-export): each name is imported from the module that defines it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
            home = _top_level_names(modules[node.module])
            found += [f"{node.module}.{a.name}" for a in node.names
                      if a.name not in home and f"{node.module}.{a.name}" not in modules]
    return found


def test_names_are_imported_from_their_home():
    modules = _modules()
    files = [*modules.values(), *ROOT.glob("tests/*.py"), *ROOT.glob("bench/*.py"),
             ROOT / "app.py"]
    offenders = {str(f.relative_to(ROOT)): found for f in files
                 if (found := _borrowed_imports(f, modules))}
    assert not offenders


def test_borrowed_import_check_catches_a_re_export(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("from sim_core.simulation.simulate import SimConfig, simulate\n")
    modules = _modules()
    assert _borrowed_imports(path, modules) == ["sim_core.simulation.simulate.SimConfig"]


def test_no_page_file_shadows_a_package():
    top_level = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    pages = {p.stem for p in (ROOT / "pages").glob("*.py")}
    assert not pages & (top_level | {"streamlit", "torch", "transformers", "peft"})


def test_pages_folder_holds_only_the_navigated_pages():
    """pages/ holds the page files st.navigation lists (dashboard.navigation) and nothing
    else: a helper there would be listed as a page by Streamlit's legacy pages/ mode."""
    tree = ast.parse((ROOT / "dashboard" / "navigation.py").read_text(encoding="utf-8"))
    navigated = {node.args[0].value for node in ast.walk(tree)
                 if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Page"
                 and node.args and isinstance(node.args[0], ast.Constant)}
    files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").iterdir()
             if p.name != "__pycache__"}
    assert len(navigated) == 5 and files == navigated
