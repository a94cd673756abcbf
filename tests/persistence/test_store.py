"""SessionStore behaviour: ids, numbering, retention, locking, lazy verified loads, errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import msgpack
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import persistence
from persistence import (
    CheckpointSkippedWarning,
    PluginSnapshot,
    SessionCorruptError,
    SessionExistsError,
    SessionLockedError,
    SessionNotFoundError,
    SessionSnapshot,
    SessionStore,
    SessionVersionError,
    SnapshotError,
    capture_rng_state,
    default_root,
    restore_rng_state,
)
from persistence import _manifest
from persistence._fsutil import wait_for_removals
from sage_core import SageError

from .helpers import ALL_DTYPES, numbered_snapshot, snapshot_fingerprint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path):
    return SessionStore(tmp_path / "sessions", keep=3)


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_exceptions_are_sage_errors():
    for exc in (SessionCorruptError, SessionExistsError, SessionLockedError, SessionNotFoundError,
                SessionVersionError, SnapshotError, persistence.SessionError):
        assert issubclass(exc, SageError)
    assert issubclass(SessionVersionError, SessionCorruptError)
    err = SessionCorruptError("/x/manifest.msgpack", "checksum mismatch")
    assert (err.path, err.reason, str(err)) == ("/x/manifest.msgpack", "checksum mismatch",
                                                "/x/manifest.msgpack: checksum mismatch")


def test_create_ids(store):
    sid = store.create()
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", sid) and sid in store
    assert store.create("my-run_1.a") == "my-run_1.a"
    with pytest.raises(SessionExistsError, match="already exists"):
        store.create("my-run_1.a")
    for bad in ["../escape", ".hidden", "a/b", "", "x" * 129, "a\x00b"]:
        with pytest.raises(SessionNotFoundError, match="invalid session id"):
            store.create(bad)
    assert not (store.root.parent / "escape").exists()


def test_checkpoint_numbers_retention_and_explicit_loads(store):
    sid = store.create()
    with pytest.raises(SessionNotFoundError, match="no checkpoint yet"):
        store.load(sid)
    for n in range(1, 6):
        assert store.checkpoint(sid, numbered_snapshot(n)) == n
    assert store.checkpoints(sid) == [3, 4, 5]
    assert snapshot_fingerprint(store.load(sid)) == snapshot_fingerprint(numbered_snapshot(5))
    assert snapshot_fingerprint(store.load(sid, 3)) == snapshot_fingerprint(numbered_snapshot(3))
    with pytest.raises(SessionNotFoundError, match="no checkpoint 1"):
        store.load(sid, 1)
    with pytest.raises(SessionNotFoundError):
        store.load("nope")
    with pytest.raises(SessionNotFoundError):
        store.checkpoint("nope", numbered_snapshot(1))
    wait_for_removals()  # pruned checkpoints are removed in the background
    assert sorted(os.listdir(store.path(sid))) == [".lock", "ckpt-00000003", "ckpt-00000004", "ckpt-00000005",
                                                   "session.msgpack"]


def test_snapshot_equals_is_bit_exact():
    a, b = numbered_snapshot(1), numbered_snapshot(1)
    assert a.equals(b) and not a.equals(numbered_snapshot(2))
    nan1 = PluginSnapshot("p", "1", 1, {"t": torch.tensor([float("nan")])}, {"e": float("nan")})
    nan2 = PluginSnapshot("p", "1", 1, {"t": torch.tensor([float("nan")])}, {"e": float("nan")})
    assert nan1.equals(nan2)
    assert not nan1.equals(PluginSnapshot("p", "1", 1, {"t": torch.tensor([float("nan")], dtype=torch.float64)},
                                          {"e": float("nan")}))
    with pytest.raises(TypeError):
        PluginSnapshot("p", "1", 1, tensors=[1], meta={})


@pytest.mark.parametrize("case, match", [
    ({"tensors": {"t": torch.zeros(2, dtype=torch.complex128)}}, "not supported by safetensors"),
    ({"tensors": {"t": [1.0, 2.0]}}, "expected a torch.Tensor"),
    ({"tensors": {"t": torch.zeros(3, 3).to_sparse()}}, "cannot be stored"),
    ({"tensors": {1: torch.zeros(1)}}, "tensor names"),
    ({"meta": {"x": np.float32(1.0)}}, "not a plain value"),
    ({"meta": {"x": {1: "int key"}}}, "keys must be str"),
    ({"meta": {"x": 2**70}}, "64 bits"),
    ({"meta": {"x": {"y": object()}}}, "not a plain value"),
    ({"orchestrator": {"s": {1, 2}}}, "not a plain value"),
    ({"rng": {"torch": b"short"}}, "rng"),
    ({"tensors": {"b": torch.tensor([0, 2], dtype=torch.uint8).view(torch.bool)}}, "bool tensor"),
])
def test_unstorable_snapshots_are_refused_before_writing(store, case, match):
    sid = store.create()
    store.checkpoint(sid, numbered_snapshot(1))
    node = PluginSnapshot("p", "1", 1, case.get("tensors", {"t": torch.ones(2)}), case.get("meta", {}))
    snapshot = SessionSnapshot({"n": node}, case.get("orchestrator", {}), case.get("rng", {}))
    with pytest.raises(SnapshotError, match=match):
        store.checkpoint(sid, snapshot)
    assert store.checkpoints(sid) == [1]
    assert not [p for p in os.listdir(store.path(sid)) if p.startswith(".tmp")]


def test_every_dtype_numpy_and_odd_layouts(store):
    tensors = {f"d{i}": torch.arange(8, dtype=torch.uint8).view(d) if d != torch.bool else torch.tensor([True, False])
               for i, d in enumerate(ALL_DTYPES)}
    tensors["strided"] = torch.arange(12.0).reshape(3, 4).t()
    tensors["conj"] = torch.tensor([1 + 2j], dtype=torch.complex64).conj()
    tensors["numpy_be"] = np.arange(3, dtype=">f8")
    tensors["empty"] = torch.zeros(0, 5)
    tensors["scalar"] = torch.tensor(7, dtype=torch.int16)
    sid = store.create()
    store.checkpoint(sid, SessionSnapshot({"n": PluginSnapshot("p", "1", 1, tensors, {})}))
    back = store.load(sid).nodes["n"].tensors
    for i, d in enumerate(ALL_DTYPES):
        assert back[f"d{i}"].dtype == d
        assert back[f"d{i}"].view(torch.uint8).tolist() == tensors[f"d{i}"].view(torch.uint8).tolist()
    assert torch.equal(back["strided"], tensors["strided"])
    assert back["conj"].item() == 1 - 2j
    assert back["numpy_be"].dtype == torch.float64 and back["numpy_be"].tolist() == [0.0, 1.0, 2.0]
    assert back["empty"].shape == (0, 5) and back["scalar"].shape == () and back["scalar"].item() == 7


def test_files_are_standard_safetensors_with_namespaced_names(store):
    sid = store.create()
    store.checkpoint(sid, numbered_snapshot(1))
    directory = store.path(sid) / "ckpt-00000001"
    plain = load_file(str(directory / "n000.safetensors"))
    assert set(plain) == {"a/x", "a/carry/h", "a/carry/mask"}
    assert torch.equal(plain["a/x"], numbered_snapshot(1).nodes["a"].tensors["x"])
    envelope = msgpack.unpackb((directory / "manifest.msgpack").read_bytes())
    assert envelope["format"] == "sage-irp-session" and envelope["schema"] == persistence.SCHEMA


def test_loads_are_lazy_and_copy_on_write(store):
    sid = store.create()
    store.checkpoint(sid, numbered_snapshot(1, size=1 << 20))
    node = store.load(sid).nodes["a"]
    tensors = node.tensors
    assert isinstance(tensors, persistence.LazyTensors) and "0 read" in repr(tensors)
    assert tensors.shape("x") == (1 << 20,) and tensors.dtype("x") == torch.float32 and "0 read" in repr(tensors)
    x = tensors["x"]
    assert "1 read" in repr(tensors)
    x.zero_()  # copy-on-write: the file keeps its data
    assert torch.equal(store.load(sid).nodes["a"].tensors["x"], numbered_snapshot(1, size=1 << 20).nodes["a"].tensors["x"])


def test_data_corruption_is_caught_on_touch_or_by_full_verify(store):
    sid = store.create()
    store.checkpoint(sid, numbered_snapshot(1))
    store.checkpoint(sid, numbered_snapshot(2))
    path = store.path(sid) / "ckpt-00000002" / "n000.safetensors"
    _flip_byte(path, path.stat().st_size - 3)
    lazy = store.load(sid)  # headers are fine: opens
    with pytest.raises(SessionCorruptError, match="checksum mismatch") as info:
        dict(lazy.nodes["a"].tensors)
    assert info.value.path == str(path)
    with pytest.raises(SessionCorruptError, match="checksum mismatch"):
        store.load(sid, verify="full", fallback=False)
    with pytest.raises(SessionCorruptError):
        store.verify(sid)
    with pytest.warns(CheckpointSkippedWarning, match="checksum mismatch"):
        older = store.load(sid, verify="full")
    assert snapshot_fingerprint(older) == snapshot_fingerprint(numbered_snapshot(1))


def test_a_damaged_manifest_falls_back_to_the_previous_checkpoint(store):
    sid = store.create()
    store.checkpoint(sid, numbered_snapshot(1))
    store.checkpoint(sid, numbered_snapshot(2))
    manifest = store.path(sid) / "ckpt-00000002" / "manifest.msgpack"
    _flip_byte(manifest, manifest.stat().st_size // 2)
    with pytest.warns(CheckpointSkippedWarning):
        assert snapshot_fingerprint(store.load(sid)) == snapshot_fingerprint(numbered_snapshot(1))
    with pytest.raises(SessionCorruptError, match="manifest.msgpack"):
        store.load(sid, 2)
    with pytest.raises(SessionCorruptError):
        store.load(sid, fallback=False)
    info = store.info(sid)
    assert info.latest.number == 1 and info.problems and "ckpt 2" in info.problems[0]
    (store.path(sid) / "ckpt-00000001" / "n001.safetensors").unlink()
    with pytest.raises(SessionCorruptError, match="no older checkpoint"):
        store.load(sid)


@pytest.mark.parametrize("link", ["dangling", "loop", "valid_elsewhere"])
def test_a_checkpoint_directory_replaced_by_a_link_is_skipped_never_followed(store, tmp_path, link):
    sid = store.create()
    store.checkpoint(sid, numbered_snapshot(1))
    store.checkpoint(sid, numbered_snapshot(2))
    newest = store.path(sid) / "ckpt-00000002"
    elsewhere = tmp_path / "elsewhere"
    os.rename(newest, elsewhere)  # a valid checkpoint, outside the session
    target = {"dangling": tmp_path / "nonexistent", "loop": newest, "valid_elsewhere": elsewhere}[link]
    os.symlink(target, newest)
    info = store.info(sid)
    assert info.latest.number == 1 and "ckpt 2" in info.problems[0] and "symbolic link" in info.problems[0]
    with pytest.warns(CheckpointSkippedWarning, match="symbolic link"):
        assert snapshot_fingerprint(store.load(sid)) == snapshot_fingerprint(numbered_snapshot(1))
    with pytest.raises(SessionCorruptError, match="symbolic link"):
        store.load(sid, 2)
    with pytest.raises(SessionCorruptError, match="symbolic link"):
        store.load(sid, fallback=False)


def test_newer_schema_is_refused_and_never_skipped(store):
    sid = store.create()
    store.checkpoint(sid, numbered_snapshot(1))
    store.checkpoint(sid, numbered_snapshot(2))
    manifest = store.path(sid) / "ckpt-00000002" / "manifest.msgpack"
    envelope = msgpack.unpackb(manifest.read_bytes())
    envelope["schema"] = persistence.SCHEMA + 1
    manifest.write_bytes(msgpack.packb(envelope))
    with pytest.raises(SessionVersionError, match="upgrade sage-irp"):
        store.load(sid)


def test_older_schemas_are_migrated(store, monkeypatch):
    sid = store.create()
    store.checkpoint(sid, numbered_snapshot(1))

    def migrate(body):
        body["orchestrator"]["migrated"] = True
        return body

    monkeypatch.setattr(_manifest, "SCHEMA", persistence.SCHEMA + 1)
    monkeypatch.setitem(_manifest.MIGRATIONS, persistence.SCHEMA, migrate)
    assert store.load(sid).orchestrator["migrated"] is True
    monkeypatch.delitem(_manifest.MIGRATIONS, persistence.SCHEMA)
    with pytest.raises(SessionVersionError, match="too old"):
        store.load(sid)


def test_leftovers_of_a_crashed_writer_are_ignored_and_swept(store):
    sid = store.create()
    store.checkpoint(sid, numbered_snapshot(1))
    junk = store.path(sid) / ".tmp-ckpt-00000002-dead"
    junk.mkdir()
    (junk / "n000.safetensors").write_bytes(b"partial")
    assert snapshot_fingerprint(store.load(sid)) == snapshot_fingerprint(numbered_snapshot(1))
    assert store.checkpoint(sid, numbered_snapshot(2)) == 2
    assert not junk.exists()


def test_a_second_writer_gets_a_clear_error(store):
    sid = store.create()
    other = SessionStore(store.root)
    errors = []
    with store.lock(sid):
        store.checkpoint(sid, numbered_snapshot(1))  # re-entrant for the holder
        thread = threading.Thread(target=lambda: _try(other.checkpoint, sid, numbered_snapshot(2), errors))
        thread.start()
        thread.join()
        code = ("import sys\nfrom persistence import SessionStore, SessionLockedError\n"
                "from tests.persistence.helpers import numbered_snapshot\n"
                f"try:\n    SessionStore({str(store.root)!r}).checkpoint({sid!r}, numbered_snapshot(3))\n"
                "except SessionLockedError as e:\n    print(e); sys.exit(7)\n")
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
        with pytest.raises(SessionLockedError):
            other.delete(sid)
    assert len(errors) == 1 and isinstance(errors[0], SessionLockedError), errors
    assert "being written by another process" in str(errors[0])
    assert proc.returncode == 7, proc.stderr
    assert store.checkpoints(sid) == [1]
    assert other.checkpoint(sid, numbered_snapshot(2)) == 2  # free again


def _try(func, *args):
    errors = args[-1]
    try:
        func(*args[:-1])
    except Exception as exc:  # noqa: BLE001
        errors.append(exc)


def test_list_info_delete(store):
    assert store.list() == []
    first = store.create("first")
    store.checkpoint(first, numbered_snapshot(1))
    second = store.create("second")
    store.checkpoint(second, numbered_snapshot(1))
    store.checkpoint(second, numbered_snapshot(2))
    store.create("empty")
    infos = store.list()
    ids = [i.id for i in infos]
    assert sorted(ids) == ["empty", "first", "second"] and ids.index("second") < ids.index("first")
    info = store.info(second)
    assert info.checkpoints == (1, 2) and info.latest.number == 2
    assert info.plugins == {"a": "toy", "b": "other"} and info.steps == {"a": 2, "b": 4}
    assert info.energies == {"a": 1 / 3, "b": None}
    assert info.bytes == sum(p.stat().st_size for p in store.path(second).rglob("*") if p.is_file())
    assert info.updated >= info.created
    assert store.info("empty").latest is None
    store.delete(first)
    assert first not in store and sorted(i.id for i in store.list()) == ["empty", "second"]
    with pytest.raises(SessionNotFoundError):
        store.delete(first)


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("SAGE_HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / "sessions"
    assert SessionStore().root == tmp_path / "home" / "sessions"
    monkeypatch.delenv("SAGE_HOME")
    monkeypatch.chdir(tmp_path)
    assert default_root() == tmp_path / ".sage" / "sessions"


def test_rng_state_round_trip_and_validation():
    torch.manual_seed(3)
    state = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), __import__("random").random())
    restore_rng_state(msgpack.unpackb(msgpack.packb(state), strict_map_key=True))
    got = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]
    for bad in [{"torch": b"x"}, {"python": [3, [1] * 10, None]}, {"numpy": ["PCG64", b"", 0, 0, 0.0]}, {"other": 1}]:
        with pytest.raises(SessionCorruptError, match="rng"):
            restore_rng_state(bad)


def test_nothing_is_pickled():
    """The package never imports pickle or calls an unpickler (torch.load, numpy allow_pickle)."""
    source = "\n".join(p.read_text() for p in (ROOT / "persistence").rglob("*.py"))
    for forbidden in ["import pickle", "torch.load", "allow_pickle", "marshal", "shelve", "dill", "cloudpickle"]:
        assert forbidden not in source, forbidden
