"""pytest plugin (``pytest11`` entry point): fixtures for plugin authors' test suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..registry import Registry
from . import check_plugin


@pytest.fixture
def sage_registry() -> Iterator[Registry]:
    """An empty, isolated, non-strict registry: ``sage_registry.add(module)`` registers in-process."""
    registry = Registry(strict=False, disabled=())
    try:
        yield registry
    finally:
        for name in list(registry.sources()):
            registry.remove(name)


@pytest.fixture
def irp_conformance():
    """The conformance kit's :func:`~sage_core.testing.check_plugin`."""
    return check_plugin
