"""Shared helpers of the persistence tests (also imported by the child processes in child.py)."""

from __future__ import annotations

import hashlib
import random
import struct
from typing import Any

import numpy as np
import torch

from persistence import PluginSnapshot, SessionSnapshot
from sage_core import IRPPlugin, IRPState

#: Every dtype the store supports, for round-trip tests.
ALL_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
              torch.int8, torch.uint64, torch.uint32, torch.uint16, torch.uint8, torch.bool, torch.complex64,
              torch.float8_e4m3fn, torch.float8_e4m3fnuz, torch.float8_e5m2, torch.float8_e5m2fnuz,
              torch.float8_e8m0fnu]


def fingerprint(value: Any) -> str:
    """A digest of a nested value that differs for any difference in type, dtype, shape, bit or order."""
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()


def _feed(h: Any, value: Any) -> None:
    def tag(t: str, payload: bytes = b"") -> None:
        h.update(t.encode() + struct.pack("<Q", len(payload)) + payload)

    if isinstance(value, IRPState):
        tag("S")
        for part in (value.x, value.step, value.energy, value.meta, value.carry):
            _feed(h, part)
    elif isinstance(value, torch.Tensor):
        flat = value.detach().contiguous().reshape(-1)
        data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
        tag("T", f"{value.dtype}|{tuple(value.shape)}".encode())
        tag("b", data)
    elif isinstance(value, np.ndarray):
        tag("A", f"{value.dtype.str}|{value.shape}".encode())
        tag("b", np.ascontiguousarray(value).tobytes())
    elif isinstance(value, np.generic):
        tag("N", value.dtype.str.encode() + np.asarray(value).tobytes())
    elif value is None:
        tag("0")
    elif isinstance(value, bool):
        tag("B", bytes([value]))
    elif isinstance(value, int):
        tag("I", str(value).encode())
    elif isinstance(value, float):
        tag("F", struct.pack("<d", value))
    elif isinstance(value, str):
        tag("s", value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, bytes):
        tag("y", value)
    elif isinstance(value, dict):
        tag("D", str(len(value)).encode())
        for key, item in value.items():
            _feed(h, key)
            _feed(h, item)
    elif isinstance(value, (list, tuple)):
        tag("L" if isinstance(value, list) else "U", str(len(value)).encode())
        for item in value:
            _feed(h, item)
    elif hasattr(value, "keys"):  # LazyTensors and other mappings: as a dict
        _feed(h, {k: value[k] for k in value})
    else:
        raise TypeError(f"cannot fingerprint {type(value).__name__}")


def snapshot_fingerprint(snapshot: SessionSnapshot) -> str:
    return fingerprint([[name, node.plugin, node.version, node.api_version, dict(node.tensors), node.meta]
                        for name, node in snapshot.nodes.items()] + [snapshot.orchestrator, snapshot.rng])


def numbered_snapshot(n: int, size: int = 4096, rng: bool = True) -> SessionSnapshot:
    """A deterministic snapshot that differs for every ``n`` (``size`` float32 elements in node a)."""
    g = torch.Generator().manual_seed(n)
    a = PluginSnapshot("toy", "1.0.0", 1, {
        "x": torch.randn(size, generator=g),
        "carry/h": torch.randn(3, 5, generator=g).to(torch.bfloat16),
        "carry/mask": torch.rand(7, generator=g) > 0.5,
    }, {"step": n, "energy": 1.0 / (n + 1), "nested": {"list": [n, "s", b"b", None, 2.5], "flag": True}})
    b = PluginSnapshot("other", "2", 1, {"count": torch.arange(n % 17, dtype=torch.int64),
                                         "scalar": torch.tensor(float(n), dtype=torch.float64)}, {"step": 2 * n})
    state: dict[str, Any] = {}
    if rng:
        torch.manual_seed(n)
        np.random.seed(n % 2**32)
        random.seed(n)
        from persistence import capture_rng_state

        state = capture_rng_state()
    return SessionSnapshot({"a": a, "b": b}, {"round": n, "budget": {"a": 1.5 * n, "b": None}, "trust": [0.5, n]},
                           state)


class GlobalRandomWalk(IRPPlugin):
    """A plugin that draws its noise from the *global* torch, numpy and python generators.

    Resuming it bit-exactly needs the RNG states restored (persistence.restore_rng_state).
    """

    name = "global-walk"
    version = "0.1.0"

    def init_state(self, x0: Any, ctx: Any) -> IRPState:
        return IRPState(x=torch.zeros(4, dtype=torch.float64), carry={"h": np.zeros(3, dtype=np.float32)},
                        meta={"draws": []})

    def energy(self, state: IRPState) -> float:
        return float((state.x ** 2).sum())

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        x = state.x + torch.randn(4, dtype=torch.float64)
        h = state.carry["h"] + np.random.standard_normal(3).astype(np.float32)
        draws = [*state.meta["draws"], random.random()]
        return IRPState(x=x, step=state.step + 1, meta={"draws": draws}, carry={"h": h})


def make_plugin(name: str) -> IRPPlugin:
    """The plugins of the resume tests, by name."""
    if name == "toy":
        from plugins.toy import QuadraticDescent

        return QuadraticDescent(dim=6, lr=0.05, noise=0.3, problem_seed=3)
    if name == "global-walk":
        return GlobalRandomWalk()
    raise KeyError(name)


def fixed_snapshot(n: int) -> SessionSnapshot:
    """Like :func:`numbered_snapshot`, but no tensor depends on a random generator's algorithm,
    so that files written from it can be kept in the repository (``data/legacy-schema1``)."""
    a = PluginSnapshot("toy", "1.0.0", 1, {
        "x": torch.arange(24, dtype=torch.float32).reshape(4, 6) * n / 7,
        "carry/h": (torch.arange(15, dtype=torch.float32) - n).reshape(3, 5).to(torch.bfloat16),
        "carry/mask": torch.arange(7) % (n + 1) == 0,
    }, {"step": n, "energy": 1.0 / (n + 1), "nested": {"list": [n, "s", b"b", None, 2.5], "flag": True}})
    b = PluginSnapshot("other", "2", 1, {"count": torch.arange(n, dtype=torch.int64),
                                         "scalar": torch.tensor(float(n), dtype=torch.float64)}, {"step": 2 * n})
    random.seed(n)
    np.random.seed(n)
    from persistence import capture_rng_state

    rng = {key: value for key, value in capture_rng_state().items() if key != "torch"}  # python and numpy: stable
    return SessionSnapshot({"a": a, "b": b}, {"round": n, "trust": [0.5, n]}, rng)
