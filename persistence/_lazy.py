"""Read-on-touch tensors of one checkpoint file, verified against the manifest on first access."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._errors import SessionCorruptError
from ._format import DTYPES, ITEMSIZE, map_tensor_file


class LazyTensors(Mapping[str, torch.Tensor]):
    """The tensors of one node, memory-mapped from their safetensors file.

    ``load`` only checked that the file exists with the size the manifest records. The first
    lookup opens it (after checking it is that same file), verifies its header (checksum,
    structure, every dtype, shape and byte range equal to the manifest's) and memory-maps it;
    a tensor's bytes are read (page by page, from the mapping) when it is first looked up,
    and its checksum is verified then. Any mismatch raises :class:`SessionCorruptError`.
    Tensors are copy-on-write views of the file: changing them in place never changes the
    file. ``dict(tensors)`` reads everything.
    """

    def __init__(self, path: str, identity: tuple[int, int, int, int], digest: Any, header_digest: bytes,
                 prefix: str, tensors: list[list[Any]]) -> None:
        self._path = path
        self._identity = identity  # (inode, device, size, mtime) of the file load looked at
        self._digest = digest  # the checksum function the manifest names
        self._header_digest = header_digest
        self._prefix = prefix  # tensor names in the file are "<node>/<key>"
        self._tensors = tensors  # the manifest's [key, dtype, shape, start, end, checksum] entries
        self._entries = {entry[0]: entry for entry in tensors}
        self._mapping: Any = None  # the file's private mapping, once opened
        self._data_offset = 0
        self._cache: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return Path(self._path)

    def __getitem__(self, key: str) -> torch.Tensor:
        tensor = self._cache.get(key)
        if tensor is not None:
            return tensor
        entry = self._entries[key]  # KeyError for unknown keys, as a dict
        with self._lock:
            tensor = self._cache.get(key)
            if tensor is None:
                tensor = self._read(entry)
                self._cache[key] = tensor
        return tensor

    def _open(self) -> None:
        prefix = self._prefix
        self._mapping, self._data_offset, _ = map_tensor_file(
            self._path, self._identity, self._digest, self._header_digest,
            ((prefix + key, code, tuple(shape), start, end) for key, code, shape, start, end, _ in self._tensors))

    def _read(self, entry: list[Any]) -> torch.Tensor:
        if self._mapping is None:
            self._open()
        key, code, shape, start, end, digest = entry
        offset = self._data_offset + start
        data = memoryview(self._mapping)[offset:offset + (end - start)]
        if self._digest(data) != digest:
            raise SessionCorruptError(self._path, f"tensor {key[:60]!r}: checksum mismatch "
                                      "(the data was modified or damaged)")
        if code == "BOOL" and data.nbytes and int(np.frombuffer(data, dtype=np.uint8).max()) > 1:
            raise SessionCorruptError(self._path, f"tensor {key[:60]!r}: bool tensor holds bytes other than 0/1")
        dtype = DTYPES[code]
        count = (end - start) // ITEMSIZE[code]
        try:
            if count == 0:
                return torch.empty(shape, dtype=dtype)
            if offset % ITEMSIZE[code]:  # not written by this package (it aligns every tensor): copy to align
                return torch.frombuffer(bytearray(data), dtype=dtype, count=count).reshape(shape)
            # a view of the mapping (the tensor keeps the mapping alive); copy-on-write, never written back
            return torch.frombuffer(self._mapping, dtype=dtype, count=count, offset=offset).reshape(shape)
        except (RuntimeError, ValueError, OverflowError, TypeError) as exc:  # e.g. shape [0, 2**63]
            raise SessionCorruptError(self._path, f"tensor {key[:60]!r}: {str(exc)[:120]}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def dtype(self, key: str) -> torch.dtype:
        """The dtype of ``key`` without reading it."""
        return DTYPES[self._entries[key][1]]

    def shape(self, key: str) -> tuple[int, ...]:
        """The shape of ``key`` without reading it."""
        return tuple(self._entries[key][2])

    def verify(self) -> None:
        """Verify the file's header and read and verify every tensor now (raises :class:`SessionCorruptError`)."""
        with self._lock:
            if self._mapping is None:
                self._open()
        for key in self._entries:
            self[key]

    def materialize(self) -> dict[str, torch.Tensor]:
        """A plain dict with every tensor read and verified."""
        return {key: self[key] for key in self._entries}

    def __repr__(self) -> str:
        return f"<LazyTensors {os.path.basename(self._path)}: {len(self._entries)} tensors, {len(self._cache)} read>"
