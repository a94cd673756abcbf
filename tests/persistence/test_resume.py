"""Resume is bit-exact: N steps uninterrupted == k steps, checkpoint, new process, run to N."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from persistence import PluginSnapshot, SessionSnapshot, SessionStore, capture_rng_state, restore_rng_state

from .helpers import fingerprint, make_plugin

ROOT = Path(__file__).resolve().parents[2]
N = 12
KS = [0, 1, 5, 11, 12]


def _seed_globals(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _run(plugin, state, until):
    while state.step < until:
        state = plugin.step(state, None)
    return state


def _checkpoint(store, sid, plugin, state):
    tensors, meta = plugin.export_state(state)
    snapshot = SessionSnapshot({"main": PluginSnapshot(plugin.name, plugin.version, plugin.api_version, tensors, meta)},
                               {"k": state.step}, capture_rng_state())
    return store.checkpoint(sid, snapshot)


@pytest.mark.parametrize("plugin_name", ["toy", "global-walk"])
def test_resume_in_a_new_process_equals_the_uninterrupted_run(tmp_path, plugin_name):
    plugin = make_plugin(plugin_name)
    _seed_globals(7)
    reference = fingerprint(_run(plugin, plugin.init_state(None, {"seed": 11}), N))
    store = SessionStore(tmp_path)
    for k in KS:
        _seed_globals(7)
        state = _run(plugin, plugin.init_state(None, {"seed": 11}), k)
        _checkpoint(store, store.create(f"k{k}"), plugin, state)
    script = ("import sys\nfrom tests.persistence.child import resume\n"
              f"for k in {KS}:\n    resume({str(tmp_path)!r}, f'k{{k}}', '{N}', '{plugin_name}')\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    results = out.stdout.split()
    assert len(results) == len(KS)
    for k, result in zip(KS, results):
        assert result == reference, f"{plugin_name}: resumed from step {k} differs from the uninterrupted run"


def test_resume_needs_the_rng_state(tmp_path):
    """The global-RNG plugin diverges if the RNG state is not restored: the test above can fail."""
    plugin = make_plugin("global-walk")
    _seed_globals(7)
    reference = fingerprint(_run(plugin, plugin.init_state(None, {}), 6))
    _seed_globals(7)
    state = _run(plugin, plugin.init_state(None, {}), 3)
    store = SessionStore(tmp_path)
    sid = store.create()
    _checkpoint(store, sid, plugin, state)
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    node = store.load(sid).nodes["main"]
    assert fingerprint(_run(plugin, plugin.import_state(node.tensors, node.meta), 6)) != reference
    restore_rng_state(store.load(sid).rng)
    assert fingerprint(_run(plugin, plugin.import_state(node.tensors, node.meta), 6)) == reference
