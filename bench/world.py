"""Benchmark of the world plugin, each part side by side with its baseline in one run.

1. Throw: 200 targets from 5 to 40 m (stone 0.15 kg, radius 2.5 cm, Cd 0.47, speed <= 30 m/s),
   at a fixed angle, with the angle free, and past one bounce. Ours: the torch LM solver on all
   200 as one batch (median of 3 runs, after a warm-up call as SciPy gets). SciPy: per target, ``solve_ivp`` (RK45, ground event) inside ``brentq``
   (fixed angle) or ``least_squares`` (free angle). Both are judged by one reference integrator
   (DOP853, rtol 1e-11): success = lands within 5 cm. Also: how far the no-drag closed form misses.
2. Reacher-v5 (gymnasium): the receding-horizon MPPI controller over N seeds against the quick
   MPPI baseline of the issue (64 samples, 10 steps, white noise, the environment's own model).
   With ``--parts optimum``: the best return reachable on the same seeds, found per episode by
   L-BFGS-B over all 50 actions (finite differences on the environment's own model, started from
   our controller's actions and from zero): the ceiling against which SAC's -2.6 is read.
3. The same 2-link reach solved by gradient steps in the torch core and by the sampling planner
   in MuJoCo: iterations, time, final error.

Needs scipy (benchmark only: pip install scipy) and the mujoco extra for parts 2 and 3.
Run: ``.venv/bin/python bench/world.py`` (``--quick`` for a smaller run; ``--parts throw``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins.world import models as _headless  # noqa: E402,F401  (sets MUJOCO_GL before mujoco loads)
from plugins.world.mpc import REACHER_TASK, REACHER_WARMUP  # noqa: E402
from plugins.world.physics import GRAVITY, drag_per_mass  # noqa: E402
from plugins.world.tasks import parse_task  # noqa: E402
from plugins.world.throw import ThrowBatch, initial_action, solve_throws  # noqa: E402

STONE = {"mass": 0.15, "radius": 0.025, "drag_coeff": 0.47, "max_speed": 30.0}
FIXED_ANGLE = 35.0
RESTITUTION, FRICTION = 0.5, 0.3


# -- throw: SciPy side and the reference ---------------------------------------------------------

def _rhs(k: float):
    def f(_t, s):
        speed = math.hypot(s[2], s[3])
        return [s[2], s[3], -k * speed * s[2], -GRAVITY - k * speed * s[3]]
    return f


def _ground(_t, s):
    return s[1]


_ground.terminal, _ground.direction = True, -1


def scipy_landing(speed: float, angle: float, k: float, contacts: int, rtol: float, atol: float,
                  method: str = "RK45") -> float:
    """Where a throw makes its ``contacts``-th ground contact, integrated by solve_ivp."""
    from scipy.integrate import solve_ivp

    s = [0.0, 0.0, speed * math.cos(angle), speed * math.sin(angle)]
    for hit in range(contacts):
        sol = solve_ivp(_rhs(k), (0.0, 30.0), s, method=method, events=_ground, rtol=rtol, atol=atol)
        if not sol.t_events[0].size:
            return float("nan")
        x, _, vx, vy = sol.y_events[0][-1]
        if hit == contacts - 1:
            return float(x)
        impulse = FRICTION * (1 + RESTITUTION) * abs(vy)
        s = [x, 1e-12, math.copysign(max(abs(vx) - impulse, 0.0), vx), -RESTITUTION * vy]
    return float("nan")


def reference_landing(speed: float, angle: float, k: float, contacts: int) -> float:
    return scipy_landing(speed, angle, k, contacts, 1e-11, 1e-11, "DOP853")


def scipy_solve(target: float, angle: float | None, k: float, contacts: int) -> tuple[float, float]:
    """SciPy's action for one target: brentq on the speed (fixed angle) or least_squares on
    (speed, angle) from 45 degrees (free angle)."""
    from scipy.optimize import brentq, least_squares

    def land(v, a):
        return scipy_landing(v, a, k, contacts, 1e-8, 1e-8)

    if angle is not None:
        low, high = 0.5, STONE["max_speed"]
        if land(high, angle) < target:
            return high, angle
        return brentq(lambda v: land(v, angle) - target, low, high, xtol=1e-6), angle
    fit = least_squares(lambda p: [land(p[0], p[1]) - target], x0=[15.0, math.radians(45.0)],
                        bounds=([0.5, math.radians(1.0)], [STONE["max_speed"], math.radians(89.0)]), xtol=1e-10)
    return float(fit.x[0]), float(fit.x[1])


def bench_throw(n: int) -> None:
    k = drag_per_mass(STONE["mass"], STONE["radius"], STONE["drag_coeff"])
    targets = np.linspace(5.0, 40.0, n)
    print(f"\n== throw: {n} targets 5-40 m, stone {STONE}, restitution {RESTITUTION}, friction {FRICTION}")
    print(f"{'variant':<22}{'solver':<26}{'success':>9}{'max miss m':>12}{'ms/target':>11}{'speed-up':>10}")
    for label, extra in (("fixed angle 35 deg", {"angle": FIXED_ANGLE}), ("free angle", {}),
                         ("past one bounce", {"bounces": 1}), ("bounce, fixed 35 deg", {"angle": FIXED_ANGLE, "bounces": 1})):
        tasks = [parse_task({"task": "throw", "target": [float(t), 0.0], **STONE, **extra}) for t in targets]
        contacts = extra.get("bounces", 0) + 1
        angle = math.radians(extra["angle"]) if "angle" in extra else None

        def judge(actions):
            misses = np.array([abs(reference_landing(s, a, k, contacts) - t) for (s, a), t in zip(actions, targets)])
            return float(np.mean(misses <= 0.05)), float(np.nanmax(misses))

        solve_throws(tasks[:2]), scipy_solve(float(targets[0]), angle, k, contacts)  # warm both up
        runs = []
        for _ in range(3):  # the batch takes seconds, a load burst on this shared CPU can double one run
            start = time.perf_counter()
            ours = solve_throws(tasks)
            runs.append(time.perf_counter() - start)
        ours_ms = 1000 * float(np.median(runs)) / n
        start = time.perf_counter()
        sp = [scipy_solve(float(t), angle, k, contacts) for t in targets]
        sp_ms = 1000 * (time.perf_counter() - start) / n
        closed = initial_action(ThrowBatch.of(tasks)).tolist()
        for name, actions, ms in (("torch LM, batch of %d" % n, ours.action.tolist(), ours_ms),
                                  ("SciPy solve_ivp+%s" % ("brentq" if angle is not None else "lsq"), sp, sp_ms)):
            rate, worst = judge(actions)
            speedup = f"{sp_ms / ms:9.1f}x" if ms == ours_ms else ""
            print(f"{label:<22}{name:<26}{100 * rate:8.1f}%{worst:12.4f}{ms:11.2f}{speedup:>10}")
        rate, worst = judge(closed)
        print(f"{label:<22}{'no-drag closed form':<26}{100 * rate:8.1f}%{worst:12.3f}{'':>11}  "
              f"(mean miss {np.mean([abs(reference_landing(s, a, k, contacts) - t) for (s, a), t in zip(closed, targets)]):.2f} m)")
        print(f"{'':<22}torch iterations: mean {ours.iterations.float().mean():.2f}, max {int(ours.iterations.max())}")


# -- Reacher-v5 ------------------------------------------------------------------------------------

#: The issue's quick MPPI: 64 samples, 10 steps, white noise, the environment's own model.
BASELINE_REACHER = {**REACHER_TASK, "horizon": 10, "samples": 64, "noise": 0.3, "temperature": 0.1, "knots": 10,
                    "integrator": None, "timestep": None, "frame_skip": 2}


def reacher_episodes(settings: dict, seeds: range, warmup: int) -> dict:
    import gymnasium as gym

    from plugins.world.mpc import MPCPlanner, RecedingHorizon, physics_state

    planner = MPCPlanner(nthread=2)
    returns, finals, times = [], [], []
    for seed in seeds:
        env = gym.make("Reacher-v5")
        env.reset(seed=seed)
        sim = env.unwrapped
        controller = RecedingHorizon(planner, settings, seed=seed, warmup=warmup)
        total, done, info = 0.0, False, {}
        while not done:
            start = time.perf_counter()
            action = controller.act(physics_state(sim.model, sim.data))
            times.append(time.perf_counter() - start)
            _, reward, terminated, truncated, info = env.step(action)
            total += reward
            done = terminated or truncated
        env.close()
        returns.append(total)
        finals.append(-info["reward_dist"])
    ms = 1000 * np.array(times)
    return {"return": float(np.mean(returns)), "std": float(np.std(returns)), "within_1cm": float(np.mean(np.array(finals) < 0.01)),
            "ms_mean": float(ms.mean()), "ms_p95": float(np.percentile(ms, 95)), "ms_first": float(ms[::50].mean())}


def bench_reacher(n: int) -> None:
    print(f"\n== Reacher-v5: {n} seeds, 50 control steps of 20 ms each; targets: return >= -3.75 (solved), goal >= -2.6 "
          f"(SAC), <= 20 ms per step on 2 cores (load average now {os.getloadavg()[0]:.1f})")
    print(f"{'controller (warm-up iterations at step 1)':<44}{'return':>14}{'<1 cm':>8}{'ms/step':>9}{'p95':>7}{'1st':>7}")
    for name, settings, warmup in (("baseline MPPI 64 x 10, white noise, env model", BASELINE_REACHER, 1),
                                   ("ours MPPI 32 x 20, 3 knots, Euler 20 ms model", REACHER_TASK, REACHER_WARMUP),
                                   ("ours MPPI 64 x 20, 3 knots, Euler 20 ms model", {**REACHER_TASK, "samples": 64}, 30)):
        r = reacher_episodes(settings, range(n), warmup)
        print(f"{name:<44}{r['return']:8.3f}+-{r['std']:.2f}{100 * r['within_1cm']:7.0f}%{r['ms_mean']:9.1f}"
              f"{r['ms_p95']:7.1f}{r['ms_first']:7.0f}")


def bench_reacher_optimum(n: int) -> None:
    import gymnasium as gym
    from scipy.optimize import minimize

    from plugins.world.mpc import MPCPlanner, RecedingHorizon, parse_mpc_task, physics_state

    print(f"\n== Reacher-v5 ceiling: {n} seeds, best open-loop return by L-BFGS-B over the 100 controls")
    planner, ours, best, replay = MPCPlanner(nthread=2), [], [], 0.0
    # the environment's own model and step (RK4, 2 x 10 ms), its reward, all 50 steps
    exact = parse_mpc_task({**REACHER_TASK, "integrator": None, "timestep": None, "frame_skip": 2, "horizon": 50})
    eye = np.eye(100) * 1e-6
    for seed in range(n):
        env = gym.make("Reacher-v5")
        env.reset(seed=seed)
        sim = env.unwrapped
        start = physics_state(sim.model, sim.data)
        controller = RecedingHorizon(planner, REACHER_TASK, seed=seed, warmup=REACHER_WARMUP)
        actions, total = [], 0.0
        for _ in range(50):
            actions.append(controller.act(physics_state(sim.model, sim.data)))
            total += env.step(actions[-1])[1]
        env.close()

        def cost_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
            # forward differences, the 101 sequences rolled out in one mujoco.rollout call
            plans = np.clip(flat[None] + np.vstack([np.zeros(100), eye]), -1.0, 1.0).reshape(101, 50, 2)
            costs = planner.rollout_costs(exact, start, plans)[0]
            return float(costs[0]), (costs[1:] - costs[0]) / 1e-6

        replay = max(replay, abs(cost_and_gradient(np.ravel(actions))[0] + total))
        found = [minimize(cost_and_gradient, x0, jac=True, method="L-BFGS-B", bounds=[(-1.0, 1.0)] * 100,
                          options={"maxiter": 500}).fun for x0 in (np.ravel(actions), np.zeros(100))]
        ours.append(total)
        best.append(-min(found))
    print(f"ours (MPPI 32 x 20) {np.mean(ours):.3f}; optimum found {np.mean(best):.3f} (ours within "
          f"{100 * (np.mean(ours) / np.mean(best) - 1):.1f} % of it; best seed {max(best):.3f}; the planner's "
          f"model replays our actions within {replay:.1e} of the environment's return)")


# -- the same reach in torch and in MuJoCo -------------------------------------------------------

def bench_arm() -> None:
    import mujoco

    from sage_core import MaxSteps, refine
    from plugins.world.mpc import MPCPlanner, parse_mpc_task
    from plugins.world.plugin import WorldPlanner

    target = [0.12, 0.08]
    print(f"\n== the same reach (2-link arm, tip to {target} m within 1 cm in 1 s = 50 control steps)")
    print(f"{'solver':<44}{'iterations':>11}{'seconds':>9}{'error m':>9}{'in MuJoCo m':>13}")
    start = time.perf_counter()
    result = refine(WorldPlanner(), {"task": "reach", "target": target, "horizon": 50}, {}, policy=MaxSteps(500))
    seconds = time.perf_counter() - start
    planner = MPCPlanner(nthread=2)
    task = parse_mpc_task({"model": "two_link_arm", "track": "fingertip", "goal": "target", "horizon": 50, "samples": 64,
                           "noise": 0.1, "knots": 4})
    model = planner.model(task)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    controls = result.state.x["action"].numpy()
    for u in controls:
        data.ctrl[:] = u
        mujoco.mj_step(model, data, nstep=2)
    replay = float(np.linalg.norm(data.xipos[model.body("fingertip").id] - data.xipos[model.body("target").id]))
    print(f"{'torch core, Adam through the arm model':<44}{result.history.steps:11d}{seconds:9.2f}"
          f"{float(result.state.x['error']):9.4f}{replay:13.4f}")
    start = time.perf_counter()
    result = refine(planner, dict(task), {"seed": 0}, policy=MaxSteps(500))
    seconds = time.perf_counter() - start
    print(f"{'MuJoCo MPPI 64 samples (open loop)':<44}{result.history.steps:11d}{seconds:9.2f}"
          f"{float(result.state.x['error']):9.4f}{float(result.state.x['error']):13.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 throw targets and 10 Reacher seeds")
    parser.add_argument("--parts", default="throw,reacher,arm", help="comma-separated: throw, reacher, optimum, arm")
    parser.add_argument("--seeds", type=int, default=None, help="Reacher seeds (default 50, --quick 10)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    parts = set(args.parts.split(","))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch thread, {os.cpu_count()} CPUs")
    if "throw" in parts:
        bench_throw(40 if args.quick else 200)
    if "reacher" in parts:
        bench_reacher(args.seeds or (10 if args.quick else 50))
    if "optimum" in parts:
        bench_reacher_optimum(args.seeds or (10 if args.quick else 50))
    if "arm" in parts:
        bench_arm()


if __name__ == "__main__":
    main()
