"""Built-in bridges, registered through ``bridges.hooks`` like any other distribution's."""

from __future__ import annotations

from typing import Any

import torch

from sage_core import IRPState

from ._bridge import ANY, Bridge


def _identity(state: IRPState) -> Any:
    """The source's refined object ``x`` itself (tensors are cloned so the target cannot alias it)."""
    x = state.x
    return x.clone() if isinstance(x, torch.Tensor) else x


def _energy(state: IRPState) -> float | None:
    """The source's final energy, e.g. as a confidence in the target's context."""
    return state.energy


def _flatten(state: IRPState) -> torch.Tensor:
    """The source's tensor ``x`` flattened to a 1-D vector."""
    return torch.as_tensor(state.x).reshape(-1).clone()


identity_bridge = Bridge("identity", _identity, ANY, ANY, _identity.__doc__ or "")
energy_bridge = Bridge("energy", _energy, ANY, "scalar", _energy.__doc__ or "")
flatten_bridge = Bridge("flatten", _flatten, "tensor", "vector", _flatten.__doc__ or "")

BUILTIN_BRIDGES = (identity_bridge, energy_bridge, flatten_bridge)
