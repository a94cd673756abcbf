"""``sage new-plugin``: write a pip-installable IRP plugin package that passes the conformance kit."""

from __future__ import annotations

import keyword
from pathlib import Path
from string import Template

from .errors import SageError

_PYPROJECT = Template('''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "sage-$name"
version = "0.1.0"
description = "$title: an IRP plugin for sage-irp"
requires-python = ">=3.10"
dependencies = ["sage-irp"]

[project.optional-dependencies]
test = ["pytest"]

[project.entry-points.sage]
$name = "$module"

[tool.setuptools]
packages = ["$module"]
''')

_MODULE = Template('''\
"""$title: an IRP plugin that refines a vector toward a target by damped steps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from sage_core import API_VERSION, IRPPlugin, IRPState, hookimpl


class $cls(IRPPlugin):
    """Moves ``x`` a fraction ``rate`` of the way to ``ctx["target"]`` (default zeros) each step.

    Energy is the mean squared distance to the target. Replace init_state/energy/step with
    your own refinement; keep ``step`` free of side effects on its input.
    """

    name = "$name"
    version = "0.1.0"
    api_version = API_VERSION

    def __init__(self, rate: float = 0.5) -> None:
        self.rate = rate

    @classmethod
    def example(cls) -> tuple[Any, dict[str, Any]]:
        """An input and context the conformance kit runs on."""
        return [1.0, -2.0, 3.0], {"target": [0.0, 0.0, 1.0]}

    def init_state(self, x0: Any, ctx: Mapping[str, Any]) -> IRPState:
        x = torch.as_tensor(x0, dtype=torch.float32).clone()
        target = torch.as_tensor(ctx.get("target", torch.zeros_like(x)), dtype=torch.float32)
        if target.shape != x.shape:
            raise ValueError(f"$name: target shape {tuple(target.shape)} != input shape {tuple(x.shape)}")
        return IRPState(x=x, carry={"target": target.clone()})

    def energy(self, state: IRPState) -> float:
        return float(((state.x - state.carry["target"]) ** 2).mean())

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        x = state.x + self.rate * (state.carry["target"] - state.x)
        return state.evolve(x=x, step=state.step + 1)


@hookimpl
def sage_register_plugins(register: Any) -> None:
    register($cls)
''')

_TEST = Template('''\
"""Runs the sage-irp conformance kit on $cls."""

from sage_core.testing import parametrize_with_checks

from $module import $cls


@parametrize_with_checks([$cls])
def test_conformance(plugin_check):
    plugin_check()
''')

_README = Template('''\
# sage-$name

An IRP plugin for [sage-irp](https://pypi.org/project/sage-irp/).

    pip install -e .
    sage plugins          # lists "$name"
    sage check $name      # runs the conformance kit
    pytest                # the same checks as tests
''')


def write_plugin_package(name: str, directory: Path | None = None) -> Path:
    """Create the package for plugin ``name`` in ``directory`` (default ``./sage-NAME``).

    Refuses a name that is not a Python identifier and a non-empty target directory.
    """
    if not name.isidentifier() or keyword.iskeyword(name) or not name.islower():
        raise SageError(f"plugin name {name!r} must be a lowercase Python identifier, e.g. 'my_refiner'")
    target = Path(directory) if directory is not None else Path(f"sage-{name}")
    if target.exists() and any(target.iterdir()):
        raise SageError(f"{target} exists and is not empty: choose another --dir")
    module = f"sage_{name}"
    values = {
        "name": name,
        "module": module,
        "cls": "".join(part.capitalize() for part in name.split("_")) + "Plugin",
        "title": name.replace("_", " ").title(),
    }
    files = {
        target / "pyproject.toml": _PYPROJECT,
        target / module / "__init__.py": _MODULE,
        target / "tests" / "test_conformance.py": _TEST,
        target / "README.md": _README,
    }
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values), encoding="utf-8")
    return target
