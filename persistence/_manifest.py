"""The checkpoint manifest: a checksummed msgpack envelope around a msgpack body.

``manifest.msgpack`` is ``{"format": FORMAT, "schema": N, "checksum": <algorithm>,
"digest": <checksum of body>, "body": <msgpack bytes>}``. The envelope can be read without
trusting anything; the body is unpacked only when its digest matches, with limits derived
from its length, no ext types, str map keys only, and then validated field by field.

Schema history: 1 (sha256 envelope; tensor checksums sha256, blake2b or crc32); 2 (adds
xxh3_128, the new default, for the envelope and the tensors). A schema-1 body is a valid
schema-2 body, so the migration is the identity; the bump makes older readers refuse
schema-2 sessions with "upgrade sage-irp" instead of mistaking them for corrupt ones.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

from ._errors import SessionCorruptError, SessionVersionError, SnapshotError
from ._format import CHECKSUMS, DEFAULT_CHECKSUM, DIGEST_SIZE, DTYPES, ITEMSIZE, MAX_NDIM, checksum_function
from ._rng import check_rng_state

FORMAT = "sage-irp-session"
#: Schema of manifests this version writes.
SCHEMA = 2
#: ``MIGRATIONS[n]`` turns a schema-``n`` body into a schema-``n + 1`` body.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: lambda body: body,  # schema 2 only added checksum algorithms
}
#: Default cap on a manifest's size (bodies hold meta, orchestrator and RNG state, no tensors).
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
#: Deepest nesting accepted in meta / orchestrator values.
MAX_DEPTH = 200
FILE_NAME = "manifest.msgpack"
SESSION_FILE = "session.msgpack"


class _ExtRefused(Exception):
    pass


def _refuse_ext(code: int, data: bytes) -> Any:
    raise _ExtRefused(f"msgpack ext type {code} is not allowed")


def unpack_limited(path: Path, data: bytes) -> Any:
    """msgpack-decode ``data`` with every size limit tied to ``len(data)``; no ext types."""
    n = len(data)
    try:
        return msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=True, ext_hook=_refuse_ext, timestamp=0,
            max_str_len=n, max_bin_len=n, max_array_len=n, max_map_len=n // 2, max_ext_len=0,
        )
    except (_ExtRefused, ValueError, TypeError, OverflowError, RecursionError, MemoryError,
            msgpack.UnpackException) as exc:
        kind = "trailing bytes" if isinstance(exc, msgpack.ExtraData) else str(exc)[:100] or type(exc).__name__
        raise SessionCorruptError(path, f"invalid msgpack: {kind}") from None


def pack(value: Any, where: str) -> bytes:
    try:
        return msgpack.packb(value, use_bin_type=True, strict_types=False, datetime=False)
    except (TypeError, ValueError, OverflowError) as exc:
        raise SnapshotError(f"{where}: cannot be stored in msgpack: {exc}") from None


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def read_limited(path: Path, limit: int) -> bytes:
    """Read a small file, refusing it if larger than ``limit`` before reading."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_CLOEXEC | _O_NONBLOCK)  # a FIFO must not block the open
    except FileNotFoundError:
        raise SessionCorruptError(path, "file is missing") from None
    except OSError as exc:
        raise SessionCorruptError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SessionCorruptError(path, "not a regular file")
        if info.st_size > limit:
            raise SessionCorruptError(path, f"{info.st_size} bytes exceeds the manifest limit {limit}")
        data = os.read(fd, info.st_size + 1)  # sized by the file, never by the limit
        if len(data) < info.st_size:  # a short read: read on to the end of the file
            parts, total = [data], len(data)
            while parts[-1] and total <= limit:
                parts.append(os.read(fd, 1 << 20))
                total += len(parts[-1])
            data = b"".join(parts)
    except OSError as exc:
        raise SessionCorruptError(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise SessionCorruptError(path, f"exceeds the manifest limit {limit}")
    return data


# -- plain values ---------------------------------------------------------------------------------
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


_SCALARS = frozenset({type(None), bool, float, str, bytes})


def _where(root: str, entry: tuple[Any, int, Any, Any]) -> str:
    """The path of a stack entry of :func:`check_plain` (built only to report an error)."""
    keys = []
    while entry[2] is not None:
        keys.append(entry[3])
        entry = entry[2]
    return root + "".join(f"[{key}]" if type(key) is int else f".{key[:40]}" for key in reversed(keys))


def check_plain(value: Any, where: str, error: Callable[[str], Exception], allow_tuple: bool = False) -> None:
    """``value`` holds only None/bool/int(64-bit)/float/str/bytes, lists and str-keyed dicts."""
    # Stack entries are (item, depth, parent entry, key in parent): paths are only spelled out
    # for an error. Scalars of the exact built-in types are checked without a stack entry.
    scalars, int_min, int_max = _SCALARS, _INT_MIN, _INT_MAX
    containers = (list, tuple) if allow_tuple else (list,)
    stack: list[tuple[Any, int, Any, Any]] = [(value, 0, None, None)]
    while stack:
        entry = stack.pop()
        item, depth = entry[0], entry[1]
        kind = type(item)
        if kind is not dict and kind is not list:  # the common containers skip these checks
            if item is None or isinstance(item, (bool, float, str, bytes)):
                continue
            if isinstance(item, int):
                if not int_min <= item <= int_max:
                    raise error(f"{_where(where, entry)}: integer does not fit in 64 bits")
                continue
        if depth >= MAX_DEPTH:
            raise error(f"{_where(where, entry)}: nested deeper than {MAX_DEPTH} levels")
        if kind is list or isinstance(item, containers):
            pairs: Any = enumerate(item)
        elif isinstance(item, dict):
            pairs = item.items()
            for key in item:
                if type(key) is not str and not isinstance(key, str):
                    raise error(f"{_where(where, entry)}: dict key {key!r:.40} is a {type(key).__name__}; "
                                "keys must be str")
        else:
            raise error(f"{_where(where, entry)}: a {type(item).__module__}.{type(item).__qualname__} is not a "
                        "plain value (None, bool, int, float, str, bytes, list, dict with str keys)")
        depth += 1
        for key, child in pairs:
            kind = type(child)
            if kind in scalars or (kind is int and int_min <= child <= int_max):
                continue
            stack.append((child, depth, entry, key))


# -- envelope -------------------------------------------------------------------------------------
def dump(body: dict[str, Any], checksum: str = DEFAULT_CHECKSUM) -> bytes:
    """The bytes of a manifest file holding ``body``, its digest computed with ``checksum``."""
    raw = pack(body, "manifest")
    return pack({"format": FORMAT, "schema": SCHEMA, "checksum": checksum,
                 "digest": CHECKSUMS[checksum](raw), "body": raw}, "manifest")


_ENVELOPE_KEYS = {"format", "schema", "checksum", "digest", "body"}


def load(path: Path, limit: int = MAX_MANIFEST_BYTES) -> dict[str, Any]:
    """Read, verify, migrate and validate the manifest at ``path``; returns the body."""
    data = read_limited(path, limit)
    envelope = unpack_limited(path, data)
    if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
        raise SessionCorruptError(path, f"not a {FORMAT} manifest")
    if envelope.keys() != _ENVELOPE_KEYS:
        raise SessionCorruptError(path, f"manifest envelope has keys {sorted(envelope)[:8]}")
    schema = envelope["schema"]
    if type(schema) is not int or schema < 1:
        raise SessionCorruptError(path, f"invalid schema version {schema!r:.20}")
    if schema > SCHEMA:
        raise SessionVersionError(path, f"written with session schema {schema}; this sage-irp reads schema "
                                  f"<= {SCHEMA}: upgrade sage-irp to load it")
    body_bytes, digest, checksum = envelope["body"], envelope["digest"], envelope["checksum"]
    if not isinstance(body_bytes, bytes) or not isinstance(digest, bytes) or not isinstance(checksum, str):
        raise SessionCorruptError(path, "manifest envelope fields have the wrong types")
    if checksum_function(checksum, path)(body_bytes) != digest:
        raise SessionCorruptError(path, "manifest checksum mismatch (the file was modified or damaged)")
    body = unpack_limited(path, body_bytes)
    if not isinstance(body, dict):
        raise SessionCorruptError(path, "manifest body is not a map")
    while schema < SCHEMA:
        migrate = MIGRATIONS.get(schema)
        if migrate is None:
            raise SessionVersionError(path, f"session schema {schema} is too old: no migration to {schema + 1}")
        try:
            body = migrate(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise SessionCorruptError(path, f"cannot migrate schema {schema} to {schema + 1}: {exc}") from None
        schema += 1
    validate_body(path, body)
    return body


# -- body validation ------------------------------------------------------------------------------
_BODY_KEYS = {"session", "checkpoint", "created", "written", "writer", "checksum", "nodes", "orchestrator", "rng"}
_NODE_KEYS = {"name", "plugin", "version", "api_version", "step", "energy", "meta", "file", "bytes", "header",
              "tensors"}


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_time(value: Any) -> bool:
    return type(value) is float and math.isfinite(value)


def validate_body(path: Path, body: dict[str, Any]) -> None:
    """Check every field of a manifest body; raise :class:`SessionCorruptError` on the first problem."""
    def bad(reason: str) -> SessionCorruptError:
        return SessionCorruptError(path, reason)

    if body.keys() != _BODY_KEYS:
        missing, extra = _BODY_KEYS - set(body), set(body) - _BODY_KEYS
        raise bad(f"manifest keys: missing {sorted(missing)}, unexpected {sorted(extra)[:5]}")
    if type(body["session"]) is not str:
        raise bad("session id is not a string")
    if not _is_int(body["checkpoint"]) or body["checkpoint"] < 1:
        raise bad("checkpoint number is not a positive integer")
    if not (_is_time(body["created"]) and _is_time(body["written"])):
        raise bad("created/written times are not finite floats")
    checksum = body["checksum"]
    if type(checksum) is not str or checksum not in DIGEST_SIZE:
        raise bad(f"unknown checksum algorithm {checksum!r:.20}")
    digest_size = DIGEST_SIZE[checksum]
    check_plain(body["writer"], "writer", bad)
    if type(body["orchestrator"]) is not dict:
        raise bad("orchestrator state is not a map")
    check_plain(body["orchestrator"], "orchestrator", bad)
    check_rng_state(body["rng"], str(path))
    nodes = body["nodes"]
    if type(nodes) is not list:
        raise bad("nodes is not a list")
    names, files = set(), set()
    for index, node in enumerate(nodes):
        if type(node) is not dict or node.keys() != _NODE_KEYS:
            raise bad(f"nodes[{index}]: malformed node entry")
        name, file_name, size = node["name"], node["file"], node["bytes"]
        for key in ("name", "plugin", "version", "file"):
            if type(node[key]) is not str:
                raise bad(f"nodes[{index}].{key} is not a string")
        if name in names:
            raise bad(f"nodes[{index}]: duplicate node name {name!r:.40}")
        names.add(name)
        if file_name != f"n{index:03d}.safetensors" or file_name in files:
            raise bad(f"nodes[{index}]: unexpected tensor file name {file_name!r:.40}")
        files.add(file_name)
        if not _is_int(node["api_version"]):
            raise bad(f"nodes[{index}].api_version is not an integer")
        if not (node["step"] is None or _is_int(node["step"])):
            raise bad(f"nodes[{index}].step is not an integer")
        if not (node["energy"] is None or type(node["energy"]) is float):
            raise bad(f"nodes[{index}].energy is not a float")
        if not _is_int(size) or size < 8:
            raise bad(f"nodes[{index}].bytes is not a file size")
        if type(node["header"]) is not bytes or len(node["header"]) != digest_size:
            raise bad(f"nodes[{index}].header is not a {checksum} digest")
        if type(node["meta"]) is not dict:
            raise bad(f"nodes[{index}].meta is not a map")
        check_plain(node["meta"], f"nodes[{index}].meta", bad)
        tensors = node["tensors"]
        if type(tensors) is not list:
            raise bad(f"nodes[{index}].tensors is not a list")
        keys: set[str] = set()
        for t_index, entry in enumerate(tensors):
            if type(entry) is not list or len(entry) != 6:
                raise bad(f"nodes[{index}].tensors[{t_index}]: malformed tensor entry")
            key, code, shape, start, end, digest = entry
            if type(key) is not str or key in keys:
                raise bad(f"nodes[{index}].tensors[{t_index}]: tensor key missing or duplicated")
            keys.add(key)
            itemsize = ITEMSIZE.get(code) if type(code) is str else None  # ITEMSIZE has every dtype code
            if itemsize is None:
                raise bad(f"nodes[{index}].tensors[{t_index}]: unknown dtype {str(code)[:20]!r}")
            if type(shape) is not list or len(shape) > MAX_NDIM:
                raise bad(f"nodes[{index}].tensors[{t_index}]: invalid shape")
            count = 1
            for dim in shape:
                if type(dim) is not int or dim < 0:
                    raise bad(f"nodes[{index}].tensors[{t_index}]: invalid shape")
                count *= dim  # exact integers: no overflow
            if type(start) is not int or type(end) is not int or not 0 <= start <= end <= size:
                raise bad(f"nodes[{index}].tensors[{t_index}]: invalid byte range")
            if count * itemsize != end - start:
                raise bad(f"nodes[{index}].tensors[{t_index}]: shape and dtype need {count * itemsize} bytes, "
                          f"the range holds {end - start}")
            if type(digest) is not bytes or len(digest) != digest_size:
                raise bad(f"nodes[{index}].tensors[{t_index}]: checksum is not a {checksum} digest")


def validate_session_file(path: Path, data: Any) -> dict[str, Any]:
    """Validate the small ``session.msgpack`` record written by ``create``."""
    if (not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("id"), str)
            or not _is_time(data.get("created")) or not _is_int(data.get("schema"))):
        raise SessionCorruptError(path, "not a valid session record")
    return data
