"""Writing and validating the ``.safetensors`` files of a checkpoint.

Files are written here (not with ``safetensors.torch.save_file``) so that tensor bytes go
from the tensors' memory straight to the file, without an intermediate copy, while a second
thread computes the per-tensor checksums; they are standard safetensors files (8-byte
little-endian header length, JSON header padded with spaces to 8 bytes, data), read back with
``safetensors.safe_open`` (memory-mapped). Tensors are laid out by decreasing element size so
every tensor is aligned to its element size.

The reading side validates a header before anything trusts it: header length against the
file size and a cap, JSON shape, dtypes, shapes times element size against byte ranges, and
that the byte ranges tile the data exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import struct
import sys
import threading
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._errors import SessionCorruptError, SnapshotError

#: safetensors dtype code -> torch dtype (every dtype ``safe_open(..., "pt")`` reads on this torch).
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
#: Checkpoints larger than this hash in a thread while the main thread writes.
_THREADED_HASH_BYTES = 4 * 1024 * 1024


# -- checksums ---------------------------------------------------------------------------------
def _crc32(data: Any) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def _hashlib(name: str) -> Callable[[Any], bytes]:
    def digest(data: Any) -> bytes:
        return hashlib.new(name, data).digest()

    return digest


CHECKSUMS: dict[str, Callable[[Any], bytes]] = {
    "sha256": _hashlib("sha256"),
    "blake2b": _hashlib("blake2b"),
    "crc32": _crc32,
}
DIGEST_SIZE = {"sha256": 32, "blake2b": 64, "crc32": 4}


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
                      checksum: str, sync: bool = True) -> tuple[int, bytes, list[_Item]]:
    """Write a safetensors file at ``path`` (created; fsynced unless ``sync`` is false, for a
    caller that fsyncs a batch of files together). Large files are always fsynced here, while
    the checksum thread is still running, so flushing overlaps hashing (see :func:`synced_here`).

    ``items`` are ``(key, name_in_file, prepared_tensor, dtype_code)``. Returns the file size,
    the checksum of the header bytes and the items with their offsets and checksums, in the
    order given.
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

    failure: list[BaseException] = []

    def hash_all() -> None:
        try:
            for item in layout:
                item.digest = digest(byte_view(item.tensor))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the writing thread
            failure.append(exc)

    hasher = None
    if offset >= _THREADED_HASH_BYTES:
        hasher = threading.Thread(target=hash_all, name="sage-checksum", daemon=True)
        hasher.start()
    try:
        with open(path, "xb", buffering=0) as handle:
            handle.write(struct.pack("<Q", len(text)) + text)
            for item in layout:
                if item.nbytes:
                    view = memoryview(byte_view(item.tensor))
                    written = 0
                    while written < item.nbytes:  # raw writes may be partial
                        written += handle.write(view[written:])
            if sync or hasher is not None:
                os.fsync(handle.fileno())
    finally:
        if hasher is not None:
            hasher.join()
    if hasher is None:
        hash_all()
    if failure:
        raise failure[0]
    return 8 + len(text) + offset, digest(text), entries


def synced_here(data_bytes: int) -> bool:
    """Whether :func:`write_tensor_file` fsyncs a file with ``data_bytes`` of tensor data itself."""
    return data_bytes >= _THREADED_HASH_BYTES


# -- reading ------------------------------------------------------------------------------------
def read_header(path: Path, expected_size: int,
                max_header: int = MAX_HEADER_BYTES) -> tuple[bytes, tuple[int, int, int, int]]:
    """The raw header bytes of the safetensors file at ``path``, after size checks, and the
    file's identity (inode, device, size, mtime) to recognise it when it is memory-mapped later."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise SessionCorruptError(path, "file is missing") from None
    except OSError as exc:
        raise SessionCorruptError(path, f"cannot open: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SessionCorruptError(path, "not a regular file")
        size = info.st_size
        if size != expected_size:
            raise SessionCorruptError(path, f"file has {size} bytes, the manifest records {expected_size}"
                                      + (" (truncated)" if size < expected_size else ""))
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
        return raw, (info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns)
    finally:
        os.close(fd)


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
