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


def read_limited(path: Path, limit: int) -> bytes:
    """Read a small file, refusing it if larger than ``limit`` before reading."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
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


def check_plain(value: Any, where: str, error: Callable[[str], Exception], allow_tuple: bool = False) -> None:
    """``value`` holds only None/bool/int(64-bit)/float/str/bytes, lists and str-keyed dicts."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    containers = (list, tuple) if allow_tuple else (list,)
    while stack:
        item, path, depth = stack.pop()
        if item is None or isinstance(item, (bool, float, str, bytes)):
            continue
        if isinstance(item, int):
            if not _INT_MIN <= item <= _INT_MAX:
                raise error(f"{path}: integer does not fit in 64 bits")
            continue
        if depth >= MAX_DEPTH:
            raise error(f"{path}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, containers):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item))
        elif isinstance(item, dict):
            for key, v in item.items():
                if not isinstance(key, str):
                    raise error(f"{path}: dict key {key!r:.40} is a {type(key).__name__}; keys must be str")
                stack.append((v, f"{path}.{key[:40]}", depth + 1))
        else:
            raise error(f"{path}: a {type(item).__module__}.{type(item).__qualname__} is not a plain value "
                        "(None, bool, int, float, str, bytes, list, dict with str keys)")


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

    if set(body) != _BODY_KEYS:
        missing, extra = _BODY_KEYS - set(body), set(body) - _BODY_KEYS
        raise bad(f"manifest keys: missing {sorted(missing)}, unexpected {sorted(extra)[:5]}")
    if not isinstance(body["session"], str):
        raise bad("session id is not a string")
    if not _is_int(body["checkpoint"]) or body["checkpoint"] < 1:
        raise bad("checkpoint number is not a positive integer")
    if not (_is_time(body["created"]) and _is_time(body["written"])):
        raise bad("created/written times are not finite floats")
    checksum = body["checksum"]
    if not isinstance(checksum, str) or checksum not in DIGEST_SIZE:
        raise bad(f"unknown checksum algorithm {checksum!r:.20}")
    check_plain(body["writer"], "writer", bad)
    if not isinstance(body["orchestrator"], dict):
        raise bad("orchestrator state is not a map")
    check_plain(body["orchestrator"], "orchestrator", bad)
    check_rng_state(body["rng"], str(path))
    nodes = body["nodes"]
    if not isinstance(nodes, list):
        raise bad("nodes is not a list")
    names, files = set(), set()
    for index, node in enumerate(nodes):
        where = f"nodes[{index}]"
        if not isinstance(node, dict) or set(node) != _NODE_KEYS:
            raise bad(f"{where}: malformed node entry")
        for key in ("name", "plugin", "version", "file"):
            if not isinstance(node[key], str):
                raise bad(f"{where}.{key} is not a string")
        if node["name"] in names:
            raise bad(f"{where}: duplicate node name {node['name']!r:.40}")
        names.add(node["name"])
        if node["file"] != f"n{index:03d}.safetensors" or node["file"] in files:
            raise bad(f"{where}: unexpected tensor file name {node['file']!r:.40}")
        files.add(node["file"])
        if not _is_int(node["api_version"]):
            raise bad(f"{where}.api_version is not an integer")
        if not (node["step"] is None or _is_int(node["step"])):
            raise bad(f"{where}.step is not an integer")
        if not (node["energy"] is None or type(node["energy"]) is float):
            raise bad(f"{where}.energy is not a float")
        if not _is_int(node["bytes"]) or node["bytes"] < 8:
            raise bad(f"{where}.bytes is not a file size")
        if not isinstance(node["header"], bytes) or len(node["header"]) != DIGEST_SIZE[checksum]:
            raise bad(f"{where}.header is not a {checksum} digest")
        if not isinstance(node["meta"], dict):
            raise bad(f"{where}.meta is not a map")
        check_plain(node["meta"], f"{where}.meta", bad)
        tensors = node["tensors"]
        if not isinstance(tensors, list):
            raise bad(f"{where}.tensors is not a list")
        keys = set()
        for t_index, entry in enumerate(tensors):
            t_where = f"{where}.tensors[{t_index}]"
            if not (isinstance(entry, list) and len(entry) == 6):
                raise bad(f"{t_where}: malformed tensor entry")
            key, code, shape, start, end, digest = entry
            if not isinstance(key, str) or key in keys:
                raise bad(f"{t_where}: tensor key missing or duplicated")
            keys.add(key)
            if not isinstance(code, str) or code not in DTYPES:
                raise bad(f"{t_where}: unknown dtype {str(code)[:20]!r}")
            if (not isinstance(shape, list) or len(shape) > MAX_NDIM
                    or not all(_is_int(d) and d >= 0 for d in shape)):
                raise bad(f"{t_where}: invalid shape")
            if not (_is_int(start) and _is_int(end) and 0 <= start <= end <= node["bytes"]):
                raise bad(f"{t_where}: invalid byte range")
            if math.prod(shape) * ITEMSIZE[code] != end - start:
                raise bad(f"{t_where}: shape and dtype need {math.prod(shape) * ITEMSIZE[code]} bytes, "
                          f"the range holds {end - start}")
            if not isinstance(digest, bytes) or len(digest) != DIGEST_SIZE[checksum]:
                raise bad(f"{t_where}: checksum is not a {checksum} digest")


def validate_session_file(path: Path, data: Any) -> dict[str, Any]:
    """Validate the small ``session.msgpack`` record written by ``create``."""
    if (not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("id"), str)
            or not _is_time(data.get("created")) or not _is_int(data.get("schema"))):
        raise SessionCorruptError(path, "not a valid session record")
    return data
