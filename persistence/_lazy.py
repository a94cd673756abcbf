"""Read-on-touch tensors of one checkpoint file, verified against the manifest on first access."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from ._errors import SessionCorruptError
from ._format import CHECKSUMS, DTYPES, byte_view


class LazyTensors(Mapping[str, torch.Tensor]):
    """The tensors of one node, memory-mapped through ``safetensors.safe_open``.

    The file is memory-mapped on first access (after checking it is the file whose header
    was validated at load); a tensor's bytes are read (page by page, from the
    memory-mapped file) when it is first looked up, and its checksum is verified then:
    a mismatch raises :class:`SessionCorruptError`. Tensors are copy-on-write views of the
    file: changing them in place never changes the file. ``dict(tensors)`` reads everything.
    """

    def __init__(self, path: Path, opener: Any, entries: dict[str, tuple[str, str, tuple[int, ...], bytes]],
                 checksum: str) -> None:
        self._path = path
        self._opener = opener  # returns the safe_open handle; called once, on first access
        self._handle: Any = None
        self._entries = entries  # key -> (name in file, dtype code, shape, digest)
        self._digest = CHECKSUMS[checksum]
        self._cache: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path

    def __getitem__(self, key: str) -> torch.Tensor:
        tensor = self._cache.get(key)
        if tensor is not None:
            return tensor
        name, code, shape, digest = self._entries[key]  # KeyError for unknown keys, as a dict
        with self._lock:
            tensor = self._cache.get(key)
            if tensor is None:
                tensor = self._read(key, name, code, shape, digest)
                self._cache[key] = tensor
        return tensor

    def _read(self, key: str, name: str, code: str, shape: tuple[int, ...], digest: bytes) -> torch.Tensor:
        if self._handle is None:
            self._handle = self._opener()
        try:
            tensor = self._handle.get_tensor(name)
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own and OS errors
            raise SessionCorruptError(self._path, f"tensor {key[:60]!r}: {str(exc)[:120]}") from None
        if tensor.dtype != DTYPES[code] or tuple(tensor.shape) != shape:
            raise SessionCorruptError(self._path, f"tensor {key[:60]!r}: read {tensor.dtype} {tuple(tensor.shape)}, "
                                      f"the manifest records {code} {shape}")
        data = byte_view(tensor)
        if self._digest(data) != digest:
            raise SessionCorruptError(self._path, f"tensor {key[:60]!r}: checksum mismatch "
                                      "(the data was modified or damaged)")
        if code == "BOOL" and data.size and data.max() > 1:
            raise SessionCorruptError(self._path, f"tensor {key[:60]!r}: bool tensor holds bytes other than 0/1")
        return tensor

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
        return self._entries[key][2]

    def verify(self) -> None:
        """Read and verify every tensor now (raises :class:`SessionCorruptError`)."""
        for key in self._entries:
            self[key]

    def materialize(self) -> dict[str, torch.Tensor]:
        """A plain dict with every tensor read and verified."""
        return {key: self[key] for key in self._entries}

    def __repr__(self) -> str:
        return f"<LazyTensors {self._path.name}: {len(self._entries)} tensors, {len(self._cache)} read>"
