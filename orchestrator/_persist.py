"""Access to the persistence package's snapshot types, with a stand-in until it provides them.

The orchestrator writes sessions through ``persistence.SessionStore`` (passed in by the
caller). If the installed ``persistence`` does not yet export the snapshot types, minimal
equivalents with the same fields are used so that in-memory stores keep working.
"""

from __future__ import annotations

import random
from typing import Any

import attrs
import numpy as np
import torch

try:  # pragma: no cover - depends on the persistence package's progress
    from persistence import PluginSnapshot, SessionSnapshot, capture_rng_state, restore_rng_state

    HAVE_PERSISTENCE = True
except ImportError:  # pragma: no cover
    HAVE_PERSISTENCE = False

    @attrs.frozen
    class PluginSnapshot:  # type: ignore[no-redef]
        plugin: str
        version: str
        api_version: int
        tensors: dict[str, torch.Tensor]
        meta: dict[str, Any]

    @attrs.frozen
    class SessionSnapshot:  # type: ignore[no-redef]
        nodes: dict[str, PluginSnapshot]
        orchestrator: dict[str, Any]
        rng: dict[str, Any]

    def capture_rng_state() -> dict[str, Any]:  # type: ignore[misc]
        version, internal, gauss = random.getstate()
        name, keys, pos, has_gauss, cached = np.random.get_state()
        return {"torch": bytes(torch.get_rng_state().numpy().tobytes()),
                "python": [version, list(internal), gauss],
                "numpy": [name, keys.tobytes(), int(pos), int(has_gauss), float(cached)]}

    def restore_rng_state(state: dict[str, Any]) -> None:  # type: ignore[misc]
        torch.set_rng_state(torch.frombuffer(bytearray(state["torch"]), dtype=torch.uint8))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.frombuffer(keys, dtype=np.uint32), pos, has_gauss, cached))

__all__ = ["HAVE_PERSISTENCE", "PluginSnapshot", "SessionSnapshot", "capture_rng_state", "restore_rng_state"]
