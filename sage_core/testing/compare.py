"""Comparison of nested values (tensors, arrays, scalars, containers): bit-exact, or with a
tolerance on floating-point leaves."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import torch


def _tensor_bytes(t: torch.Tensor) -> torch.Tensor:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8)


def tree_difference(a: Any, b: Any, path: str = "", tol: float | None = None) -> str | None:
    """``None`` if ``a`` and ``b`` are bit-identical, else a line saying where and how they differ.

    With ``tol``, floating-point tensors, arrays and floats need only agree within ``tol``
    (relative and absolute, as ``numpy.allclose``); everything else must still be identical.
    """
    where = path or "<root>"
    if type(a) is not type(b) and not (isinstance(a, np.generic) and isinstance(b, np.generic)):
        return f"{where}: type {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        if a.dtype != b.dtype or a.shape != b.shape:
            return f"{where}: tensor {a.dtype}{tuple(a.shape)} != {b.dtype}{tuple(b.shape)}"
        if tol is not None and a.is_floating_point():
            close = torch.allclose(a.detach().cpu(), b.detach().cpu(), rtol=tol, atol=tol, equal_nan=True)
            return None if close else f"{where}: tensor values differ by more than {tol}"
        return None if torch.equal(_tensor_bytes(a), _tensor_bytes(b)) else f"{where}: tensor values differ"
    if isinstance(a, (np.ndarray, np.generic)):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or a.shape != b.shape:
            return f"{where}: array {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        if tol is not None and np.issubdtype(a.dtype, np.floating):
            close = np.allclose(a, b, rtol=tol, atol=tol, equal_nan=True)
            return None if close else f"{where}: array values differ by more than {tol}"
        return None if a.tobytes() == b.tobytes() else f"{where}: array values differ"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{where}: keys {sorted(map(str, a))} != {sorted(map(str, b))}"
        for key in a:
            diff = tree_difference(a[key], b[key], f"{path}/{key}" if path else str(key), tol)
            if diff:
                return diff
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            diff = tree_difference(x, y, f"{path}/{i}" if path else str(i), tol)
            if diff:
                return diff
        return None
    if isinstance(a, float):
        if tol is not None:
            close = math.isclose(a, b, rel_tol=tol, abs_tol=tol) or (math.isnan(a) and math.isnan(b))
            return None if close else f"{where}: {a!r} != {b!r} (tolerance {tol})"
        same = struct.pack("<d", a) == struct.pack("<d", b)
        return None if same else f"{where}: {a!r} != {b!r}"
    return None if a == b else f"{where}: {a!r:.60} != {b!r:.60}"


def trees_equal(a: Any, b: Any) -> bool:
    """True if ``a`` and ``b`` are bit-identical (dtype, shape, bytes, container structure)."""
    return tree_difference(a, b) is None


def assert_trees_equal(a: Any, b: Any, what: str = "values", tol: float | None = None) -> None:
    """Raise AssertionError saying where ``a`` and ``b`` first differ (``tol``: see :func:`tree_difference`)."""
    diff = tree_difference(a, b, tol=tol)
    if diff is not None:
        raise AssertionError(f"{what} differ at {diff}")
