"""The ``path -> waypoints`` bridge: maze cells (row, col) to metres in the world frame.

The world package owns the ``waypoints`` kind, so the bridge into it lives here (DESIGN.md
section 8). It is a plain callable with ``name``/``source_kind``/``target_kind`` attributes,
registered through ``sage_register_bridges``; no other package is imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

#: Edge of one maze cell in metres (gymnasium-robotics' PointMaze uses 1 m cells).
CELL_SIZE = 1.0


def cells_to_waypoints(path: Sequence[Sequence[int]], cell_size: float = CELL_SIZE) -> list[list[float]]:
    """Cell centres of ``path`` in metres: x grows with the column, y with the row going up
    (row 0 is the top row), the first cell at the origin."""
    if cell_size <= 0:
        raise ValueError(f"cells_to_waypoints: cell_size must be > 0, got {cell_size}")
    cells = [tuple(cell) for cell in path]
    if not cells or any(len(c) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in c) for c in cells):
        raise ValueError(f"cells_to_waypoints: path must be a non-empty list of (row, col) ints, got {path!r}")
    r0, c0 = cells[0]
    return [[(c - c0) * cell_size, (r0 - r) * cell_size] for r, c in cells]


@attrs.frozen
class PathToWaypoints:
    """Bridge from a state whose ``x`` is a path (or a dict holding ``"path"``) to waypoints."""

    cell_size: float = CELL_SIZE
    name = "path_to_waypoints"
    source_kind = "path"
    target_kind = "waypoints"

    def __call__(self, state: Any) -> list[list[float]]:
        x = getattr(state, "x", state)
        path = x.get("path") if isinstance(x, Mapping) else x
        if path is None:
            raise ValueError("path_to_waypoints: the source state holds no 'path'")
        return cells_to_waypoints(path, self.cell_size)


path_to_waypoints = PathToWaypoints()
