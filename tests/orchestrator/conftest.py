import pytest
import torch

from sage_core import get_registry, hookimpl

from .fakes import Costly, Coupled, Faulty, GlobalNoise, Listener, Verdict, make_store


class _TestPlugins:
    @hookimpl
    def sage_register_plugins(self, register):
        for cls in (Faulty, GlobalNoise, Costly, Coupled, Listener, Verdict):
            register(cls)


@pytest.fixture(scope="package", autouse=True)
def test_plugins():
    """Register the test plugins in-process for this package's tests (unregistered afterwards)."""
    registry = get_registry()
    assert registry.add(_TestPlugins(), name="orchestrator-test-plugins")
    try:
        yield registry
    finally:
        registry.remove("orchestrator-test-plugins")


@pytest.fixture
def store(tmp_path):
    return make_store(tmp_path / "sessions")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
