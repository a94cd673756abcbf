"""Bit-exact comparison of nested values (tensors, arrays, scalars, containers)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import torch


def _tensor_bytes(t: torch.Tensor) -> torch.Tensor:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8)


def tree_difference(a: Any, b: Any, path: str = "") -> str | None:
    """``None`` if ``a`` and ``b`` are bit-identical, else a line saying where and how they differ."""
    where = path or "<root>"
    if type(a) is not type(b) and not (isinstance(a, np.generic) and isinstance(b, np.generic)):
        return f"{where}: type {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        if a.dtype != b.dtype or a.shape != b.shape:
            return f"{where}: tensor {a.dtype}{tuple(a.shape)} != {b.dtype}{tuple(b.shape)}"
        return None if torch.equal(_tensor_bytes(a), _tensor_bytes(b)) else f"{where}: tensor values differ"
    if isinstance(a, (np.ndarray, np.generic)):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or a.shape != b.shape:
            return f"{where}: array {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        return None if a.tobytes() == b.tobytes() else f"{where}: array values differ"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{where}: keys {sorted(map(str, a))} != {sorted(map(str, b))}"
        for key in a:
            diff = tree_difference(a[key], b[key], f"{path}/{key}" if path else str(key))
            if diff:
                return diff
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            diff = tree_difference(x, y, f"{path}/{i}" if path else str(i))
            if diff:
                return diff
        return None
    if isinstance(a, float):
        same = struct.pack("<d", a) == struct.pack("<d", b)
        return None if same else f"{where}: {a!r} != {b!r}"
    return None if a == b else f"{where}: {a!r:.60} != {b!r:.60}"


def trees_equal(a: Any, b: Any) -> bool:
    """True if ``a`` and ``b`` are bit-identical (dtype, shape, bytes, container structure)."""
    return tree_difference(a, b) is None


def assert_trees_equal(a: Any, b: Any, what: str = "values") -> None:
    """Raise AssertionError saying where ``a`` and ``b`` first differ."""
    diff = tree_difference(a, b)
    if diff is not None:
        raise AssertionError(f"{what} differ at {diff}")
