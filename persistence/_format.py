"""Writing, validating and memory-mapping the ``.safetensors`` files of a checkpoint.

Files are written here (not with ``safetensors.torch.save_file``) so that tensor bytes go
from the tensors' memory straight to the file (``writev``), without an intermediate copy,
and the per-tensor checksums are computed while the file is being flushed; they are standard safetensors files
(8-byte little-endian header length, JSON header padded with spaces to 8 bytes, data),
readable by any safetensors reader. Tensors are laid out by decreasing element size so every
tensor is aligned to its element size.

The reading side validates a header before anything trusts it: header length against the
file size and a cap, its checksum, JSON shape, dtypes, shapes times element size against
byte ranges, that the byte ranges tile the data exactly, and that all of it equals the
manifest; then it maps the file (private, copy-on-write) and tensors are views of the map.
"""

from __future__ import annotations

import hashlib
import json
import math
import mmap
import os
import stat
import struct
import sys
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._errors import SessionCorruptError, SessionVersionError, SnapshotError

#: safetensors dtype code -> torch dtype (every safetensors dtype this torch has).
DTYPES: dict[str, torch.dtype] = {}
for _code, _attr in [
    ("F64", "float64"), ("F32", "float32"), ("F16", "float16"), ("BF16", "bfloat16"),
    ("I64", "int64"), ("I32", "int32"), ("I16", "int16"), ("I8", "int8"),
    ("U64", "uint64"), ("U32", "uint32"), ("U16", "uint16"), ("U8", "uint8"), ("BOOL", "bool"),
    ("C64", "complex64"), ("F8_E4M3", "float8_e4m3fn"), ("F8_E4M3FNUZ", "float8_e4m3fnuz"),
    ("F8_E5M2", "float8_e5m2"), ("F8_E5M2FNUZ", "float8_e5m2fnuz"), ("F8_E8M0", "float8_e8m0fnu"),
]:
    if hasattr(torch, _attr):
        DTYPES[_code] = getattr(torch, _attr)
CODES: dict[torch.dtype, str] = {dtype: code for code, dtype in DTYPES.items()}
ITEMSIZE: dict[str, int] = {code: torch.empty((), dtype=dtype).element_size() for code, dtype in DTYPES.items()}

#: Largest safetensors header we read (the safetensors library itself refuses > 100 MB).
MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_NDIM = 64


# -- checksums ---------------------------------------------------------------------------------
# They detect damage (bit rot, torn or truncated writes, stray edits), not forgery: the
# structural validation of every field is what makes a hostile file harmless. The default is
# the fastest one available, because loads verify every tensor on first touch: xxh3-128
# (~20 GB/s, from the small ``xxhash`` package), else crc32 from the standard library
# (~2 GB/s). sha256 and blake2b remain selectable, and sessions written with any algorithm
# below stay readable: the manifest records which one was used.
try:
    import xxhash
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    xxhash = None


def _crc32(data: Any) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def _hashlib(name: str) -> Callable[[Any], bytes]:
    def digest(data: Any) -> bytes:
        return hashlib.new(name, data).digest()

    return digest


#: Every checksum algorithm the format knows -> its digest size (what manifests may name).
DIGEST_SIZE = {"sha256": 32, "blake2b": 64, "crc32": 4, "xxh3_128": 16}
#: The algorithms this installation can compute (xxh3_128 needs the ``xxhash`` package).
CHECKSUMS: dict[str, Callable[[Any], bytes]] = {
    "sha256": _hashlib("sha256"),
    "blake2b": _hashlib("blake2b"),
    "crc32": _crc32,
}
if xxhash is not None:
    CHECKSUMS["xxh3_128"] = xxhash.xxh3_128_digest
#: What a :class:`SessionStore` writes unless told otherwise.
DEFAULT_CHECKSUM = "xxh3_128" if "xxh3_128" in CHECKSUMS else "crc32"


def checksum_function(name: Any, path: str | os.PathLike[str]) -> Callable[[Any], bytes]:
    """The function computing checksum ``name`` (as recorded in a manifest at ``path``).

    An unknown name means a bad file (:class:`SessionCorruptError`); a known one this
    installation cannot compute raises :class:`SessionVersionError`, which ``load`` never
    skips: falling back to an older checkpoint because a package is missing would be wrong.
    """
    function = CHECKSUMS.get(name) if isinstance(name, str) else None
    if function is not None:
        return function
    if isinstance(name, str) and name in DIGEST_SIZE:
        raise SessionVersionError(path, f"written with the {name} checksum, which needs the xxhash package: "
                                  "pip install xxhash")
    raise SessionCorruptError(path, f"unknown checksum algorithm {name!r:.20}")


def byte_view(tensor: torch.Tensor) -> np.ndarray:
    """The bytes of a contiguous CPU tensor as a uint8 numpy array (no copy)."""
    flat = tensor.reshape(-1)
    if flat.numel() == 0:
        return np.empty(0, dtype=np.uint8)
    return flat.view(torch.uint8).numpy()


# -- writing ------------------------------------------------------------------------------------
class _Item:
    __slots__ = ("key", "name", "tensor", "code", "shape", "nbytes", "start", "digest")

    def __init__(self, key: str, name: str, tensor: torch.Tensor, code: str) -> None:
        self.key, self.name, self.tensor, self.code = key, name, tensor, code
        self.shape = [int(d) for d in tensor.shape]
        self.nbytes = tensor.numel() * ITEMSIZE[code]
        self.start = 0
        self.digest = b""


def prepare_tensor(value: Any, where: str) -> tuple[torch.Tensor, str]:
    """A contiguous, dense CPU tensor with the bytes of ``value`` and its safetensors dtype code."""
    if isinstance(value, np.ndarray):
        if value.dtype.byteorder == ">":
            value = value.astype(value.dtype.newbyteorder("<"))
        try:
            value = torch.from_numpy(np.ascontiguousarray(value))
        except TypeError as exc:
            raise SnapshotError(f"{where}: numpy dtype {value.dtype} has no tensor equivalent") from exc
    if not isinstance(value, torch.Tensor):
        raise SnapshotError(f"{where}: expected a torch.Tensor or numpy array, got {type(value).__name__}")
    if value.layout != torch.strided:
        raise SnapshotError(f"{where}: {value.layout} tensors cannot be stored; convert with .to_dense()")
    if value.is_quantized:
        raise SnapshotError(f"{where}: quantized tensors cannot be stored; dequantize them first")
    code = CODES.get(value.dtype)
    if code is None:
        raise SnapshotError(f"{where}: dtype {value.dtype} is not supported by safetensors "
                            f"(supported: {', '.join(sorted(map(str, CODES)))})")
    tensor = value.detach()
    if tensor.device.type != "cpu":
        tensor = tensor.to("cpu")
    tensor = tensor.resolve_conj().resolve_neg().contiguous()
    if code == "BOOL" and tensor.numel() and int(tensor.view(torch.uint8).max()) > 1:
        raise SnapshotError(f"{where}: bool tensor holds bytes other than 0 and 1 (made with .view(torch.bool)?); "
                            "use .bool() to normalise it")
    return tensor, code


def write_tensor_file(path: Path, items: list[tuple[str, str, torch.Tensor, str]], metadata: dict[str, str],
                      checksum: str, sync: Callable[[int], None] | None = None) -> tuple[int, bytes, list[_Item]]:
    """Write a safetensors file at ``path`` (created, must not exist).

    ``items`` are ``(key, name_in_file, prepared_tensor, dtype_code)``. The bytes go from the
    tensors' memory to the file (``writev``, no intermediate copy). Once they are written,
    ``sync(fd)`` is handed the open descriptor and owns it (it fsyncs and closes it, in
    another thread, so the flush overlaps the checksums); without ``sync`` the file is
    fsynced and closed here.

    Returns the file size, the checksum of the header bytes and the items with their offsets
    and checksums, in the order given.
    """
    if sys.byteorder != "little":  # pragma: no cover - every platform torch ships for
        raise SnapshotError("writing sessions needs a little-endian machine")
    entries = [_Item(*item) for item in items]
    layout = sorted(entries, key=lambda it: (-ITEMSIZE[it.code], it.name))
    offset = 0
    header: dict[str, Any] = {"__metadata__": metadata}
    for item in layout:
        item.start = offset
        offset += item.nbytes
        header[item.name] = {"dtype": item.code, "shape": item.shape, "data_offsets": [item.start, offset]}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    text += b" " * (-len(text) % 8)
    if len(text) > MAX_HEADER_BYTES:
        raise SnapshotError(f"{path.name}: {len(entries)} tensors make a {len(text)}-byte header "
                            f"(limit {MAX_HEADER_BYTES}); store fewer, larger tensors")
    digest = CHECKSUMS[checksum]
    views = [byte_view(item.tensor) for item in layout]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o666)
    try:
        write_all(fd, [struct.pack("<Q", len(text)) + text, *views])
    except BaseException:
        os.close(fd)
        raise
    if sync is not None:
        sync(fd)  # the flush starts now, and overlaps the checksums below
    else:
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    # Checksums of the tensors in memory (the bytes just written). Computing them after the
    # write rather than during it keeps the two from competing for memory bandwidth; with a
    # ``sync`` they overlap the flush, which waits on the disk.
    for item, view in zip(layout, views):
        item.digest = digest(view)
    return 8 + len(text) + offset, digest(text), entries


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_IOV_MAX = min(os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024, 1024)


def write_all(fd: int, buffers: list[Any]) -> None:
    """Write every buffer, in order, with as few system calls as the kernel allows."""
    pending = [memoryview(b).cast("B") for b in buffers]
    pending = [view for view in pending if view.nbytes]
    index = 0
    while index < len(pending):
        written = os.writev(fd, pending[index:index + _IOV_MAX])
        while written:  # writes may be partial: skip what went out
            view = pending[index]
            if written >= view.nbytes:
                written -= view.nbytes
                index += 1
            else:
                pending[index] = view[written:]
                written = 0


# -- reading ------------------------------------------------------------------------------------
def file_identity(path: Path, expected_size: int) -> tuple[int, int, int, int]:
    """Check that ``path`` is a regular file (not a symlink) of the size the manifest records;
    returns its identity (inode, device, size, mtime), to recognise it when it is opened later."""
    try:
        info = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        raise SessionCorruptError(path, "file is missing") from None
    except OSError as exc:
        raise SessionCorruptError(path, f"cannot stat: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SessionCorruptError(path, "not a regular file")
    size = info.st_size
    if size != expected_size:
        raise SessionCorruptError(path, f"file has {size} bytes, the manifest records {expected_size}"
                                  + (" (truncated)" if size < expected_size else ""))
    return info.st_ino, info.st_dev, size, info.st_mtime_ns


def map_tensor_file(path: Path, identity: tuple[int, int, int, int], digest: Callable[[Any], bytes],
                    header_digest: bytes, items: Iterable[tuple[str, str, tuple[int, ...], int, int]],
                    max_header: int = MAX_HEADER_BYTES) -> tuple[mmap.mmap, int, dict[str, tuple[str, tuple[int, ...], int, int]]]:
    """Open the tensor file that ``load`` checked (same ``identity``), verify its header (length,
    checksum, structure, and that it equals the manifest's ``items``) and memory-map it.

    Returns the private, copy-on-write mapping (writing to it never changes the file), the
    offset of the data in the file and the parsed header. Everything is read through one
    descriptor, so the file validated is the file mapped.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK)  # a FIFO must not block the open
    except FileNotFoundError:
        raise SessionCorruptError(path, "file is missing (checkpoint deleted or pruned after load?)") from None
    except OSError as exc:
        raise SessionCorruptError(path, f"cannot open: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if (not stat.S_ISREG(info.st_mode)
                or (info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns) != identity):
            raise SessionCorruptError(path, "file was replaced or changed after the session was loaded")
        size = info.st_size
        if size < 8:
            raise SessionCorruptError(path, f"truncated: {size} bytes, a safetensors file has at least 8")
        (length,) = struct.unpack("<Q", os.pread(fd, 8, 0))
        if length > size - 8:
            raise SessionCorruptError(path, f"header length {length} exceeds the file size {size}")
        if length > max_header:
            raise SessionCorruptError(path, f"header length {length} exceeds the limit {max_header}")
        raw = os.pread(fd, length, 8)
        if len(raw) != length:
            raise SessionCorruptError(path, "truncated while reading the header")
        if digest(raw) != header_digest:
            raise SessionCorruptError(path, "header checksum mismatch (the file was modified or damaged)")
        header = parse_header(path, raw, size)
        check_items(path, items, header)
        try:
            mapping = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError, OverflowError) as exc:
            raise SessionCorruptError(path, f"cannot memory-map: {exc}") from None
    except OSError as exc:
        raise SessionCorruptError(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return mapping, 8 + length, header


def parse_header(path: Path, raw: bytes, file_size: int) -> dict[str, tuple[str, tuple[int, ...], int, int]]:
    """Validate a safetensors header; returns ``name -> (dtype code, shape, start, end)``."""
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise SessionCorruptError(path, f"header is not valid JSON: {str(exc)[:80]}") from None
    if not isinstance(header, dict):
        raise SessionCorruptError(path, "header is not a JSON object")
    data_len = file_size - 8 - len(raw)
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise SessionCorruptError(path, "header __metadata__ must map strings to strings")
    out: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
    for name, entry in header.items():
        where = f"tensor {name[:60]!r}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise SessionCorruptError(path, f"{where}: entry must have exactly dtype, shape, data_offsets")
        code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(code, str) or code not in DTYPES:
            raise SessionCorruptError(path, f"{where}: unknown dtype {str(code)[:20]!r}")
        if (not isinstance(shape, list) or len(shape) > MAX_NDIM
                or not all(type(d) is int and d >= 0 for d in shape)):
            raise SessionCorruptError(path, f"{where}: shape must be a list of at most {MAX_NDIM} "
                                      "non-negative integers")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise SessionCorruptError(path, f"{where}: data_offsets must be two integers")
        start, end = offsets
        if not 0 <= start <= end <= data_len:
            raise SessionCorruptError(path, f"{where}: byte range [{start}, {end}) is outside the "
                                      f"{data_len} data bytes")
        needed = math.prod(shape) * ITEMSIZE[code]  # exact integers: no overflow
        if needed != end - start:
            raise SessionCorruptError(path, f"{where}: shape {shape[:8]} of {code} needs {needed} bytes, "
                                      f"the byte range holds {end - start}")
        out[name] = (code, tuple(shape), start, end)
    position = 0
    for _, _, start, end in sorted(out.values(), key=lambda v: (v[2], v[3])):
        if start != position:
            raise SessionCorruptError(path, "tensor byte ranges overlap or leave gaps")
        position = end
    if position != data_len:
        raise SessionCorruptError(path, f"tensors cover {position} of {data_len} data bytes")
    return out


def check_items(path: Path, items: Iterable[tuple[str, str, tuple[int, ...], int, int]],
                header: dict[str, tuple[str, tuple[int, ...], int, int]]) -> None:
    """The manifest's view of the tensors (``name, dtype, shape, start, end``) equals the header's."""
    seen = set()
    for name, code, shape, start, end in items:
        if name not in header:
            raise SessionCorruptError(path, f"tensor {name[:60]!r} of the manifest is not in the file")
        if header[name] != (code, shape, start, end):
            got = header[name]
            raise SessionCorruptError(path, f"tensor {name[:60]!r}: file says {got[0]} {list(got[1])[:8]} at "
                                      f"{got[2]}..{got[3]}, the manifest {code} {list(shape)[:8]} at {start}..{end}")
        seen.add(name)
    extra = set(header) - seen
    if extra:
        raise SessionCorruptError(path, f"tensors not in the manifest: {sorted(extra)[:5]}")
