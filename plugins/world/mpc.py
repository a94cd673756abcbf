"""MPCPlanner: the ``world_mpc`` IRP plugin, a sampling planner over ``mujoco.rollout``.

One IRP step is one planner iteration from the current physics state: K control sequences
(the current plan and K-1 copies plus smooth noise, linear between a few knots as MuJoCo MPC's
spline noise, clipped to the control range) are rolled out in
parallel, scored by the task's cost, and the plan becomes their MPPI average (``method="mppi"``)
or the best of them (``method="ps"``, predictive sampling as in MuJoCo MPC). The noise of
iteration n is drawn from ``step_rng(seed, n)``: the RNG position is the counter ``n`` in the
state's meta, so a plan exported mid-run resumes bit-identically.

Cost of a sequence: per control step, the distance from the tracked body to the goal plus
``ctrl_weight * |u|^2`` (gymnasium Reacher's reward, negated), summed over the horizon.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from sage_core import HaltDecision, IRPPlugin, IRPState, step_rng

from .models import compile_model, require_mujoco
from .tasks import int_field, number_field

METHODS = ("mppi", "ps")

#: The gymnasium Reacher-v5 controller that bench/world.py measures: MPPI, 32 samples, 20 steps
#: of 20 ms, on a planning model integrated by Euler at 20 ms (the environment: RK4, 2 x 10 ms).
REACHER_TASK = {"model": "reacher", "track": "fingertip", "goal": "target", "horizon": 20, "samples": 32, "noise": 0.1,
                "temperature": 0.05, "knots": 3, "integrator": "euler", "timestep": 0.02, "frame_skip": 1}
#: Planner iterations at the first, cold control step.
REACHER_WARMUP = 10


def parse_mpc_task(task: Any) -> dict[str, Any]:
    """A checked MuJoCo planning task dict (defaults filled in); ValueError names the bad field."""
    if not isinstance(task, Mapping):
        raise ValueError(f"world_mpc task must be a dict such as {{'model': 'reacher', 'track': 'fingertip', "
                         f"'goal': 'target'}}, got {type(task).__name__}")
    for key in ("model", "track", "goal"):
        if key not in task:
            raise ValueError(f"world_mpc task: missing key {key!r}")
    goal = task["goal"]
    if not isinstance(goal, str):
        try:
            goal = [float(v) for v in goal]
        except (TypeError, ValueError):
            goal = None
        if goal is None or len(goal) != 3 or not all(math.isfinite(v) for v in goal):
            raise ValueError(f"world_mpc task: 'goal' must be a body/site name or a point [x, y, z], got {task['goal']!r}")
    method = task.get("method", "mppi")
    if method not in METHODS:
        raise ValueError(f"world_mpc task: 'method' must be one of {METHODS}, got {method!r}")
    if not isinstance(task["track"], str):
        raise ValueError(f"world_mpc task: 'track' must be a body or site name, got {task['track']!r}")
    parsed = {
        "model": task["model"], "track": task["track"], "goal": goal, "method": method,
        "horizon": int_field(task, "horizon", 15, 1, 500), "samples": int_field(task, "samples", 64, 2, 4096),
        "frame_skip": int_field(task, "frame_skip", 2, 1, 100), "knots": int_field(task, "knots", 4, 1, 100),
        "noise": number_field(task, "noise", 0.3, low=0.0, strict_low=True),
        "temperature": number_field(task, "temperature", 0.05, low=0.0, strict_low=True),
        "ctrl_weight": number_field(task, "ctrl_weight", 1.0, low=0.0),
        "tolerance": number_field(task, "tolerance", 0.01, low=0.0, strict_low=True),
    }
    if task.get("integrator") is not None:
        parsed["integrator"] = task["integrator"]
    if task.get("timestep") is not None:
        parsed["timestep"] = number_field(task, "timestep", low=0.0, strict_low=True)
    for key in ("qpos", "qvel"):
        if key in task:
            parsed[key] = [float(v) for v in task[key]]
    return parsed


class MPCPlanner(IRPPlugin):
    """Sampling planner (MPPI or predictive sampling) over ``mujoco.rollout``; one step = one
    iteration; ``project`` = the control range; halts when the plan's tracked body ends within
    tolerance of the goal. Drive it in closed loop with :class:`RecedingHorizon`."""

    name = "world_mpc"
    version = "1.0.0"
    input_kind = "target"
    output_kind = "plan"

    def __init__(self, nthread: int | None = None) -> None:
        self.nthread = int(nthread or min(os.cpu_count() or 1, 2))
        if self.nthread < 1:
            raise ValueError(f"world_mpc: nthread must be >= 1, got {nthread}")
        self._rollout: Any = None
        self._datas: dict[int, list[Any]] = {}

    @classmethod
    def example(cls) -> tuple[Any, dict[str, Any]]:
        """A short reach of the inline 2-link arm for the conformance kit."""
        return {"model": "two_link_arm", "track": "fingertip", "goal": "target", "horizon": 10, "samples": 16}, {"seed": 0}

    # -- model plumbing ------------------------------------------------------------------------

    def model(self, task: Mapping[str, Any]) -> Any:
        """The compiled model of a parsed task, with position sensors for track (and goal)."""
        names = (task["track"],) + ((task["goal"],) if isinstance(task["goal"], str) else ())
        return compile_model(task["model"], names, task.get("integrator"), task.get("timestep"))

    def _pool(self, model: Any) -> tuple[Any, list[Any]]:
        mujoco = require_mujoco()
        from mujoco import rollout

        if self._rollout is None:
            self._rollout = rollout.Rollout(nthread=self.nthread)
        if id(model) not in self._datas:
            self._datas[id(model)] = [mujoco.MjData(model) for _ in range(self.nthread)]
        return self._rollout, self._datas[id(model)]

    def initial_physics(self, task: Mapping[str, Any]) -> np.ndarray:
        """The full physics state at the model's defaults, with the task's qpos/qvel."""
        mujoco = require_mujoco()
        model = self.model(task)
        data = mujoco.MjData(model)
        for key in ("qpos", "qvel"):
            if key in task:
                values = np.asarray(task[key], dtype=np.float64)
                if values.shape != getattr(data, key).shape:
                    raise ValueError(f"world_mpc task: {key!r} has {values.size} values, the model has {getattr(data, key).size}")
                getattr(data, key)[:] = values
        mujoco.mj_forward(model, data)
        return physics_state(model, data)

    def rollout_costs(self, task: Mapping[str, Any], physics: np.ndarray, plans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Costs (K) and tracked positions (K x H x 3) of control sequences ``plans`` (K x H x nu)."""
        model = self.model(task)
        runner, datas = self._pool(model)
        skip = task["frame_skip"]
        # mj_step evaluates sensors before it integrates, so the sensors recorded after step n
        # describe the state n - 1 steps on: one extra step makes them cover steps 1 .. H
        controls = np.repeat(plans, skip, axis=1)
        controls = np.concatenate([controls, controls[:, -1:]], axis=1)
        _, sensors = runner.rollout(model, datas, physics[None], controls)
        after = sensors[:, skip::skip]
        base = model.nsensordata - (6 if isinstance(task["goal"], str) else 3)
        tracked = after[:, :, base:base + 3]
        goal = after[:, :, base + 3:base + 6] if isinstance(task["goal"], str) else np.asarray(task["goal"])
        distance = np.linalg.norm(tracked - goal, axis=2)
        effort = task["ctrl_weight"] * (plans * plans).sum(axis=2)
        return (distance + effort).sum(axis=1), np.concatenate([tracked, distance[:, :, None]], axis=2)

    # -- the contract ------------------------------------------------------------------------

    def init_state(self, x0: Any, ctx: Mapping[str, Any]) -> IRPState:
        task = parse_mpc_task(x0)
        model = self.model(task)
        plan = np.zeros((task["horizon"], model.nu))
        physics = self.initial_physics(task)
        meta = {"task": json.loads(json.dumps(task)), "seed": int(ctx.get("seed", 0)), "counter": 0}
        return self._evaluated(task, physics, plan, meta, step=0)

    def _evaluated(self, task: Mapping[str, Any], physics: np.ndarray, plan: np.ndarray, meta: dict[str, Any],
                   step: int) -> IRPState:
        costs, predicted = self.rollout_costs(task, physics, plan[None])
        x = {"action": plan, "physics": physics, "trajectory": predicted[0, :, :3],
             "cost": np.asarray(costs[0]), "error": np.asarray(predicted[0, -1, 3])}
        return IRPState(x=x, step=step, energy=float(costs[0]), meta=meta)

    def energy(self, state: IRPState) -> float:
        return float(state.x["cost"])

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        task = state.meta["task"]
        model = self.model(task)
        low, high = control_range(model)
        plan = state.x["action"]
        rng = step_rng(int(state.meta["seed"]), int(state.meta["counter"]))
        knots = rng.standard_normal((task["samples"] - 1, task["knots"], plan.shape[1]))
        noise = np.einsum("hk,skn->shn", knot_weights(plan.shape[0], task["knots"]), knots) * (task["noise"] * (high - low) / 2.0)
        candidates = np.concatenate([plan[None], np.clip(plan[None] + noise, low, high)], axis=0)
        costs, predicted = self.rollout_costs(task, state.x["physics"], candidates)
        meta = {**state.meta, "counter": int(state.meta["counter"]) + 1}
        if task["method"] == "ps":
            best = int(np.argmin(costs))
            x = {**state.x, "action": candidates[best], "trajectory": predicted[best, :, :3],
                 "cost": np.asarray(costs[best]), "error": np.asarray(predicted[best, -1, 3])}
            return IRPState(x=x, step=state.step + 1, energy=float(costs[best]), meta=meta)
        scale = task["temperature"] * max(float(np.mean(costs) - np.min(costs)), 1e-12)
        weights = np.exp(-(costs - costs.min()) / scale)
        new_plan = np.einsum("k,khu->hu", weights / weights.sum(), candidates)
        return self._evaluated(task, state.x["physics"], new_plan, meta, state.step + 1)

    def project(self, state: IRPState) -> IRPState:
        """Controls clipped to the model's control range (a plan inside it comes back as is)."""
        task = state.meta["task"]
        model = self.model(task)
        low, high = control_range(model)
        plan = state.x["action"]
        clipped = np.clip(plan, low, high)
        if np.array_equal(clipped, plan):
            return state
        return self._evaluated(task, state.x["physics"], clipped, dict(state.meta), state.step)

    def halt_state(self, state: IRPState) -> HaltDecision | None:
        error, tol = float(state.x["error"]), state.meta["task"]["tolerance"]
        if error <= tol:
            return HaltDecision("tolerance", f"the plan ends {error:.4f} m from the goal (<= {tol} m)")
        return None

    def rebase(self, state: IRPState, physics: np.ndarray, shift: bool = True) -> IRPState:
        """The state for the next control step from the measured physics state: the plan shifted
        by one step (its last action repeated) when ``shift``; the RNG position carries on."""
        plan = state.x["action"]
        if shift:
            plan = np.concatenate([plan[1:], plan[-1:]], axis=0)
        return self._evaluated(state.meta["task"], np.asarray(physics, dtype=np.float64), plan,
                               dict(state.meta), state.step)


def knot_weights(horizon: int, knots: int) -> np.ndarray:
    """H x knots matrix that interpolates knot values linearly over the horizon (a single knot
    holds its value), so sampled noise is smooth in time like MuJoCo MPC's spline noise."""
    if knots == 1:
        return np.ones((horizon, 1))
    at = np.linspace(0.0, knots - 1.0, horizon)
    return np.clip(1.0 - np.abs(at[:, None] - np.arange(knots)[None, :]), 0.0, None)


def control_range(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper control limits (nu each); unlimited actuators get +-1."""
    limited = model.actuator_ctrllimited.astype(bool)
    low = np.where(limited, model.actuator_ctrlrange[:, 0], -1.0)
    high = np.where(limited, model.actuator_ctrlrange[:, 1], 1.0)
    return low, high


def physics_state(model: Any, data: Any, spec: Any = None) -> np.ndarray:
    """The full physics state vector of ``data`` (what ``mujoco.rollout`` starts from), or the
    state of another ``mujoco.mjtState`` spec (e.g. ``mjSTATE_INTEGRATION``: also the controls
    and the constraint solver's warm start, all that ``mj_step`` reads)."""
    mujoco = require_mujoco()
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS if spec is None else spec
    out = np.empty(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, data, out, spec)
    return out


class RecedingHorizon:
    """Closed-loop control: before each control step, rebase the plan on the measured physics
    state (warm start: the previous plan shifted by one step), run ``iterations`` planner
    steps (``warmup`` at the first, cold step), and return the plan's first action."""

    def __init__(self, planner: MPCPlanner, task: Mapping[str, Any], seed: int = 0, iterations: int = 1,
                 warmup: int = 1) -> None:
        if iterations < 1 or warmup < 1:
            raise ValueError(f"RecedingHorizon: iterations and warmup must be >= 1, got {iterations}, {warmup}")
        self.planner, self.iterations, self.warmup = planner, int(iterations), int(warmup)
        self.state = planner.init_state(task, {"seed": seed})
        self._started = False

    def act(self, physics: np.ndarray) -> np.ndarray:
        """The action to apply now from the measured full physics state ``physics``."""
        state = self.planner.rebase(self.state, physics, shift=self._started)
        for _ in range(self.iterations if self._started else self.warmup):
            state = self.planner.project(self.planner.step(state))
        self.state, self._started = state, True
        return state.x["action"][0].copy()

    def export(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The controller as (arrays: plan, physics state, prediction; JSON-able meta: task, seed,
        RNG position, settings), for safetensors + JSON; :meth:`resume` continues bit-identically."""
        arrays = {key: np.asarray(value) for key, value in self.state.x.items()}
        meta = {"meta": self.state.meta, "step": self.state.step, "iterations": self.iterations,
                "warmup": self.warmup, "started": self._started}
        return arrays, json.loads(json.dumps(meta))

    @classmethod
    def resume(cls, planner: MPCPlanner, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> RecedingHorizon:
        """A controller restored from :meth:`export` output."""
        missing = {"action", "physics", "trajectory", "cost", "error"} - set(arrays)
        if missing:
            raise ValueError(f"RecedingHorizon.resume: the exported arrays lack {sorted(missing)}")
        state_meta = dict(meta["meta"])
        parse_mpc_task(state_meta["task"])
        controller = cls.__new__(cls)
        controller.planner, controller.iterations, controller.warmup = planner, int(meta["iterations"]), int(meta["warmup"])
        x = {k: np.array(arrays[k]).reshape(()) if k in ("cost", "error") else np.array(arrays[k]) for k in arrays}
        controller.state = IRPState(x=x, step=int(meta["step"]),
                                    energy=float(x["cost"]), meta=state_meta)
        controller._started = bool(meta["started"])
        return controller
