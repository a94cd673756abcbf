"""Checksum algorithms, reading sessions written by older versions, lazy header checks, and the
machinery that makes checkpoints fast (background removal, the fsync pool, the writer lock)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import msgpack
import pytest

import persistence
from persistence import (
    CheckpointSkippedWarning,
    SessionCorruptError,
    SessionLockedError,
    SessionStore,
    SessionVersionError,
)
from persistence import _format, _manifest
from persistence._fsutil import FileLock, wait_for_removals

from .helpers import fixed_snapshot, numbered_snapshot, snapshot_fingerprint

ROOT = Path(__file__).resolve().parents[2]
LEGACY = Path(__file__).resolve().parent / "data" / "legacy-schema1"
HAVE_XXHASH = "xxh3_128" in _format.CHECKSUMS
needs_xxhash = pytest.mark.skipif(not HAVE_XXHASH, reason="the xxhash package is not installed")
ALGORITHMS = sorted(_format.CHECKSUMS)


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _envelope(path: Path) -> dict:
    return msgpack.unpackb(path.read_bytes())


def _rewrite_body(manifest: Path, edit) -> None:
    """Change a manifest's body and give it a correct digest (what a buggy or hostile writer does)."""
    envelope = _envelope(manifest)
    body = msgpack.unpackb(envelope["body"], strict_map_key=False)
    edit(body)
    envelope["body"] = msgpack.packb(body, use_bin_type=True)
    envelope["digest"] = _format.CHECKSUMS[envelope["checksum"]](envelope["body"])
    manifest.write_bytes(msgpack.packb(envelope, use_bin_type=True))


@pytest.fixture
def legacy(tmp_path):
    """A copy of a session written by the first format (schema 1: sha256, crc32 and blake2b checkpoints)."""
    root = tmp_path / "legacy-root"
    shutil.copytree(LEGACY, root)
    return SessionStore(root)


# -- the default checksum -------------------------------------------------------------------------
def test_default_checksum_is_the_fastest_available():
    assert _format.DEFAULT_CHECKSUM == ("xxh3_128" if HAVE_XXHASH else "crc32")
    assert SessionStore().checksum == _format.DEFAULT_CHECKSUM
    assert set(_format.DIGEST_SIZE) == {"sha256", "blake2b", "crc32", "xxh3_128"}
    for name, function in _format.CHECKSUMS.items():
        assert len(function(b"abc")) == _format.DIGEST_SIZE[name]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_round_trips_and_is_recorded(tmp_path, algorithm):
    store = SessionStore(tmp_path, checksum=algorithm)
    sid = store.create()
    store.checkpoint(sid, numbered_snapshot(1))
    manifest = store.path(sid) / "ckpt-00000001" / "manifest.msgpack"
    envelope = _envelope(manifest)
    assert envelope["checksum"] == algorithm and envelope["schema"] == persistence.SCHEMA == 2
    assert msgpack.unpackb(envelope["body"])["checksum"] == algorithm
    assert snapshot_fingerprint(store.load(sid, verify="full")) == snapshot_fingerprint(numbered_snapshot(1))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_corrupt_data_raises_on_touch_with_every_algorithm(tmp_path, algorithm):
    store = SessionStore(tmp_path, checksum=algorithm)
    sid = store.create()
    store.checkpoint(sid, numbered_snapshot(1))
    path = store.path(sid) / "ckpt-00000001" / "n000.safetensors"
    _flip_byte(path, path.stat().st_size - 5)
    tensors = store.load(sid).nodes["a"].tensors  # lazy: the header is fine, the data is not read yet
    with pytest.raises(SessionCorruptError, match="checksum mismatch") as info:
        dict(tensors)
    assert info.value.path == str(path)
    with pytest.raises(SessionCorruptError, match="checksum mismatch"):
        store.verify(sid)


def test_unknown_checksum_choice_is_refused():
    with pytest.raises(ValueError, match="checksum must be one of"):
        SessionStore(checksum="md5")


# -- sessions written by the first format -------------------------------------------------------------
def test_sessions_of_the_first_format_still_load(legacy):
    assert legacy.checkpoints("legacy") == [1, 2, 3]
    for number, algorithm in ((1, "sha256"), (2, "crc32"), (3, "blake2b")):
        manifest = legacy.path("legacy") / f"ckpt-{number:08d}" / "manifest.msgpack"
        envelope = _envelope(manifest)
        assert (envelope["schema"], envelope["checksum"]) == (1, "sha256")  # the first format's envelope
        assert msgpack.unpackb(envelope["body"])["checksum"] == algorithm
        for verify in ("lazy", "full"):
            snapshot = legacy.load("legacy", number, verify=verify)
            assert snapshot_fingerprint(snapshot) == snapshot_fingerprint(fixed_snapshot(number))
    assert legacy.info("legacy").latest.number == 3
    assert legacy.verify("legacy") == 3


def test_damage_to_a_first_format_session_is_caught(legacy):
    data = legacy.path("legacy") / "ckpt-00000001" / "n000.safetensors"
    _flip_byte(data, data.stat().st_size - 2)
    with pytest.raises(SessionCorruptError, match="checksum mismatch"):
        dict(legacy.load("legacy", 1).nodes["a"].tensors)
    manifest = legacy.path("legacy") / "ckpt-00000003" / "manifest.msgpack"
    _flip_byte(manifest, manifest.stat().st_size // 2)
    with pytest.warns(CheckpointSkippedWarning, match="manifest"):
        assert snapshot_fingerprint(legacy.load("legacy")) == snapshot_fingerprint(fixed_snapshot(2))


def test_a_new_checkpoint_continues_a_first_format_session(legacy):
    assert legacy.checkpoint("legacy", fixed_snapshot(4)) == 4
    wait_for_removals()
    assert legacy.checkpoints("legacy") == [2, 3, 4]
    assert _envelope(legacy.path("legacy") / "ckpt-00000004" / "manifest.msgpack")["schema"] == persistence.SCHEMA
    assert snapshot_fingerprint(legacy.load("legacy")) == snapshot_fingerprint(fixed_snapshot(4))
    assert snapshot_fingerprint(legacy.load("legacy", 2)) == snapshot_fingerprint(fixed_snapshot(2))


# -- when xxhash is missing ---------------------------------------------------------------------------
@needs_xxhash
def test_an_xxh3_session_without_xxhash_says_what_to_install_and_is_never_skipped(tmp_path, monkeypatch):
    SessionStore(tmp_path).create("s")
    SessionStore(tmp_path, checksum="sha256").checkpoint("s", numbered_snapshot(1))
    SessionStore(tmp_path, checksum="xxh3_128").checkpoint("s", numbered_snapshot(2))
    monkeypatch.delitem(_format.CHECKSUMS, "xxh3_128")  # as on a machine without xxhash
    monkeypatch.setattr(persistence._store, "DEFAULT_CHECKSUM", "crc32")
    store = SessionStore(tmp_path)
    assert store.checksum == "crc32"
    with pytest.raises(SessionVersionError, match="pip install xxhash"):
        store.load("s")  # not a fallback to checkpoint 1: that would silently lose state
    assert snapshot_fingerprint(store.load("s", 1)) == snapshot_fingerprint(numbered_snapshot(1))
    with pytest.raises(ValueError, match="needs the xxhash package"):
        SessionStore(tmp_path, checksum="xxh3_128")


# -- what open checks, and what first touch checks ------------------------------------------------------
def test_a_damaged_header_is_caught_on_first_touch_or_at_a_full_load(tmp_path):
    store = SessionStore(tmp_path)
    sid = store.create()
    store.checkpoint(sid, numbered_snapshot(1))
    store.checkpoint(sid, numbered_snapshot(2))
    path = store.path(sid) / "ckpt-00000002" / "n000.safetensors"
    _flip_byte(path, 20)  # inside the JSON header; the file keeps its size
    lazy = store.load(sid)  # open checks presence and size only
    assert "0 read" in repr(lazy.nodes["a"].tensors) and lazy.nodes["a"].tensors.shape("x") == (4096,)
    with pytest.raises(SessionCorruptError, match="header checksum mismatch"):
        lazy.nodes["a"].tensors["x"]
    with pytest.raises(SessionCorruptError, match="header checksum mismatch"):
        store.load(sid, verify="full", fallback=False)
    with pytest.warns(CheckpointSkippedWarning, match="header checksum mismatch"):
        assert snapshot_fingerprint(store.load(sid, verify="full")) == snapshot_fingerprint(numbered_snapshot(1))


def test_missing_truncated_or_replaced_files_are_caught_at_open(tmp_path):
    store = SessionStore(tmp_path)
    sid = store.create()
    store.checkpoint(sid, numbered_snapshot(1))
    store.checkpoint(sid, numbered_snapshot(2))
    directory = store.path(sid) / "ckpt-00000002"
    path = directory / "n001.safetensors"
    data = path.read_bytes()
    damages = {
        "truncated": lambda: path.write_bytes(data[:-1]),
        "file is missing": lambda: None,
        "not a regular file": lambda: path.mkdir(),
        "cannot stat|not a regular file": lambda: path.symlink_to(directory / "n000.safetensors"),
    }
    for reason, damage in damages.items():
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            path.rmdir()
        damage()
        with pytest.raises(SessionCorruptError, match=reason):
            store.load(sid, fallback=False)
        with pytest.warns(CheckpointSkippedWarning):
            assert snapshot_fingerprint(store.load(sid)) == snapshot_fingerprint(numbered_snapshot(1))


def test_a_file_replaced_after_open_is_refused_on_touch(tmp_path):
    store = SessionStore(tmp_path)
    sid = store.create()
    store.checkpoint(sid, numbered_snapshot(1))
    snapshot = store.load(sid)
    path = store.path(sid) / "ckpt-00000001" / "n000.safetensors"
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)  # same bytes, another file
    with pytest.raises(SessionCorruptError, match="replaced or changed"):
        snapshot.nodes["a"].tensors["x"]


def test_a_fifo_in_place_of_a_file_does_not_hang(tmp_path):
    store = SessionStore(tmp_path)
    sid = store.create()
    store.checkpoint(sid, numbered_snapshot(1))
    directory = store.path(sid) / "ckpt-00000001"
    (directory / "manifest.msgpack").unlink()
    os.mkfifo(directory / "manifest.msgpack")
    with pytest.raises(SessionCorruptError, match="not a regular file"):
        store.load(sid)


@pytest.mark.parametrize("value", [[], {}, ["sha256"], 3, None, b"sha256"])
def test_a_non_string_checksum_field_is_corrupt_not_a_crash(tmp_path, value):
    """Found by the fuzz test: an unhashable value here used to raise TypeError."""
    store = SessionStore(tmp_path)
    sid = store.create()
    store.checkpoint(sid, numbered_snapshot(1))
    manifest = store.path(sid) / "ckpt-00000001" / "manifest.msgpack"
    _rewrite_body(manifest, lambda body: body.__setitem__("checksum", value))
    with pytest.raises(SessionCorruptError, match="unknown checksum algorithm"):
        store.load(sid)
    envelope = _envelope(manifest)
    envelope["checksum"] = value
    manifest.write_bytes(msgpack.packb(envelope, use_bin_type=True))
    with pytest.raises(SessionCorruptError):
        store.load(sid)


def test_tensors_are_views_of_the_mapped_file_and_aligned(tmp_path):
    store = SessionStore(tmp_path)
    sid = store.create()
    store.checkpoint(sid, numbered_snapshot(1, size=1 << 16))
    tensors = store.load(sid).nodes["a"].tensors
    x = tensors["x"]
    assert x.data_ptr() % x.element_size() == 0
    assert tensors["x"] is x  # read once
    y = store.load(sid).nodes["a"].tensors["x"]
    assert y.data_ptr() != x.data_ptr()  # every load maps the file anew
    del tensors
    x.add_(1)  # copy-on-write, and the mapping outlives the mapping object's other owners
    assert float(x[0]) == float(y[0]) + 1


# -- checkpoint machinery -------------------------------------------------------------------------------
def test_pruned_checkpoints_are_removed_in_the_background_and_swept_if_interrupted(tmp_path):
    store = SessionStore(tmp_path, keep=1)
    sid = store.create()
    for n in range(1, 4):
        store.checkpoint(sid, numbered_snapshot(n))
    wait_for_removals()
    assert sorted(os.listdir(store.path(sid))) == [".lock", "ckpt-00000003", "session.msgpack"]
    leftover = store.path(sid) / ".del-ckpt-00000002-dead"  # a removal the process died in
    leftover.mkdir()
    (leftover / "n000.safetensors").write_bytes(b"x" * 100)
    assert store.info(sid).bytes == sum(p.stat().st_size for p in store.path(sid).rglob("*")
                                        if p.is_file() and ".del-" not in str(p))
    store.checkpoint(sid, numbered_snapshot(4))
    wait_for_removals()
    assert sorted(os.listdir(store.path(sid))) == [".lock", "ckpt-00000004", "session.msgpack"]


def test_the_writer_lock(tmp_path):
    path = str(tmp_path / ".lock")
    first, second = FileLock(path), FileLock(path)
    assert first.acquire() and first.acquire()  # re-entrant in the holding thread
    assert not second.acquire()  # another holder in this process
    assert not second.acquire(timeout=0.05)
    first.release()
    assert not second.acquire()  # still held once
    first.release()
    assert second.acquire()
    code = ("import sys\nfrom persistence._fsutil import FileLock\n"
            f"sys.exit(0 if FileLock({path!r}).acquire() else 7)\n")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120).returncode == 7
    second.release()
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120).returncode == 0
    with pytest.raises(RuntimeError, match="does not hold it"):
        second.release()


def test_held_raises_the_given_error_and_releases_after_the_block(tmp_path):
    path = str(tmp_path / ".lock")
    first, second = FileLock(path), FileLock(path)
    with first.held(0.0, lambda: AssertionError("free lock not taken")):
        with pytest.raises(TimeoutError, match="busy"):
            with second.held(0.05, lambda: TimeoutError("busy")):
                pass
    with pytest.raises(ValueError, match="inside"):  # released even when the block raises
        with first.held(0.0, lambda: TimeoutError("busy")):
            raise ValueError("inside")
    assert second.acquire()
    second.release()


def test_a_forked_child_checkpoints_with_its_own_pool_and_lock(tmp_path):
    """The fsync pool and the lock of the parent do not exist in a forked child: it must not hang."""
    code = f"""
import os, sys
from persistence import SessionStore, SessionLockedError
from tests.persistence.helpers import numbered_snapshot
store = SessionStore({str(tmp_path)!r})
sid = store.create()
store.checkpoint(sid, numbered_snapshot(1))  # starts the pool
with store.lock(sid):
    pid = os.fork()
    if pid == 0:
        try:
            store.checkpoint(sid, numbered_snapshot(2))
            os._exit(5)  # the parent holds the lock: the child must not get it
        except SessionLockedError:
            os._exit(0)
        except BaseException:
            os._exit(6)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
pid = os.fork()
if pid == 0:
    try:
        os._exit(0 if store.checkpoint(sid, numbered_snapshot(2)) == 2 else 4)
    except BaseException:
        os._exit(6)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert store.checkpoint(sid, numbered_snapshot(3)) == 3
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_second_writer_errors_are_unchanged(tmp_path):
    store = SessionStore(tmp_path)
    sid = store.create()
    with store.lock(sid), pytest.raises(SessionLockedError, match="being written by another process or thread"):
        SessionStore(tmp_path).checkpoint(sid, numbered_snapshot(1))


def test_no_warnings_on_a_plain_round_trip(tmp_path):
    store = SessionStore(tmp_path)
    sid = store.create()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.checkpoint(sid, numbered_snapshot(1))
        dict(store.load(sid).nodes["a"].tensors)


def test_manifest_schema_history():
    assert _manifest.SCHEMA == 2 and 1 in _manifest.MIGRATIONS
    body = {"anything": 1}
    assert _manifest.MIGRATIONS[1](body) is body


def test_without_xxhash_the_store_works_with_crc32(tmp_path):
    code = f"""
import sys
sys.modules["xxhash"] = None  # import xxhash now fails, as where it is not installed
from persistence import SessionStore
from persistence._format import CHECKSUMS, DEFAULT_CHECKSUM
from tests.persistence.helpers import numbered_snapshot, snapshot_fingerprint
assert DEFAULT_CHECKSUM == "crc32" and "xxh3_128" not in CHECKSUMS
store = SessionStore({str(tmp_path)!r})
sid = store.create()
store.checkpoint(sid, numbered_snapshot(1))
assert snapshot_fingerprint(store.load(sid, verify="full")) == snapshot_fingerprint(numbered_snapshot(1))
print(store.checksum)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "crc32", result.stderr
