"""Benchmark of ``sage demo robot``: N held-out 11 x 11 maze pictures, each read (vision), solved
(hrm) and its path driven by the MuJoCo ball in gymnasium-robotics' PointMaze built from the
reading, with the receding-horizon MPPI tracker (world_pointmaze), through
examples/pipelines/robot.toml.

Prints per maze and in total: reading exact, HRM path verified (and valid on the maze as drawn),
success by the env's own test (within 0.45 m of the goal) within the episode limit, time to goal,
wall contacts, ms per control step (the driver's step: planning and its two env steps; mean and
p95 over every control step), and the wall time of the whole pipeline. Target (issue 15):
success >= 95 % on 50 mazes.

Run: ``nice .venv/bin/python bench/demo_robot.py [--n 50] [--seed 0]`` (seeds seed .. seed+N-1,
the same held-out mazes and pictures as ``sage demo robot --seed``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins.world import models as _headless  # noqa: E402,F401  (sets MUJOCO_GL before mujoco loads)

import click  # noqa: E402

from orchestrator.demo import read_spec, write_image  # noqa: E402
from orchestrator.demo_robot import held_out_maze, maze_picture, run_pipeline  # noqa: E402
from plugins.puzzles import maze as mazes  # noqa: E402
from plugins.world.pointmaze import MAX_STEPS  # noqa: E402


def path_is_shortest(truth: list[str], path: list[tuple[int, int]]) -> bool:
    """Whether ``path`` is a valid shortest S -> G path of the maze as drawn."""
    grid = mazes.parse(truth)
    mask = np.zeros(grid.shape, dtype=bool)
    for r, c in path:
        mask[r, c] = True
    return mazes.violations(mask, grid) == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="number of held-out mazes (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="first maze seed (default 0)")
    args = parser.parse_args()
    spec = read_spec("robot.toml")
    rows, timings = [], []
    print(f"{args.n} held-out 11x11 mazes (seeds {args.seed}..{args.seed + args.n - 1}), episode limit {MAX_STEPS} "
          f"env steps ({MAX_STEPS * 0.01:.0f} s)\n")
    print(" seed  moves  read  hrm   success  time s  contacts  ms/step  p95   pipeline s")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seed, args.seed + args.n):
            truth = held_out_maze(seed)
            picture = write_image(maze_picture(truth, seed), Path(tmp) / f"maze{seed}.png")
            t0 = time.perf_counter()
            row = {"seed": seed, "read": False, "verified": False, "shortest": False, "success": False,
                   "time": None, "contacts": 0, "moves": -1}
            try:
                got = run_pipeline(spec, picture, seed)
            except click.ClickException as exc:
                print(f"{seed:5d}  pipeline failed: {exc.message}")
                rows.append(row)
                continue
            row["solve_s"] = time.perf_counter() - t0
            row["read"] = got.reading == truth
            row["verified"] = got.solved is not None and bool(got.solved["verified"])
            if row["verified"]:
                path = [tuple(cell) for cell in got.solved["solution"]]
                row["moves"] = len(path) - 1
                row["shortest"] = path_is_shortest(truth, path)
                run = got.drive
                if run is None:
                    print(f"{seed:5d}  drive failed: {got.driver_reason}")
                    rows.append(row)
                    continue
                row.update(success=run.success, time=run.time_to_goal, contacts=run.wall_contacts)
                timings.append(run.planning_ms)
                print(f"{seed:5d}  {row['moves']:5d}  {'yes' if row['read'] else 'NO':4}  "
                      f"{'yes' if row['shortest'] else 'NO':4}  {'yes' if run.success else 'NO':7}  "
                      f"{run.steps * run.dt:6.2f}  {run.wall_contacts:8d}  {run.planning_ms.mean():7.2f}  "
                      f"{np.percentile(run.planning_ms, 95):5.2f}  {row['solve_s']:6.2f}", flush=True)
            else:
                print(f"{seed:5d}  reading {'exact' if row['read'] else 'WRONG'}, no verified path: {got.solver_reason}",
                      flush=True)
            rows.append(row)
    n = len(rows)
    done = [r for r in rows if r["success"]]
    ms = np.concatenate(timings) if timings else np.zeros(1)
    print(f"\nreading exact: {sum(r['read'] for r in rows)}/{n}; HRM path verified: {sum(r['verified'] for r in rows)}/{n} "
          f"(a shortest path of the maze as drawn: {sum(r['shortest'] for r in rows)}/{n})")
    print(f"success (env test, within {MAX_STEPS} env steps): {len(done)}/{n} = {100.0 * len(done) / max(n, 1):.1f} % "
          f"(target >= 95 %)")
    if done:
        times = np.array([r["time"] for r in done])
        print(f"time to goal: mean {times.mean():.2f} s, max {times.max():.2f} s; moves: mean "
              f"{np.mean([r['moves'] for r in done]):.1f}")
    driven = [r for r in rows if r["time"] is not None or r["verified"]]
    print(f"wall contacts per maze: mean {np.mean([r['contacts'] for r in driven]) if driven else 0:.2f}, "
          f"mazes with any {sum(r['contacts'] > 0 for r in driven)}/{len(driven)}")
    print(f"per control step of 20 ms (planning and 2 env steps): mean {ms.mean():.2f} ms, p95 {np.percentile(ms, 95):.2f} ms, "
          f"max {ms.max():.2f} ms over {ms.size} steps")
    solve = [r["solve_s"] for r in rows if "solve_s" in r]
    if solve:
        print(f"the whole pipeline (read, solve, drive) through the orchestrator: mean {np.mean(solve):.2f} s per maze")


if __name__ == "__main__":
    main()
