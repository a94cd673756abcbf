import pytest

from sage_core import get_registry, hookimpl

from .fakes import Countdown, SlowToy, ThreadRecorder

pytest.importorskip("fastapi")


class _ServeTestPlugins:
    @hookimpl
    def sage_register_plugins(self, register):
        for cls in (Countdown, SlowToy, ThreadRecorder):
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
    monkeypatch.setattr(Countdown, "batch_sizes", [])


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "sessions"


@pytest.fixture
def live_server():
    """Start a real uvicorn server on 127.0.0.1 (a free port) for an app; yields a starter
    returning the base URL; the server stops at teardown."""
    import socket
    import threading
    import time

    uvicorn = pytest.importorskip("uvicorn")
    started = []

    def start(app):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started.append((server, thread))
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        return f"http://127.0.0.1:{port}", port

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(10)
