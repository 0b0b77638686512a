"""The layout shows the architecture: no import cycles (also none hidden in functions), runtime depends on
neither training nor export, folders are import paths, and runtime modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = ("runtime", "train", "export")


def modules() -> dict[str, Path]:
    """Every module of the distribution by import name: mbmrl.<folder path>."""
    out = {}
    for top in PACKAGES:
        for path in (ROOT / top).rglob("*.py"):
            parts = ["mbmrl", *path.relative_to(ROOT).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """mbmrl modules imported anywhere in the file (module level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known}
    return found - {name}


def graph() -> dict[str, set[str]]:
    """Import edges between mbmrl modules; a package's own __init__ is not an edge of its submodules."""
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def test_no_import_cycles_anywhere():
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g[n]):
            if state.get(m) == 1:
                cycle = stack[stack.index(m):] + [m]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            visit(n)


def test_runtime_imports_neither_training_nor_export():
    for name, deps in graph().items():
        if name.startswith("mbmrl.runtime"):
            bad = {d for d in deps if d.startswith(("mbmrl.train", "mbmrl.export"))}
            assert not bad, f"{name} imports {sorted(bad)}"
    for path in (ROOT / "runtime").rglob("*.py"):
        assert "import torch" not in path.read_text(), path


def test_runtime_modules_stay_small_and_the_session_knows_no_mode_names():
    for path in (ROOT / "runtime").rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 300, f"{path} has grown past 300 lines: split it"
    assert "mode ==" not in (ROOT / "runtime" / "session.py").read_text()


def test_every_package_ships_in_the_wheel():
    """setup.py finds packages: every folder with an __init__.py under the three top-level folders."""
    from setuptools import find_packages

    found = set(find_packages(str(ROOT), include=[f"{t}*" for t in PACKAGES]))
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for t in PACKAGES for p in (ROOT / t).rglob("__init__.py")}
    assert found == on_disk
