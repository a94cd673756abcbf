"""Export/import round trip of nested states: bit-exact through msgpack and a real safetensors file."""

import msgpack
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from safetensors.torch import load_file, save_file

from sage_core import IRPPlugin, IRPState, StateCodecError, decode_tree, encode_tree
from sage_core.testing import assert_trees_equal, trees_equal

from .strategies import json_meta, trees


class Holder(IRPPlugin):
    name = "holder"

    def init_state(self, x0, ctx):
        return IRPState(x=x0)

    def energy(self, state):
        return 0.0

    def step(self, state, budget=None):
        return state.evolve(step=state.step + 1)


@settings(max_examples=150, deadline=None)
@given(trees, trees, json_meta)
def test_default_export_import_is_bit_exact(tmp_path_factory, x, carry, meta):
    plugin = Holder()
    state = IRPState(x=x, step=3, energy=0.0, meta={"m": meta}, carry={"c": carry})
    tensors, exported = plugin.export_state(state)
    path = tmp_path_factory.mktemp("st") / "state.safetensors"
    save_file(tensors, str(path))
    loaded = load_file(str(path))
    meta_back = msgpack.unpackb(msgpack.packb(exported, use_bin_type=True), raw=False, strict_map_key=True)
    restored = plugin.import_state(loaded, meta_back)
    assert restored.step == 3 and restored.energy == 0.0
    assert_trees_equal(x, restored.x, "x")
    assert_trees_equal({"c": carry}, restored.carry, "carry")


@given(trees)
def test_encode_decode_in_memory(x):
    tensors, skeleton = encode_tree(x, "x")
    assert all(isinstance(t, torch.Tensor) and t.is_contiguous() for t in tensors.values())
    assert trees_equal(decode_tree(tensors, skeleton), x)


def test_non_contiguous_and_big_endian_inputs():
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4).T
    a = np.arange(6, dtype=">i4")
    tensors, skeleton = encode_tree({"t": t, "a": a})
    out = decode_tree(tensors, skeleton)
    assert torch.equal(out["t"], t) and np.array_equal(out["a"], a) and out["a"].dtype == np.dtype("<i4")


def test_rows_of_a_batch_are_exported_with_only_their_own_bytes():
    batch = torch.arange(64 * 6, dtype=torch.float32).reshape(64, 2, 3)
    rows = batch.split(1)
    tensors, skeleton = encode_tree({"first": rows[0], "later": rows[5]})
    for name, row in (("first", rows[0]), ("later", rows[5])):
        t = tensors[name]
        assert torch.equal(t, row)
        assert t.untyped_storage().nbytes() == 6 * 4  # not the whole batch's storage
    batch.zero_()  # the export no longer shares memory with the batch
    assert int(tensors["later"].sum()) == sum(range(30, 36))
    whole = torch.ones(2, 3)
    assert encode_tree(whole)[0][""].data_ptr() == whole.data_ptr()  # a tensor owning its storage is not copied


@pytest.mark.parametrize("bad,fragment", [
    ({1: 2}, "str keys"), ({"a/b": 1}, "may not contain"), (object(), "cannot export"),
    (2**70, "64 bits"), ({"ok": [1, {"deep": set()}]}, "ok/1/deep"),
])
def test_unsupported_values_name_their_path(bad, fragment):
    with pytest.raises(StateCodecError, match=fragment):
        encode_tree(bad)


@pytest.mark.parametrize("skeleton", [{"t": "missing"}, {"zz": 1}, [1], {"d": [1]}])
def test_malformed_skeleton_is_refused(skeleton):
    with pytest.raises(StateCodecError):
        decode_tree({}, skeleton)
