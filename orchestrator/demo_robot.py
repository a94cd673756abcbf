"""``sage demo robot``: a maze picture read (vision), solved (hrm) and driven (world).

A held-out 11 x 11 maze is drawn as a photo-like picture (evaluation fonts, the benchmark's mild
style, seeded by ``--seed``) and goes through ``examples/pipelines/robot.toml``: read, solved, and
driven, the solver's verified path becoming waypoints in gymnasium-robotics' PointMaze built from
the maze that was read, tracked by the ball with the MuJoCo sampling planner in a
receding-horizon loop, one control step per step of the ``world_pointmaze`` node
(``plugins.world.drive``). Success is the env's own test (within 0.45 m of the goal). Pictures:
``maze.png`` (the input), ``path.png`` (planned versus driven), ``robot.gif``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import click
import numpy as np

from sage_core import CallbackSink, StepEvent, Telemetry, get_registry

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
class Outcome:
    """What the pipeline gave: the reading, the solver's ``solved_puzzle`` (None when the solver
    failed), the drive (a ``TrackRun``, its ``planning_ms`` the wall time of each control step,
    and the PointMaze it ran in; None when the driver did not run) and the nodes' reasons (a
    failure's first line)."""

    reading: list[str]
    solved: dict[str, Any] | None
    reader_reason: str
    solver_reason: str
    drive: Any = None
    maze: Any = None
    driver_reason: str = ""


def run_pipeline(spec: dict[str, Any], picture: Path, seed: int) -> Outcome:
    """Run the pipeline on ``picture`` (the driver's env noise seeded by ``seed``); ClickException
    when the reader failed."""
    spec = with_input(spec, "reader", str(picture.resolve()))
    spec = {**spec, "nodes": {**spec["nodes"], "driver": {**spec["nodes"]["driver"], "seed": seed}}}
    pipeline = Pipeline.from_dict(spec)
    elapsed: list[float] = []  # the driver's time in its steps, cumulative, one per step

    def note(event: Any) -> None:
        if isinstance(event, StepEvent) and event.plugin == "driver":
            elapsed.append(event.elapsed_s)

    result = Orchestrator(pipeline, telemetry=Telemetry([CallbackSink(note)])).run()
    reader, solver, driver = result["reader"], result["solver"], result["driver"]
    if reader.fault is not None or reader.state is None:
        raise click.ClickException(f"the reader (vision) failed on {picture}: {node_reason(reader)}")
    failed = solver.fault is not None or solver.state is None
    solved = None if failed else pipeline.node("solver").plugin.output(solver.state)
    drive = maze = None
    if driver.fault is None and driver.state is not None and driver.steps:
        plugin = pipeline.node("driver").plugin
        drive = plugin.run_of(driver.state, 1000.0 * np.diff(elapsed, prepend=0.0))
        maze = plugin.maze(driver.state.meta["maze"])
    return Outcome(pipeline.node("reader").plugin.output(reader.state), solved, reader.reason, node_reason(solver),
                   drive, maze, node_reason(driver))


def drawn_path(maze: list[str], path: list[tuple[int, int]]) -> list[str]:
    """The maze's lines with ``o`` on the open cells of ``path``."""
    rows = [list(line) for line in maze]
    for r, c in path:
        if rows[r][c] == " ":
            rows[r][c] = "o"
    return ["".join(row) for row in rows]


def robot(run: DemoRun) -> None:
    """The demo: picture -> pipeline (read, solve) -> PointMaze drive -> pictures."""
    world = get_registry().plugin_class("world")
    seed = 0 if run.seed is None else run.seed
    truth = held_out_maze(seed)
    picture = write_image(maze_picture(truth, seed), run.out / "maze.png")
    click.echo(f"held-out 11x11 maze (seed {seed}) drawn in a font training never saw, with noise, blur and a "
               f"turn: {picture}\n")
    got = run_pipeline(run.spec, picture, seed)
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
    if got.drive is None:
        raise click.ClickException(f"the driver (world) did not drive the path: {got.driver_reason}")
    env, drove = got.maze, got.drive
    timing = drove.planning_ms
    outcome = (f"reached the goal in {drove.time_to_goal:.2f} s ({drove.steps} env steps)" if drove.success
               else f"did NOT reach the goal within {drove.steps} env steps ({drove.steps * drove.dt:.0f} s)")
    end = float(np.linalg.norm(drove.positions[-1] - drove.goal))
    click.echo(f"PointMaze ({len(env.env.maze.maze_map)}x{len(env.env.maze.maze_map[0])}, built from the reading): "
               f"{outcome}; {end:.2f} m from the goal at the end (success radius {world.maze_success_radius} m); "
               f"{drove.wall_contacts} wall contact(s); {timing.mean():.1f} ms per control step, planning included "
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
