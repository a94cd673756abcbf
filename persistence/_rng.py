"""Global RNG state of python ``random``, numpy's legacy global generator and torch (CPU).

The captured state is a plain, msgpack-able dict, so it can travel in a session manifest.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from ._errors import SessionCorruptError

#: Python's Mersenne Twister state: 624 words plus the position (stored as 625 little-endian uint32).
_PY_WORDS = 625
_NP_KEYS_BYTES = 624 * 4


def capture_rng_state() -> dict[str, Any]:
    """The state of python ``random``, ``numpy.random`` (global) and torch's CPU generator."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": [int(version), np.array(internal, dtype="<u4").tobytes(), gauss],
        "numpy": [str(name), np.ascontiguousarray(keys, dtype="<u4").tobytes(), int(pos), int(has_gauss),
                  float(cached)],
        "torch": bytes(torch.get_rng_state().numpy().tobytes()),
    }


def check_rng_state(state: Any, where: str = "rng") -> None:
    """Raise :class:`SessionCorruptError` unless ``state`` is what :func:`capture_rng_state` returns.

    Missing keys are allowed (that generator is then left alone by :func:`restore_rng_state`).
    """
    def bad(reason: str) -> SessionCorruptError:
        return SessionCorruptError(where, f"rng state: {reason}")

    if not isinstance(state, dict):
        raise bad(f"expected a map, got {type(state).__name__}")
    unknown = set(state) - {"python", "numpy", "torch"}
    if unknown:
        raise bad(f"unknown generators {sorted(map(str, unknown))}")
    if "python" in state:
        py = state["python"]
        if not (isinstance(py, list) and len(py) == 3 and type(py[0]) is int and isinstance(py[1], bytes)
                and len(py[1]) == 4 * _PY_WORDS and (py[2] is None or type(py[2]) is float)):
            raise bad("python state is malformed")
        if not 0 <= int.from_bytes(py[1][-4:], "little") <= 624:
            raise bad("python state position out of range")
    if "numpy" in state:
        npy = state["numpy"]
        if not (isinstance(npy, list) and len(npy) == 5 and npy[0] == "MT19937" and isinstance(npy[1], bytes)
                and len(npy[1]) == _NP_KEYS_BYTES and type(npy[2]) is int and 0 <= npy[2] <= 624
                and type(npy[3]) is int and npy[3] in (0, 1) and type(npy[4]) is float):
            raise bad("numpy state is malformed")
    if "torch" in state:
        data = state["torch"]
        expected = _torch_state_bytes()
        if not isinstance(data, bytes) or len(data) != expected:
            raise bad(f"torch state must be {expected} bytes")


_TORCH_STATE_BYTES: list[int] = []


def _torch_state_bytes() -> int:
    """Size of torch's CPU generator state (fixed for a torch build; asked once)."""
    if not _TORCH_STATE_BYTES:
        _TORCH_STATE_BYTES.append(torch.get_rng_state().numel())
    return _TORCH_STATE_BYTES[0]


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set the global generators to a state from :func:`capture_rng_state` (validated first)."""
    check_rng_state(state)
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(np.frombuffer(internal, dtype="<u4").tolist()), gauss))
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.frombuffer(keys, dtype="<u4").astype(np.uint32), pos, has_gauss, cached))
    if "torch" in state:
        torch.set_rng_state(torch.frombuffer(bytearray(state["torch"]), dtype=torch.uint8))


__all__ = ["capture_rng_state", "check_rng_state", "restore_rng_state"]
