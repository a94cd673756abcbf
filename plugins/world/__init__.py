"""Built-in IRP plugin ``world``: differentiable torch physics (throws, a planar 2-link arm, a
point mass) that refines actions under actuator limits, and a MuJoCo sampling-planner backend
(``world_mpc``, extra ``sage-irp[mujoco]``) run in a receding-horizon loop, and ``world_pointmaze``,
which drives a solved maze's path in gymnasium-robotics' PointMaze with that loop."""

from .bridges import PathToWaypoints, cells_to_waypoints, path_to_waypoints
from .drive import PointMazeDriver, track_path
from .mpc import MPCPlanner, RecedingHorizon, parse_mpc_task, physics_state
from .physics import ArmParams, Flight, arm_rollout, arm_step, arm_tip, drag_per_mass, point_mass_rollout, simulate_throw
from .plugin import WorldPlanner
from .pointmaze import PointMaze
from .tasks import ReachTask, ThrowTask, TrackTask, parse_task
from .throw import ThrowSolution, solve_throws

__all__ = [
    "ArmParams", "Flight", "MPCPlanner", "RecedingHorizon", "parse_mpc_task", "physics_state", "PathToWaypoints", "PointMaze", "PointMazeDriver", "ReachTask", "ThrowSolution", "ThrowTask", "TrackTask", "WorldPlanner",
    "arm_rollout", "arm_step", "arm_tip", "cells_to_waypoints", "drag_per_mass", "parse_task", "path_to_waypoints",
    "point_mass_rollout", "simulate_throw", "solve_throws", "track_path",
]
