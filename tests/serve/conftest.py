import pytest

from sage_core import get_registry, hookimpl

from .fakes import Countdown, SlowToy

pytest.importorskip("fastapi")


class _ServeTestPlugins:
    @hookimpl
    def sage_register_plugins(self, register):
        for cls in (Countdown, SlowToy):
            register(cls)


@pytest.fixture(scope="package", autouse=True)
def serve_plugins():
    """Register the test plugins in-process for this package's tests (unregistered afterwards)."""
    registry = get_registry()
    assert registry.add(_ServeTestPlugins(), name="serve-test-plugins")
    try:
        yield registry
    finally:
        registry.remove("serve-test-plugins")


@pytest.fixture(autouse=True)
def _countdown_reset(monkeypatch):
    monkeypatch.setattr(Countdown, "delay", 0.0)
    monkeypatch.setattr(Countdown, "calls", {"step": 0, "step_batch": 0})


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "sessions"
