"""The layers of the code base, and no import cycles.

- ``nn/`` imports numpy and the standard library only;
- ``tasks/<area>/`` (the plain code) imports neither Prefect nor ``flows``;
- ``tasks/*.py`` (the Prefect tasks) do not import ``flows``;
- ``flows/*.py`` (the flows) import none of what runs beside them: the command line
  (``flows.cli``), its local processes (``flows.local``), the served page (``flows.serve``);
  those import the flows, never the other way round, and only the command line
  starts the others;
- no module imports, directly or through others, a module that imports it back,
  counting imports inside functions too (a lazy import hides a cycle, it does not
  remove it).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("nn", "tasks", "flows")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(path): path
    for package in PACKAGES
    for path in sorted((ROOT / package).rglob("*.py"))
    if "__pycache__" not in path.parts
}


def imports_of(name: str) -> set[str]:
    """Every module ``name`` imports, at any depth of its code (absolute names)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def project_imports(name: str) -> set[str]:
    """The project's modules that ``name`` imports (a package counts as its ``__init__``)."""
    return {other for other in imports_of(name) if other in MODULES and other != name}


def _top(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("name", [m for m in MODULES if _top(m) == "nn"])
def test_nn_imports_numpy_and_the_standard_library_only(name):
    allowed = {"numpy", "nn", "__future__", *sys.stdlib_module_names}
    assert {_top(m) for m in imports_of(name)} <= allowed, name


@pytest.mark.parametrize("name", [m for m in MODULES if m.count(".") >= 2 and _top(m) == "tasks"])
def test_area_code_imports_neither_prefect_nor_flows(name):
    assert not {_top(m) for m in imports_of(name)} & {"prefect", "flows"}, name


@pytest.mark.parametrize("name", [m for m in MODULES if m.count(".") == 1 and _top(m) == "tasks"])
def test_tasks_do_not_import_flows(name):
    assert "flows" not in {_top(m) for m in imports_of(name)}, name


BESIDE = ("flows.cli", "flows.local", "flows.serve")


def _beside(module: str) -> str | None:
    return next((part for part in BESIDE if module == part or module.startswith(part + ".")), None)


@pytest.mark.parametrize("name", [m for m in MODULES if _top(m) == "flows" and not _beside(m)])
def test_flows_do_not_import_what_runs_beside_them(name):
    assert not {m for m in imports_of(name) if _beside(m)}, name


@pytest.mark.parametrize("name", [m for m in MODULES if _beside(m) in BESIDE[1:]])
def test_only_the_command_line_reaches_across_the_parts(name):
    """``flows.local`` and ``flows.serve`` import neither the command line nor each other."""
    own = _beside(name)
    assert not {m for m in imports_of(name) if _beside(m) not in (None, own)}, name


def test_every_area_is_a_package_of_plain_code():
    areas = sorted(p.name for p in (ROOT / "tasks").iterdir() if (p / "__init__.py").is_file())
    assert areas == [
        "data",
        "fitting",
        "images",
        "outputs",
        "registry",
        "scoring",
        "settings",
        "tuning",
    ]


def test_no_import_cycles():
    graph = {name: project_imports(name) for name in MODULES}
    # A package's __init__ importing its own submodules is how packages re-export: an
    # edge from a submodule to its parent package is not a way back to it.
    for name, targets in graph.items():
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == []
