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


def _solution_path(state: IRPState) -> list[tuple[int, int]]:
    """The path of a solved maze (kind ``solved_puzzle`` whose puzzle is maze lines) as (row, col) cells."""
    x = state.x
    if not isinstance(x, dict) or not isinstance(x.get("puzzle"), list) or not all(
            isinstance(row, str) for row in x["puzzle"]):
        raise ValueError("solution_path: the source is not a solved maze ({'puzzle': maze lines, 'solution': path})")
    return [(int(r), int(c)) for r, c in x["solution"]]


identity_bridge = Bridge("identity", _identity, ANY, ANY, _identity.__doc__ or "")
energy_bridge = Bridge("energy", _energy, ANY, "scalar", _energy.__doc__ or "")
flatten_bridge = Bridge("flatten", _flatten, "tensor", "vector", _flatten.__doc__ or "")

# No plugin owns the ``path`` kind (the puzzle library registers nothing), so its bridge is built in.
solution_path_bridge = Bridge("solution_path", _solution_path, "solved_puzzle", "path", _solution_path.__doc__ or "")

BUILTIN_BRIDGES = (identity_bridge, energy_bridge, flatten_bridge, solution_path_bridge)
