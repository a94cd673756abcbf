"""``sage demo robot``: a maze picture read (vision), solved (hrm) and driven (world).

A held-out 11 x 11 maze is drawn as a photo-like picture (evaluation fonts, the benchmark's mild
style, seeded by ``--seed``), read and solved through ``examples/pipelines/robot.toml``; the
solver's verified path then becomes waypoints in gymnasium-robotics' PointMaze built from the maze
that was read, and the ball tracks them with the MuJoCo sampling planner in a receding-horizon
loop (``plugins.world.pointmaze``). Success is the env's own test (within 0.45 m of the goal).
Pictures: ``maze.png`` (the input), ``path.png`` (planned versus driven), ``robot.gif``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import click
import numpy as np

from sage_core import get_registry

from ._orchestrator import Orchestrator
from ._pipeline import Pipeline
from .demo import Demo, DemoRun, _side_by_side, node_reason, register_demo, with_input, write_image

#: Seed of the held-out mazes: the HRM's test split.
MAZE_SEED = 9001


def maze_picture(maze: list[str], seed: int) -> np.ndarray:
    """``maze`` as a held-out photo-like picture (vision's evaluation fonts, mild style) by ``seed``."""
    return get_registry().plugin_class("vision").render_held_out(maze, seed)


def held_out_maze(seed: int) -> list[str]:
    """The held-out 11 x 11 maze (strings) of ``seed`` >= 0 from the HRM's test split."""
    if seed < 0:
        raise click.ClickException(f"--seed must be >= 0 (it picks the held-out maze and its picture), got {seed}")
    return get_registry().plugin_class("hrm").held_out_puzzles("maze11", 1, seed=MAZE_SEED + seed)[0]


@attrs.frozen
class Solved:
    """What the orchestrated part gave: the reading, the solver's ``solved_puzzle`` (None when the
    solver failed) and the nodes' reasons (a failure's first line)."""

    reading: list[str]
    solved: dict[str, Any] | None
    reader_reason: str
    solver_reason: str


def read_and_solve(spec: dict[str, Any], picture: Path) -> Solved:
    """Run the pipeline on ``picture``: the reading and the solver's result; ClickException when
    the reader failed."""
    pipeline = Pipeline.from_dict(with_input(spec, "reader", str(picture.resolve())))
    result = Orchestrator(pipeline).run()
    reader, solver = result["reader"], result["solver"]
    if reader.fault is not None or reader.state is None:
        raise click.ClickException(f"the reader (vision) failed on {picture}: {node_reason(reader)}")
    failed = solver.fault is not None or solver.state is None
    solved = None if failed else pipeline.node("solver").plugin.output(solver.state)
    return Solved(pipeline.node("reader").plugin.output(reader.state), solved, reader.reason, node_reason(solver))


def drawn_path(maze: list[str], path: list[tuple[int, int]]) -> list[str]:
    """The maze's lines with ``o`` on the open cells of ``path``."""
    rows = [list(line) for line in maze]
    for r, c in path:
        if rows[r][c] == " ":
            rows[r][c] = "o"
    return ["".join(row) for row in rows]


def drive(maze: list[str], path: list[tuple[int, int]], seed: int) -> tuple[Any, Any]:
    """(the PointMaze built from ``maze``, the run of its ball along ``path``) through the world
    package's receding-horizon tracker; ClickException when the path does not fit the maze."""
    try:
        return get_registry().plugin_class("world").drive_maze(maze, path, seed=seed)
    except ValueError as exc:
        raise click.ClickException(f"cannot drive the solver's path: {exc}") from None


def robot(run: DemoRun) -> None:
    """The demo: picture -> pipeline (read, solve) -> PointMaze drive -> pictures."""
    world = get_registry().plugin_class("world")
    seed = 0 if run.seed is None else run.seed
    truth = held_out_maze(seed)
    picture = write_image(maze_picture(truth, seed), run.out / "maze.png")
    click.echo(f"held-out 11x11 maze (seed {seed}) drawn in a font training never saw, with noise, blur and a "
               f"turn: {picture}\n")
    got = read_and_solve(run.spec, picture)
    same = got.reading == truth
    click.echo(f"reading ({got.reader_reason}): {'matches the maze as drawn' if same else 'DIFFERS from the maze as drawn'}")
    if not same:
        click.echo(_side_by_side(got.reading, truth, "   drawn:  "))
    if got.solved is None:
        raise click.ClickException(f"the solver (hrm) failed on the reading: {got.solver_reason}")
    if not got.solved["verified"]:
        raise click.ClickException(f"the HRM found no verified path through the maze it was given ({got.solver_reason})")
    path = [tuple(cell) for cell in got.solved["solution"]]
    click.echo(f"\nHRM path ({got.solver_reason}): {len(path) - 1} moves, verified shortest S -> G")
    click.echo(_side_by_side(got.reading, drawn_path(got.reading, path)))
    env, drove = drive(got.reading, path, seed)
    timing = drove.planning_ms
    outcome = (f"reached the goal in {drove.time_to_goal:.2f} s ({drove.steps} env steps)" if drove.success
               else f"did NOT reach the goal within {drove.steps} env steps ({drove.steps * drove.dt:.0f} s)")
    end = float(np.linalg.norm(drove.positions[-1] - drove.goal))
    click.echo(f"PointMaze ({len(env.env.maze.maze_map)}x{len(env.env.maze.maze_map[0])}, built from the reading): "
               f"{outcome}; {end:.2f} m from the goal at the end (success radius {world.maze_success_radius} m); "
               f"{drove.wall_contacts} wall contact(s); planning {timing.mean():.1f} ms per control step "
               f"(mean, {len(timing)} steps of {drove.control_dt * 1000:.0f} ms; p95 {np.percentile(timing, 95):.1f} ms)")
    title = f"{'success' if drove.success else 'failure'}: {drove.steps * drove.dt:.2f} s, {drove.wall_contacts} wall contacts"
    click.echo(f"planned vs driven path: {world.plot_maze_run(env, drove, run.out / 'path.png', title)}")
    try:
        gif = world.save_maze_gif(env, drove, run.out / "robot.gif")
    except RuntimeError as exc:  # no headless GL: the message says what to install
        raise click.ClickException(str(exc)) from None
    click.echo(f"animation: {gif}")
    if not drove.success:
        raise click.ClickException(f"the ball did not reach the goal within {drove.steps} env steps")


register_demo(Demo("robot", "a held-out maze picture read (vision), solved (hrm) and driven by the MuJoCo point mass in "
                   "gymnasium-robotics' PointMaze built from it (world)", "robot.toml", robot,
                   needs=(("mujoco", "mujoco"), ("gymnasium_robotics", "mujoco"), ("PIL", "viz"), ("matplotlib", "viz")),
                   plugins=("vision", "hrm", "world")))
