"""``world_pointmaze``: a solved maze's path driven in gymnasium-robotics' PointMaze, as an IRP plugin.

The input is the HRM's ``solved_puzzle`` of a maze (``{"puzzle": maze lines, "solution": path
cells}``); the environment is the real ``PointMazeEnv`` built from those lines
(:class:`~plugins.world.pointmaze.PointMaze`), reset with the ball at the path's first cell and
the goal at its last (the env's own position noise, seeded by the node's seed). One IRP step is
one control step: the receding-horizon MuJoCo planner (:class:`~plugins.world.mpc.RecedingHorizon`)
is rebased on the measured physics state, aims at a carrot ``lookahead`` metres ahead of the ball
along the path, and its first action is applied for ``frame_skip`` env steps (2 x 10 ms). Energy:
metres from the ball to the goal. Halts: ``reached`` (the env's success test, 0.45 m) or
``episode_limit`` (``max_steps`` env steps).

The state holds everything the next step needs, as arrays and JSON-able meta: the integration
state (``mjSTATE_INTEGRATION``), the planner's plan and RNG position, the path segment the carrot
is on, the contact counters, and the ball's positions and physics states after each env step (for
the GIF and the plot). A step
sets the env to the state's physics first (rebuilding and resetting the env when this process has
not got it), so a session checkpointed mid-drive resumes bit-identically in a fresh process, and
so the drive can be a node of a pipeline (``examples/pipelines/robot.toml``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sage_core import HaltDecision, IRPPlugin, IRPState

from .models import require_mujoco
from .mpc import MPCPlanner, RecedingHorizon, physics_state
from .pointmaze import LOOKAHEAD, MAX_STEPS, SUCCESS_RADIUS, TRACK_TASK, PointMaze, TrackRun, carrot, reached

#: The controller's arrays in the state, under this prefix (the rest of x is the drive's own).
_PLAN = "plan_"


def _INTEGRATION() -> Any:  # noqa: N802 - a constant of the optional mujoco module
    """The state spec a step restores: all that ``mj_step`` reads (positions, velocities,
    controls, the constraint solver's warm start, ...), so a resumed drive is bit-identical."""
    return require_mujoco().mjtState.mjSTATE_INTEGRATION


def maze_lines(maze: PointMaze) -> list[str]:
    """The lines (``#`` wall, space open) of the maze a :class:`PointMaze` was built from."""
    return ["".join("#" if v == 1 else " " for v in row) for row in maze.env.maze.maze_map]


def checked_path(path: Any) -> list[list[int]]:
    """``path`` as [row, col] int pairs of at least two cells, each a neighbour of the one
    before; ValueError naming the problem otherwise."""
    try:
        cells = [[int(r), int(c)] for r, c in path]
    except (TypeError, ValueError):
        raise ValueError(f"the path must be a list of (row, col) cells, got {path!r}") from None
    if len(cells) < 2:
        raise ValueError(f"the path needs at least 2 cells (start and goal), got {path!r}")
    if any(abs(a[0] - b[0]) + abs(a[1] - b[1]) != 1 for a, b in zip(cells, cells[1:])):
        raise ValueError("consecutive path cells must be neighbours (one step up, down, left or right)")
    return cells


def _solved_maze(x0: Any) -> tuple[list[str], list[list[int]]]:
    """(maze lines, path cells) of a ``solved_puzzle`` of a maze; ValueError otherwise."""
    if not isinstance(x0, Mapping) or "puzzle" not in x0 or "solution" not in x0:
        raise ValueError("world_pointmaze drives a solved maze: {'puzzle': maze lines, 'solution': path cells} "
                         f"(the hrm plugin's solved_puzzle), got {type(x0).__name__}")
    lines = x0["puzzle"]
    if not isinstance(lines, list) or not lines or not all(isinstance(line, str) for line in lines):
        raise ValueError("world_pointmaze: 'puzzle' must be the maze's lines ('#' wall, anything else open)")
    if x0["solution"] is None:
        raise ValueError("world_pointmaze: the solved_puzzle has no path (the solver found none)")
    return list(lines), checked_path(x0["solution"])


class PointMazeDriver(IRPPlugin):
    """Drives a solved maze's path in gymnasium-robotics' PointMaze; one step = one control step
    of the receding-horizon MuJoCo planner (see the module docstring). ``max_steps``: the episode
    limit in env steps; ``lookahead``: carrot distance (m); ``warmup``: planner iterations at the
    first, cold control step; ``task``: overrides of the planner's settings."""

    name = "world_pointmaze"
    version = "1.0.0"
    input_kind = "solved_puzzle"
    output_kind = "plan"

    def __init__(self, max_steps: int = MAX_STEPS, lookahead: float = LOOKAHEAD, warmup: int = 3,
                 task: Mapping[str, Any] | None = None, planner: MPCPlanner | None = None) -> None:
        if int(max_steps) < 1:
            raise ValueError(f"world_pointmaze: max_steps must be >= 1 env step, got {max_steps}")
        if not lookahead > 0:
            raise ValueError(f"world_pointmaze: lookahead must be > 0 metres, got {lookahead}")
        self.max_steps, self.lookahead, self.warmup = int(max_steps), float(lookahead), int(warmup)
        self.task = {**TRACK_TASK, **(task or {})}
        self.planner = planner or MPCPlanner(nthread=1)
        self._mazes: dict[tuple[str, ...], PointMaze] = {}
        self._episodes: dict[int, tuple] = {}  # id(maze) -> the reset its env is in

    @classmethod
    def example(cls) -> tuple[Any, dict[str, Any]]:
        """A short L-shaped corridor (for the conformance kit)."""
        lines = ["#######", "#     #", "##### #", "#######"]
        return {"puzzle": lines, "solution": [[1, 1], [1, 2], [1, 3], [1, 4], [1, 5], [2, 5]]}, {"seed": 0}

    # -- the environment ---------------------------------------------------------------------

    def maze(self, lines: Sequence[str]) -> PointMaze:
        """The PointMaze built from ``lines`` (one per maze, kept)."""
        key = tuple(lines)
        maze = self._mazes.get(key)
        if maze is None:
            maze = self._mazes[key] = PointMaze.build([[1 if ch == "#" else 0 for ch in line] for line in lines])
        return maze

    def adopt(self, maze: PointMaze) -> None:
        """Drive in an env already built (keyed by its map)."""
        self._mazes[tuple(maze_lines(maze))] = maze

    def _reset(self, maze: PointMaze, meta: Mapping[str, Any]) -> dict[str, Any]:
        path = meta["path"]
        episode = (int(meta["seed"]), tuple(path[0]), tuple(path[-1]))
        obs, _ = maze.env.reset(seed=episode[0], options={"reset_cell": np.asarray(path[0]),
                                                          "goal_cell": np.asarray(path[-1])})
        self._episodes[id(maze)] = episode
        return obs

    def _env_at(self, state: IRPState) -> PointMaze:
        """The env of ``state``'s maze, in its episode and at its physics state."""
        mujoco = require_mujoco()
        meta = state.meta
        maze = self.maze(meta["maze"])
        path = meta["path"]
        if self._episodes.get(id(maze)) != (int(meta["seed"]), tuple(path[0]), tuple(path[-1])):
            self._reset(maze, meta)  # sets the env's goal (the same for the same seed)
        mujoco.mj_setState(maze.model, maze.data, np.asarray(state.x["physics"], dtype=np.float64), _INTEGRATION())
        mujoco.mj_forward(maze.model, maze.data)
        return maze

    # -- the contract ------------------------------------------------------------------------

    def init_state(self, x0: Any, ctx: Mapping[str, Any]) -> IRPState:
        lines, path = _solved_maze(x0)
        maze = self.maze(lines)
        centres = maze.cell_xy(path)  # ValueError naming a cell that is not open
        meta: dict[str, Any] = {"maze": lines, "path": path, "seed": int(ctx.get("seed", 0)), "steps": 0,
                                "segment": 0, "contacts": 0, "contact_steps": 0, "touching": False}
        obs = self._reset(maze, meta)
        start, goal = obs["achieved_goal"].copy(), obs["desired_goal"].copy()
        spec = {**self.task, "model": maze.xml, "goal": [float(goal[0]), float(goal[1]), 0.0]}
        controller = RecedingHorizon(self.planner, spec, seed=meta["seed"], warmup=self.warmup)
        arrays, meta["controller"] = controller.export()
        meta["success"] = reached(start, goal)
        x = {"physics": physics_state(maze.model, maze.data, _INTEGRATION()), "start": start, "goal": goal,
             "waypoints": np.concatenate([start[None], centres[1:-1], goal[None]]),
             "positions": start[None].copy(), "log": physics_state(maze.model, maze.data)[None],
             **{_PLAN + k: v for k, v in arrays.items()}}
        return IRPState(x=x, step=0, meta=meta)

    def energy(self, state: IRPState) -> float:
        return float(np.linalg.norm(state.x["positions"][-1] - state.x["goal"]))

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        mujoco = require_mujoco()
        x, m = state.x, dict(state.meta)
        maze = self._env_at(state)
        model, data = maze.model, maze.data
        controller = RecedingHorizon.resume(self.planner, {k[len(_PLAN):]: v for k, v in x.items()
                                                           if k.startswith(_PLAN)}, m["controller"])
        point, m["segment"] = carrot(x["waypoints"], int(m["segment"]), data.qpos[:2].copy(), self.lookahead)
        aim = controller.state
        controller.state = aim.evolve(meta={**aim.meta, "task": {**aim.meta["task"],
                                                                 "goal": [float(point[0]), float(point[1]), 0.0]}})
        action = controller.act(physics_state(model, data))
        positions, log, after = [], [], None
        for _ in range(int(self.task["frame_skip"])):
            if m["success"] or m["steps"] >= self.max_steps:
                break
            obs, _, _, _, info = maze.env.step(action)
            m["steps"] += 1
            mujoco.mj_forward(model, data)  # contacts of the state the step ended in
            touching = maze.wall_contacts() > 0
            m["contacts"] += int(touching and not m["touching"])
            m["contact_steps"] += int(touching)
            m["touching"], m["success"] = touching, bool(info["success"])
            positions.append(obs["achieved_goal"].copy())
            log.append(physics_state(model, data))
            after = physics_state(model, data, _INTEGRATION())
        arrays, m["controller"] = controller.export()
        new = {**x, **{_PLAN + k: v for k, v in arrays.items()}}
        if positions:
            new.update(physics=after, positions=np.concatenate([x["positions"], positions]),
                       log=np.concatenate([x["log"], log]))
        return IRPState(x=new, step=state.step + 1, meta=m)

    def halt_state(self, state: IRPState) -> HaltDecision | None:
        m = state.meta
        if m["success"]:
            return HaltDecision("reached", f"the ball is within {SUCCESS_RADIUS} m of the goal after "
                                           f"{m['steps']} env steps ({m['steps'] * self.dt(state):.2f} s)")
        if m["steps"] >= self.max_steps:
            return HaltDecision("episode_limit", f"the goal was not reached within {self.max_steps} env steps")
        return None

    # -- reading a drive -----------------------------------------------------------------------

    def dt(self, state: IRPState) -> float:
        """Seconds per env step of ``state``'s env."""
        return float(self.maze(state.meta["maze"]).env.point_env.dt)

    def output(self, state: IRPState) -> dict[str, Any]:
        """The ``plan`` value of a drive: success, env steps, time, wall contacts, the ball's
        positions (m, env frame), the start, the goal and the waypoints."""
        m, x = state.meta, state.x
        return {"success": bool(m["success"]), "steps": int(m["steps"]), "seconds": m["steps"] * self.dt(state),
                "wall_contacts": int(m["contacts"]), "positions": x["positions"].tolist(),
                "start": x["start"].tolist(), "goal": x["goal"].tolist(), "waypoints": x["waypoints"].tolist()}

    def run_of(self, state: IRPState, planning_ms: Sequence[float] = ()) -> TrackRun:
        """The drive so far as a :class:`TrackRun` (for the plot and the GIF); ``planning_ms``:
        the caller's timings of the steps (not part of the state, which is deterministic)."""
        m, x = state.meta, state.x
        dt = self.dt(state)
        return TrackRun(success=bool(m["success"]), steps=int(m["steps"]), dt=dt,
                        control_dt=int(self.task["frame_skip"]) * dt, wall_contacts=int(m["contacts"]),
                        contact_steps=int(m["contact_steps"]), planning_ms=np.asarray(planning_ms, dtype=np.float64),
                        positions=np.asarray(x["positions"]), physics=list(np.asarray(x["log"])),
                        start=np.asarray(x["start"]), goal=np.asarray(x["goal"]), waypoints=np.asarray(x["waypoints"]))


def track_path(maze: PointMaze, path: Sequence[Sequence[int]], *, seed: int = 0, max_steps: int = MAX_STEPS,
               lookahead: float = LOOKAHEAD, task: dict[str, Any] | None = None, warmup: int = 3,
               planner: MPCPlanner | None = None) -> TrackRun:
    """Drive the ball of ``maze`` along ``path`` until the env's success test holds or
    ``max_steps`` env steps have passed (:class:`PointMazeDriver` stepped to its halt), with the
    wall time of each control step (planning and the env steps) as ``planning_ms``."""
    driver = PointMazeDriver(max_steps=max_steps, lookahead=lookahead, warmup=warmup, task=task, planner=planner)
    driver.adopt(maze)
    state = driver.init_state({"puzzle": maze_lines(maze), "solution": path}, {"seed": seed})
    timings = []
    while driver.halt_state(state) is None:
        t0 = time.perf_counter()
        state = driver.step(state)
        timings.append((time.perf_counter() - t0) * 1000.0)
    return driver.run_of(state, timings)

