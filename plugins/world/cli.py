"""``sage world`` commands: solve a throw (optionally to a PNG) and run a Reacher-v5 episode
with the receding-horizon planner (optionally to a GIF)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click


@click.group("world")
def world_group() -> None:
    """Differentiable physics and MuJoCo planning (the world plugin)."""


@world_group.command("throw")
@click.argument("distance", type=float)
@click.option("--angle", type=float, default=None, help="fixed launch angle in degrees (default: free)")
@click.option("--bounces", type=int, default=0, show_default=True, help="land after this many bounces")
@click.option("--task", "task_json", default=None, help="JSON overrides of the throw task, e.g. '{\"mass\": 0.4}'")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), default=None, help="plot the throw")
def throw_command(distance: float, angle: float | None, bounces: int, task_json: str | None, png: Path | None) -> None:
    """Find the launch that lands a stone DISTANCE metres away."""
    from sage_core import MaxSteps, refine

    from .plugin import WorldPlanner

    task = {"task": "throw", "target": [distance, 0.0], "bounces": bounces, **({"angle": angle} if angle else {}),
            **json.loads(task_json or "{}")}
    try:
        result = refine(WorldPlanner(), task, {}, policy=MaxSteps(100))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    speed, launch = result.state.x["action"].tolist()
    click.echo(f"speed {speed:.3f} m/s, angle {math.degrees(launch):.2f} deg, lands at "
               f"{float(result.state.x['landing'][0]):.4f} m after {result.history.steps} steps: {result.decision.reason}")
    if png is not None:
        from .render import plot_trajectories

        plot_trajectories([result.state.x["trajectory"].numpy()], png, targets=[[distance, 0.0]], ground=True,
                          labels=[f"{speed:.2f} m/s at {math.degrees(launch):.1f} deg"], title="throw with drag")
        click.echo(f"wrote {png}")


@world_group.command("reacher")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--gif", type=click.Path(dir_okay=False, path_type=Path), default=None, help="render the episode")
def reacher_command(seed: int, gif: Path | None) -> None:
    """Run one gymnasium Reacher-v5 episode with the receding-horizon MPPI controller."""
    from .models import require_mujoco

    require_mujoco()
    import gymnasium as gym

    from .mpc import REACHER_TASK, REACHER_WARMUP, MPCPlanner, RecedingHorizon, physics_state

    env = gym.make("Reacher-v5")
    env.reset(seed=seed)
    sim = env.unwrapped
    controller = RecedingHorizon(MPCPlanner(), REACHER_TASK, seed=seed, warmup=REACHER_WARMUP)
    total, done, info, states = 0.0, False, {}, []
    while not done:
        physics = physics_state(sim.model, sim.data)
        states.append(physics)
        _, reward, terminated, truncated, info = env.step(controller.act(physics))
        total += reward
        done = terminated or truncated
    states.append(physics_state(sim.model, sim.data))
    click.echo(f"return {total:.3f}, final distance {-info['reward_dist'] * 100:.2f} cm")
    if gif is not None:
        from .render import render_frames, save_gif

        save_gif(render_frames(sim.model, states, camera="top", distance=0.7), gif, fps=50)
        click.echo(f"wrote {gif}")
    env.close()
