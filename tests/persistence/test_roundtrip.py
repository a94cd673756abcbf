"""Arbitrary nested plugin states round-trip bit-exactly through checkpoint + load."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persistence import PluginSnapshot, SessionSnapshot, SessionStore, capture_rng_state
from plugins.toy import QuadraticDescent
from sage_core import IRPState

from ..core.strategies import json_meta, keys, trees
from .helpers import ALL_DTYPES, fingerprint

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = QuadraticDescent()

energies = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))


@st.composite
def states(draw):
    return IRPState(x=draw(trees), step=draw(st.integers(0, 2**40)), energy=draw(energies),
                    meta={"m": draw(json_meta), "raw": draw(st.binary(max_size=6))},
                    carry=draw(st.dictionaries(keys, trees, max_size=3)))


@st.composite
def any_dtype_tensors(draw):
    dtype = draw(st.sampled_from(ALL_DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
    size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    raw = draw(st.binary(min_size=size, max_size=size))
    flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
    if dtype == torch.bool:
        return (flat % 2).bool().reshape(shape)
    return flat.view(dtype).reshape(shape).clone()


plain = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=True),
              st.text(max_size=6), st.binary(max_size=6)),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=4), c, max_size=3)), max_leaves=10)


def _snapshot(named_states):
    return SessionSnapshot({name: PluginSnapshot(PLUGIN.name, PLUGIN.version, PLUGIN.api_version,
                                                 *PLUGIN.export_state(state))
                            for name, state in named_states.items()}, {"round": 1}, {})


settings_ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                           HealthCheck.data_too_large])


@settings(settings_, max_examples=150)
@given(named=st.dictionaries(st.text(min_size=1, max_size=5), states(), min_size=1, max_size=3))
def test_plugin_states_round_trip_in_process(tmp_path_factory, named):
    store = SessionStore(tmp_path_factory.mktemp("rt"))
    sid = store.create()
    store.checkpoint(sid, _snapshot(named))
    loaded = store.load(sid)
    assert list(loaded.nodes) == list(named)
    for name, state in named.items():
        node = loaded.nodes[name]
        assert fingerprint(PLUGIN.import_state(node.tensors, node.meta)) == fingerprint(state)


@settings(settings_, max_examples=150)
@given(tensors=st.dictionaries(st.text(min_size=1, max_size=8), any_dtype_tensors(), max_size=5),
       meta=st.dictionaries(st.text(max_size=5), plain, max_size=4), orchestrator=st.dictionaries(st.text(max_size=5), plain, max_size=4))
def test_every_dtype_and_plain_meta_round_trip(tmp_path_factory, tensors, meta, orchestrator):
    store = SessionStore(tmp_path_factory.mktemp("dt"))
    sid = store.create()
    snapshot = SessionSnapshot({"n": PluginSnapshot("p", "1", 1, tensors, meta)}, orchestrator, capture_rng_state())
    store.checkpoint(sid, snapshot)
    loaded = store.load(sid)
    assert loaded.equals(snapshot)
    assert fingerprint(dict(loaded.nodes["n"].tensors)) == fingerprint(tensors)
    assert fingerprint(loaded.nodes["n"].meta) == fingerprint(meta)
    assert fingerprint(loaded.orchestrator) == fingerprint(orchestrator)


def test_plugin_states_round_trip_in_a_fresh_process(tmp_path):
    """States written here are loaded and imported in a new interpreter: same fingerprints."""
    store = SessionStore(tmp_path)
    written = {}

    @settings(settings_, max_examples=120, database=None)
    @given(named=st.dictionaries(st.text(alphabet="abc", min_size=1, max_size=3), states(), min_size=1, max_size=2))
    def collect(named):
        sid = store.create()
        store.checkpoint(sid, _snapshot(named))
        written[sid] = fingerprint(named)

    sid_counter = iter(range(10**6))
    original_create = store.create
    store.create = lambda session_id=None: original_create(f"s{next(sid_counter):05d}")  # type: ignore[method-assign]
    collect()
    out = subprocess.run([sys.executable, "-m", "tests.persistence.child", "roundtrip", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    assert set(loaded) == set(written)
    bad = [sid for sid in written if loaded[sid] != written[sid]]
    assert not bad, f"{len(bad)} of {len(written)} sessions differ after loading in a fresh process: {bad[:5]}"
    assert len(written) >= 100


def test_bfloat16_and_numpy_round_trip(tmp_path):
    store = SessionStore(tmp_path)
    sid = store.create()
    x = {"bf": torch.tensor([1.0, -2.5, float("nan"), float("inf")], dtype=torch.bfloat16),
         "arr": np.arange(6, dtype=">i4").reshape(2, 3), "scalar": np.float16(3.5), "t": (torch.zeros(0), [1, "a"])}
    state = IRPState(x=x, step=4, energy=0.25, meta={"k": [1, {"z": None}]}, carry={"h": torch.ones(2, 2)})
    store.checkpoint(sid, _snapshot({"main": state}))
    node = store.load(sid).nodes["main"]
    back = PLUGIN.import_state(node.tensors, node.meta)
    assert back.x["bf"].dtype == torch.bfloat16
    assert back.x["bf"].view(torch.int16).tolist() == x["bf"].view(torch.int16).tolist()
    assert isinstance(back.x["arr"], np.ndarray) and back.x["arr"].tolist() == x["arr"].tolist()
    assert isinstance(back.x["scalar"], np.float16) and back.x["scalar"] == 3.5
    assert isinstance(back.x["t"], tuple)
    assert fingerprint(back.carry) == fingerprint(state.carry)
