"""Fuzzing: mutated session files either load a valid checkpoint or raise SessionCorruptError.

Hypothesis mutates real (small) session files: bit flips, truncation, appended junk,
overwritten ranges, missing/replaced files, safetensors header edits, huge declared sizes,
wrong dtypes, hand-made hostile msgpack and type confusion in the manifest. "Blind" mutations
leave the checksums alone, so a successful load must give back, bit for bit, a checkpoint
that was written. "Consistent" mutations re-compute every checksum (an attacker who knows the
format), so they exercise the structural validation: a successful load must be internally
consistent (every tensor has the dtype and shape the manifest declares).

Every case is bounded in time (SIGALRM) and in memory (tracemalloc peak relative to the file
sizes): a decoder that trusted a declared size would allocate far beyond it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import tracemalloc
import warnings
from pathlib import Path

import msgpack
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persistence import CheckpointSkippedWarning, SessionCorruptError, SessionStore
from persistence import SCHEMA
from persistence._format import CHECKSUMS, DTYPES

from .helpers import numbered_snapshot, snapshot_fingerprint

SID = "fuzz"
FILES = ["ckpt-00000002/manifest.msgpack", "ckpt-00000002/n000.safetensors", "ckpt-00000002/n001.safetensors",
         "ckpt-00000001/manifest.msgpack", "ckpt-00000001/n000.safetensors"]
CI_CASES = int(os.environ.get("SAGE_FUZZ_CASES", 2000))
SLOW_CASES = 20000


class Hang(Exception):
    pass


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A small session with two checkpoints, and the fingerprints of what was written."""
    root = tmp_path_factory.mktemp("fuzz-base")
    SessionStore(root).create(SID)
    written = {}
    for n, checksum in ((1, "sha256"), (2, None)):  # the old default algorithm, then the new one
        snapshot = numbered_snapshot(n, size=16, rng=(n == 2))
        assert SessionStore(root, checksum=checksum).checkpoint(SID, snapshot) == n
        written[n] = snapshot_fingerprint(snapshot)
    files = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    return files, written


# -- mutations ---------------------------------------------------------------------------------------
def _read_st(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def _write_st(header: dict, payload: bytes, length: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text) if length is None else length) + text + payload


HEADER_EDITS = ["dtype", "bogus_dtype", "huge_shape", "negative_shape", "shape_type", "offsets_huge", "offsets_swap",
                "offsets_type", "extra_tensor", "drop_tensor", "metadata_type", "not_object", "length_huge",
                "length_small", "entry_type", "extra_field"]


def _edit_header(header: dict, payload: bytes, edit: str, data: st.DataObject) -> bytes:
    names = [k for k in header if k != "__metadata__"]
    name = data.draw(st.sampled_from(names))
    entry = header[name]
    length = None
    if edit == "dtype":
        entry["dtype"] = data.draw(st.sampled_from(sorted(DTYPES)))
    elif edit == "bogus_dtype":
        entry["dtype"] = data.draw(st.sampled_from(["F128", "", "C128", "object", 5]))
    elif edit == "huge_shape":
        entry["shape"] = data.draw(st.sampled_from([[2**40, 2**40], [2**62], [2**64 + 1], [10**30], [0, 2**63]]))
    elif edit == "negative_shape":
        entry["shape"] = [-1, *entry["shape"]]
    elif edit == "shape_type":
        entry["shape"] = data.draw(st.sampled_from(["3", [1.5], [True], None, {"a": 1}, [[1]], [1] * 100]))
    elif edit == "offsets_huge":
        entry["data_offsets"] = [0, data.draw(st.sampled_from([2**40, 2**63, 2**64 + 7, 10**30]))]
    elif edit == "offsets_swap":
        entry["data_offsets"] = entry["data_offsets"][::-1]
    elif edit == "offsets_type":
        entry["data_offsets"] = data.draw(st.sampled_from([[0], [0, 1, 2], ["0", "4"], [0.0, 4.0], None]))
    elif edit == "extra_tensor":
        header["intruder"] = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
    elif edit == "drop_tensor":
        del header[name]
    elif edit == "metadata_type":
        header["__metadata__"] = data.draw(st.sampled_from([{"a": 1}, [], "x", {"a": None}]))
    elif edit == "not_object":
        return _write_st([], payload)  # type: ignore[arg-type]
    elif edit == "length_huge":
        length = data.draw(st.sampled_from([2**63, 2**64 - 1, 2**40, 10**9]))
    elif edit == "length_small":
        length = data.draw(st.integers(0, 16))
    elif edit == "entry_type":
        header[name] = data.draw(st.sampled_from([[], "F32", None, 3]))
    elif edit == "extra_field":
        entry["extra"] = 1
    return _write_st(header, payload, length)


def _random_value(data: st.DataObject):
    return data.draw(st.one_of(
        st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=5),
        st.binary(max_size=40), st.lists(st.integers(0, 2**33), max_size=4),
        st.dictionaries(st.text(max_size=3), st.integers(-(2**63), 2**64 - 1), max_size=3),
        st.just([[[[[[]]]]]]), st.just({"": {"": {}}}), st.just(list(range(2000)))))


def _paths(value, prefix=()):
    """Every path into a nested msgpack value."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _confuse(body, data: st.DataObject):
    paths = [p for p in _paths(body) if p]
    path = data.draw(st.sampled_from(paths))
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace":
        parent[path[-1]] = _random_value(data)
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(st.text(max_size=4))] = _random_value(data)
    else:
        parent.append(_random_value(data))
    return body


def _algorithm(body_bytes: bytes) -> str:
    """The checksum algorithm a (possibly mutated) manifest body names, if usable, else sha256."""
    try:
        name = msgpack.unpackb(body_bytes, strict_map_key=False).get("checksum")
    except Exception:  # noqa: BLE001 - hostile on purpose
        return "sha256"
    return name if isinstance(name, str) and name in CHECKSUMS else "sha256"


def _envelope(body_bytes: bytes, **override) -> bytes:
    """A manifest envelope around ``body_bytes`` with a correct digest (schema 1, as the first
    format wrote it, or the current schema), computed with the algorithm the body names."""
    algorithm = _algorithm(body_bytes)
    env = {"format": "sage-irp-session", "schema": 1 if algorithm == "sha256" else SCHEMA, "checksum": algorithm,
           "digest": CHECKSUMS[algorithm](body_bytes), "body": body_bytes}
    env.update(override)
    return msgpack.packb(env, use_bin_type=True)


HOSTILE_MSGPACK = [
    b"\xdd\xff\xff\xff\xff",                   # array32 of 4 billion entries
    b"\xdf\xff\xff\xff\xff",                   # map32 of 4 billion pairs
    b"\xc6\xff\xff\xff\xff",                   # bin32 of 4 GB
    b"\xdb\x7f\xff\xff\xff",                   # str32 of 2 GB
    b"\xc9\xff\xff\xff\xff\x05",               # ext32 of 4 GB
    b"\xd6\xff\x00\x00\x00\x00",               # timestamp ext
    b"\xc7\x03\x2a\x01\x02\x03",               # ext type 42
    b"\x91" * 100000 + b"\xc0",                 # nesting 100000 deep
    b"\x81\x01\x02",                           # int map key
    b"\xc1",                                   # never-used byte
    b"",
]


@st.composite
def mutations(draw):
    kind = draw(st.sampled_from(["bitflip", "truncate", "append", "overwrite", "replace_file", "link_checkpoint", "header_blind",
                                 "header_consistent", "manifest_confusion", "envelope_confusion", "hostile_msgpack",
                                 "body_hostile"]))
    target = draw(st.sampled_from(FILES))
    if kind in ("manifest_confusion", "envelope_confusion", "hostile_msgpack", "body_hostile"):
        target = draw(st.sampled_from([f for f in FILES if f.endswith("msgpack")]))
    if kind in ("header_blind", "header_consistent"):
        target = draw(st.sampled_from([f for f in FILES if f.endswith("safetensors")]))
    return kind, target, draw(st.data())


def _apply(root: Path, kind: str, target: str, data: st.DataObject) -> bool:
    """Mutate the session under ``root``; returns True if the checksums were made consistent."""
    session = root / SID
    path = session / target
    raw = path.read_bytes()
    if kind == "bitflip":
        buf = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 8))):
            bit = data.draw(st.integers(0, len(buf) * 8 - 1))
            buf[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(buf))
    elif kind == "truncate":
        path.write_bytes(raw[:data.draw(st.integers(0, len(raw) - 1))])
    elif kind == "append":
        path.write_bytes(raw + data.draw(st.binary(min_size=1, max_size=64)))
    elif kind == "overwrite":
        start = data.draw(st.integers(0, len(raw) - 1))
        junk = data.draw(st.binary(min_size=1, max_size=32))
        path.write_bytes(raw[:start] + junk + raw[start + len(junk):])
    elif kind == "replace_file":
        how = data.draw(st.sampled_from(["delete", "empty", "directory", "symlink", "fifo_like_dir"]))
        path.unlink()
        if how == "empty":
            path.write_bytes(b"")
        elif how in ("directory", "fifo_like_dir"):
            path.mkdir()
        elif how == "symlink":
            other = session / data.draw(st.sampled_from([f for f in FILES if f != target]))
            path.symlink_to(other)
    elif kind == "link_checkpoint":  # the whole checkpoint directory becomes a link: never followed
        ckpt = path.parent
        how = data.draw(st.sampled_from(["dangling", "loop", "valid_elsewhere"]))
        moved = root / f"moved-{ckpt.name}"
        os.rename(ckpt, moved)
        os.symlink({"dangling": root / "nonexistent", "loop": ckpt, "valid_elsewhere": moved}[how], ckpt)
    elif kind == "header_blind":
        header, payload = _read_st(raw)
        path.write_bytes(_edit_header(header, payload, data.draw(st.sampled_from(HEADER_EDITS)), data))
    elif kind == "header_consistent":
        header, payload = _read_st(raw)
        new = _edit_header(header, payload, data.draw(st.sampled_from(HEADER_EDITS)), data)
        path.write_bytes(new)
        _fix_manifest(session, target, new, header, data)
        return True
    elif kind == "manifest_confusion":
        body = _body(raw)
        path.write_bytes(_envelope(msgpack.packb(_confuse(body, data), use_bin_type=True)))
        return True
    elif kind == "envelope_confusion":
        body_bytes = msgpack.unpackb(raw)["body"]
        field = data.draw(st.sampled_from(["format", "schema", "checksum", "digest", "body", "extra"]))
        value = _random_value(data)
        path.write_bytes(_envelope(body_bytes, **{field: value}))
        return True
    elif kind == "hostile_msgpack":
        path.write_bytes(data.draw(st.sampled_from(HOSTILE_MSGPACK)))
    elif kind == "body_hostile":
        path.write_bytes(_envelope(data.draw(st.sampled_from(HOSTILE_MSGPACK))))
        return True
    return False


def _body(raw: bytes) -> dict:
    return msgpack.unpackb(msgpack.unpackb(raw)["body"], strict_map_key=False)


def _fix_manifest(session: Path, target: str, new: bytes, header: dict, data: st.DataObject) -> None:
    """Make the manifest agree with an edited safetensors file: what a knowing attacker does."""
    manifest = session / target.split("/")[0] / "manifest.msgpack"
    body = _body(manifest.read_bytes())
    node = next(n for n in body["nodes"] if n["file"] == target.split("/")[1])
    digest = CHECKSUMS[body["checksum"]]
    node["bytes"] = len(new)
    (n,) = struct.unpack("<Q", new[:8])
    node["header"] = digest(new[8:8 + n])
    if isinstance(header, dict):
        prefix = node["name"] + "/"
        entries = []
        for name, entry in header.items():
            if name == "__metadata__" or not isinstance(entry, dict):
                continue
            key = name[len(prefix):] if name.startswith(prefix) else name
            try:
                start, end = entry["data_offsets"]
                payload = new[8 + n + start:8 + n + end]
            except Exception:  # noqa: BLE001 - malformed on purpose
                start, end, payload = 0, 0, b""
            entries.append([key, entry.get("dtype"), entry.get("shape"), start, end, digest(payload)])
        node["tensors"] = entries
    try:
        packed = msgpack.packb(body, use_bin_type=True)
    except OverflowError:  # a shape beyond 64 bits cannot even be written into the manifest
        return
    manifest.write_bytes(_envelope(packed))


# -- the check -----------------------------------------------------------------------------------
def _alarm(_signum, _frame):
    raise Hang("a load took longer than 30 s")


def _run_case(base, tmp_root: Path, mutation) -> str:
    files, written = base
    kind, target, data = mutation
    case = tmp_root / "case"
    shutil.rmtree(case, ignore_errors=True)
    for name, content in files.items():
        (case / name).parent.mkdir(parents=True, exist_ok=True)
        (case / name).write_bytes(content)
    consistent = _apply(case, kind, target, data)
    explicit = data.draw(st.sampled_from([None, 2]))
    verify = data.draw(st.sampled_from(["lazy", "full"]))
    size = sum(f.stat().st_size for f in (case / SID).rglob("*") if f.is_file() and not f.is_symlink())
    store = SessionStore(case)
    tracemalloc.start()
    signal.setitimer(signal.ITIMER_REAL, 30.0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CheckpointSkippedWarning)
            snapshot = store.load(SID, explicit, verify=verify)
            tensors = {name: dict(node.tensors) for name, node in snapshot.nodes.items()}
            store.info(SID)
    except SessionCorruptError as exc:
        assert exc.path and exc.reason and str(exc).startswith(exc.path), str(exc)
        return "refused"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 2_000_000 + 200 * size, f"{kind} on {target}: load allocated {peak} bytes for {size} bytes of files"
    # it loaded: it must be a checkpoint that was written (blind) or at least self-consistent (consistent)
    if not consistent:
        fp = snapshot_fingerprint(snapshot)
        assert fp in ([written[2]] if explicit == 2 else list(written.values())), \
            f"{kind} on {target}: loaded a session that was never written"
        if kind == "link_checkpoint":
            linked = int(target.split("/")[0][len("ckpt-"):])
            assert fp != written[linked], f"{target}: a checkpoint directory that is a link was followed"
    for name, node in snapshot.nodes.items():
        for key, tensor in tensors[name].items():
            assert isinstance(tensor, torch.Tensor)
            assert tensor.dtype == node.tensors.dtype(key) and tuple(tensor.shape) == node.tensors.shape(key)
            tensor.sum() if tensor.dtype.is_floating_point and tensor.element_size() > 1 else tensor.clone()
    return "loaded"


@pytest.fixture
def case_root(tmp_path):
    """Where cases are unpacked: tmpfs when there is one (file-system metadata is slow on disks)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        import tempfile

        path = Path(tempfile.mkdtemp(prefix="sage-fuzz-", dir=shm))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
    else:
        yield tmp_path


def _fuzz(base, tmp_root: Path, cases: int) -> dict[str, int]:
    outcomes = {"refused": 0, "loaded": 0}
    previous = signal.signal(signal.SIGALRM, _alarm)

    @settings(max_examples=cases, deadline=None, database=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(mutations())
    def run(mutation):
        outcomes[_run_case(base, tmp_root, mutation)] += 1

    try:
        run()
    finally:
        signal.signal(signal.SIGALRM, previous)
    print(f"\nfuzz: {sum(outcomes.values())} cases, {outcomes['refused']} refused with SessionCorruptError, "
          f"{outcomes['loaded']} loaded a valid checkpoint")
    return outcomes


def test_fuzzed_sessions_load_or_raise_the_documented_error(base, case_root):
    outcomes = _fuzz(base, case_root, CI_CASES)
    assert sum(outcomes.values()) >= CI_CASES
    assert outcomes["refused"] > 0 and outcomes["loaded"] > 0


@pytest.mark.slow
def test_fuzz_more_cases(base, case_root):
    _fuzz(base, case_root, SLOW_CASES)
