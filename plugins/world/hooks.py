"""pluggy hooks of the world plugin: registers the ``world`` (torch), ``world_mpc`` (MuJoCo) and
``world_pointmaze`` (MuJoCo, gymnasium-robotics) IRP plugins, the ``path -> waypoints`` bridge and the ``sage world`` commands.

Entry point (pyproject): ``[project.entry-points.sage] world = "plugins.world.hooks"``.
"""

from __future__ import annotations

from typing import Any

from sage_core import hookimpl

from .bridges import path_to_waypoints
from .drive import PointMazeDriver
from .mpc import MPCPlanner
from .plugin import WorldPlanner


@hookimpl
def sage_register_plugins(register: Any) -> None:
    register(WorldPlanner)
    register(MPCPlanner)
    register(PointMazeDriver)


@hookimpl
def sage_register_commands(cli: Any) -> None:
    from .cli import world_group

    cli.add_command(world_group)


@hookimpl
def sage_register_bridges(register: Any) -> None:
    register(path_to_waypoints, name=path_to_waypoints.name)
