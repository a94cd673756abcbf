"""pluggy hooks of the world plugin: registers the ``world`` (torch) and ``world_mpc`` (MuJoCo)
IRP plugins and the ``path -> waypoints`` bridge.

Entry point (pyproject): ``[project.entry-points.sage] world = "plugins.world.hooks"``.
"""

from __future__ import annotations

from typing import Any

from sage_core import hookimpl

from .bridges import path_to_waypoints
from .mpc import MPCPlanner
from .plugin import WorldPlanner


@hookimpl
def sage_register_plugins(register: Any) -> None:
    register(WorldPlanner)
    register(MPCPlanner)


@hookimpl
def sage_register_bridges(register: Any) -> None:
    register(path_to_waypoints, name=path_to_waypoints.name)
