"""Convention tests (as datasette has): hooks documented and tested; package layering kept."""

import ast
import re
from pathlib import Path

import pytest

from sage_core import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("sage_") and callable(getattr(hookspecs, name)))


def test_hookspecs_exist():
    assert {"sage_register_plugins", "sage_register_commands", "sage_session_started"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook):
    docs = (ROOT / "docs" / "hooks.md").read_text()
    assert re.search(rf"^### {hook}$", docs, re.M), f"docs/hooks.md has no section for {hook}"
    assert getattr(hookspecs, hook).__doc__, f"{hook} has no docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_exercised_by_a_test(hook):
    this = Path(__file__).resolve()
    users = [p for p in (ROOT / "tests").rglob("test_*.py") if p != this and hook in p.read_text()]
    assert users, f"no test mentions {hook}"


#: Which top-level packages each package may import (DESIGN.md section 1).
ALLOWED = {
    "sage_core": set(),
    "plugins": {"sage_core"},
    "bridges": {"sage_core"},
    "persistence": {"sage_core"},
    "orchestrator": {"sage_core", "bridges", "persistence"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_layering(package):
    project = set(ALLOWED) | {"examples"}
    for path in (ROOT / package).rglob("*.py"):
        bad = (imported_packages(path) & project) - ALLOWED[package] - {package}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}; {package} may import {sorted(ALLOWED[package])}"
