"""``sage serve`` as a user runs it: a real process, stopped with SIGTERM, checkpoints its runs."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from persistence import SessionStore

httpx = pytest.importorskip("httpx")

TOML = """
[pipeline]
name = "long"
[nodes.a]
plugin = "toy"
config = { dim = 8, lr = 0.001, noise = 1e-3 }
halt = { max_steps = 5000000 }
"""


def test_sage_serve_sigterm_checkpoints_the_running_run(store_dir):
    sage = Path(sys.executable).with_name("sage")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SAGE_API_TOKEN": "clitok"}
    proc = subprocess.Popen([str(sage), "serve", "--port", str(port), "--store", str(store_dir)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base, headers = f"http://127.0.0.1:{port}", {"Authorization": "Bearer clitok"}
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.1)
        assert httpx.get(base + "/v1/plugins").status_code == 401
        run_id = httpx.post(base + "/v1/runs", json={"toml": TOML}, headers=headers).json()["id"]
        time.sleep(0.5)
        stopped = time.time()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode in (0, -signal.SIGTERM), out  # uvicorn re-raises the signal after its shutdown
    finally:
        if proc.poll() is None:
            proc.kill()
    store = SessionStore(store_dir)
    assert store.info(run_id).latest.written >= stopped  # written by the shutdown, not a periodic checkpoint
    snapshot = store.load(run_id)
    node = snapshot.orchestrator["nodes"]["a"]
    assert not snapshot.orchestrator["done"] and 0 < len(node["energies"]) - 1 < 5000000
    assert "a" in snapshot.nodes  # the node's state was saved, so the run can be resumed


def test_a_negative_batch_wait_is_refused_naming_the_option():
    from click.testing import CliRunner

    from orchestrator.http.cli import serve_command

    result = CliRunner().invoke(serve_command, ["--batch-wait-ms", "-1"])
    assert result.exit_code == 2 and "--batch-wait-ms" in result.output
