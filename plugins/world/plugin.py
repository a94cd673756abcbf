"""WorldPlanner: the ``world`` IRP plugin, refining a throw, an arm reach or a point-mass track
through the differentiable torch physics.

State ``x`` is the plan: the action being refined (``action``: [speed, angle] of a throw, or a
T x 2 control sequence in [-1, 1]), its predicted ``trajectory``, its end point ``landing``, and
what the next optimizer iteration needs (a throw's Jacobian and LM damping; Adam's moments and
the cost gradient), so a stopped session resumes bit-identically. Energy: the task's cost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch

from sage_core import HaltDecision, IRPPlugin, IRPState

from . import control, pointmaze, scene, throw
from .tasks import ReachTask, ThrowTask, parse_task


def _task_dict(x0: Any, template: Mapping[str, Any]) -> dict[str, Any]:
    """The task dict of an input: a dict (over the plugin's template), or a bare target /
    waypoint list filled into the template's task."""
    if isinstance(x0, Mapping):
        merged = {**template, **x0}
    elif template and x0 is not None:
        key = "waypoints" if template.get("task") == "track" else "target"
        value = x0.tolist() if hasattr(x0, "tolist") else x0
        merged = {**template, key: value}
    else:
        raise ValueError("world: the input must be a task dict such as {'task': 'throw', 'target': [20.0, 0.0]} "
                         "(or a bare target / waypoints when the plugin is configured with task={...})")
    return json.loads(json.dumps(merged, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


#: Adam step sizes (in units of the actuator limit) that converge on the default tasks.
LEARNING_RATES = {"reach": 0.01, "track": 0.03}
#: A step improves on the best cost when it lowers it by this fraction.
PLATEAU_RTOL = 1e-5


class WorldPlanner(IRPPlugin):
    """Refines actions through differentiable physics: one step = one optimizer iteration
    (Levenberg-Marquardt on a throw's miss, Adam on a control sequence); ``project`` = actuator
    limits; halts within tolerance, or as ``infeasible`` with the closest achievable action."""

    name = "world"
    version = "1.0.0"
    output_kind = "plan"

    def __init__(self, task: Mapping[str, Any] | None = None, lr: float | None = None, plateau_steps: int = 20) -> None:
        if lr is not None and lr <= 0:
            raise ValueError(f"world: lr must be > 0, got {lr}")
        if plateau_steps < 1:
            raise ValueError(f"world: plateau_steps must be >= 1, got {plateau_steps}")
        self.template = dict(task or {})
        if self.template:
            parse_task({**self.template, **_PLACEHOLDER[self.template.get("task")]})
        self.input_kind = "waypoints" if self.template.get("task") == "track" else "target"
        self.lr, self.plateau_steps = lr, int(plateau_steps)

    @classmethod
    def example(cls) -> tuple[Any, dict[str, Any]]:
        """An arm reach for the conformance kit."""
        return {"task": "reach", "target": [0.12, 0.08], "horizon": 20}, {"seed": 0}

    #: The stone-throw scene (``sage demo throw``); demos reach these through the registry.
    render_throw_scene = staticmethod(scene.render_throw_scene)
    replay_throw = staticmethod(scene.replay_throw)
    plan_in_world = staticmethod(scene.plan_in_world)
    plot_throw = staticmethod(scene.plot_throw)
    #: The maze robot (``sage demo robot``): gymnasium-robotics' PointMaze from a maze, driven.
    plot_maze_run = staticmethod(pointmaze.plot_run)
    save_maze_gif = staticmethod(pointmaze.save_run_gif)
    maze_success_radius = pointmaze.SUCCESS_RADIUS

    # -- the contract ------------------------------------------------------------------------

    def init_state(self, x0: Any, ctx: Mapping[str, Any]) -> IRPState:
        spec = _task_dict(x0, self.template)
        task = parse_task(spec)
        meta = {"task": spec, "seed": int(ctx.get("seed", 0))}
        if isinstance(task, ThrowTask):
            batch = throw.ThrowBatch.of([task])
            return IRPState(x=_throw_plan(throw.start(batch), task), meta={**meta, "stuck": False})
        u = torch.zeros(control.horizon(task), 2, dtype=torch.float64)
        out, grad = control.outcome_and_gradient(task, u)
        x = _control_plan(u, torch.zeros_like(u), torch.zeros_like(u), grad, out)
        return IRPState(x=x, energy=float(out.cost), meta={**meta, "best": float(out.cost), "stall": 0})

    def energy(self, state: IRPState) -> float:
        return float(state.x["cost"])

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        task = parse_task(state.meta["task"])
        if isinstance(task, ThrowTask):
            batch = throw.ThrowBatch.of([task])
            it = throw.advance(batch, _throw_iterate(state.x))
            x = _throw_plan(it, task)
            return IRPState(x=x, step=state.step + 1, energy=float(x["cost"]),
                            meta={**state.meta, "stuck": bool(it.stuck[0])})
        x = state.x
        u, m, v = control.adam_step(x["action"], x["grad"], x["m"], x["v"], state.step + 1, self.lr or LEARNING_RATES[task.kind])
        out, grad = control.outcome_and_gradient(task, u)
        cost, best = float(out.cost), float(state.meta["best"])
        stall = 0 if cost < best * (1.0 - PLATEAU_RTOL) else int(state.meta["stall"]) + 1
        return IRPState(x=_control_plan(u, m, v, grad, out), step=state.step + 1, energy=cost,
                        meta={**state.meta, "best": min(best, cost), "stall": stall})

    def project(self, state: IRPState) -> IRPState:
        """Actuator limits (throw speed and angle, controls in [-1, 1]); a state already inside
        them comes back unchanged, one outside is clipped and its prediction recomputed."""
        task = parse_task(state.meta["task"])
        action = state.x["action"]
        if isinstance(task, ThrowTask):
            batch = throw.ThrowBatch.of([task])
            clipped = throw.project(batch, action[None])[0]
            if torch.equal(clipped, action):
                return state
            return state.evolve(x=_throw_plan(throw.start(batch, clipped[None]), task))
        clipped = action.clamp(-1.0, 1.0)
        if torch.equal(clipped, action):
            return state
        out, grad = control.outcome_and_gradient(task, clipped)
        return state.evolve(x=_control_plan(clipped, state.x["m"], state.x["v"], grad, out), energy=float(out.cost))

    def halt_state(self, state: IRPState) -> HaltDecision | None:
        task = parse_task(state.meta["task"])
        error = float(state.x["error"])
        if isinstance(task, ThrowTask):
            return self._throw_halt(task, state, error)
        if error <= task.tolerance:
            return HaltDecision("tolerance", f"within tolerance: error {error:.4f} m <= {task.tolerance} m")
        out_of_reach = control.closest_reach(task) if isinstance(task, ReachTask) else 0.0
        if out_of_reach > 0 and error <= out_of_reach + task.tolerance:
            return HaltDecision("infeasible", f"infeasible: the target lies {out_of_reach:.4f} m outside the arm's "
                                              f"workspace; the closest reach ends {error:.4f} m from it")
        if int(state.meta["stall"]) >= self.plateau_steps:
            saturated = bool((state.x["action"].abs() >= 1.0).any())
            if out_of_reach > 0 or saturated:
                return HaltDecision("infeasible", f"infeasible under the actuator limits: the closest plan ends "
                                                  f"{error:.4f} m from the target")
            return HaltDecision("plateau", f"plateau: no {PLATEAU_RTOL:.0e} relative improvement in {self.plateau_steps} steps, "
                                           f"error {error:.4f} m")
        return None

    @staticmethod
    def _throw_halt(task: ThrowTask, state: IRPState, error: float) -> HaltDecision | None:
        if error <= throw.AIM * task.tolerance:
            return HaltDecision("tolerance", f"lands within tolerance: miss {error:.4f} m <= {task.tolerance} m")
        action = state.x["action"]
        short = float(state.x["landing"][0]) < task.target[0]
        if state.meta["stuck"] and short and float(action[0]) >= task.max_speed - 1e-9:
            return HaltDecision("infeasible", f"infeasible: at max_speed {task.max_speed} m/s the closest throw "
                                              f"lands {error:.3f} m short (angle {float(action[1]) * 57.29578:.1f} deg)")
        return None


_PLACEHOLDER: dict[Any, dict[str, Any]] = {
    "throw": {"target": [1.0, 0.0]}, "reach": {"target": [0.1, 0.0]}, "track": {"waypoints": [[0.0, 0.0]]}, None: {},
}


def _throw_plan(it: throw.ThrowIterate, task: ThrowTask) -> dict[str, torch.Tensor]:
    """The plan dict of a one-row throw iterate aimed at ``task``'s target, with its azimuth (rad)."""
    miss = it.landing[0, 0] - task.target[0]
    return {"action": it.action[0], "trajectory": it.trajectory[0], "landing": it.landing[0],
            "jacobian": it.jacobian[0], "damping": it.damping[0], "error": miss.abs(), "cost": miss * miss,
            "azimuth": torch.tensor(task.azimuth, dtype=torch.float64)}


def _throw_iterate(x: Mapping[str, torch.Tensor]) -> throw.ThrowIterate:
    """The one-row iterate a throw plan holds."""
    return throw.ThrowIterate(action=x["action"][None], damping=x["damping"][None], landing=x["landing"][None],
                              jacobian=x["jacobian"][None], trajectory=x["trajectory"][None],
                              stuck=torch.zeros(1, dtype=torch.bool))


def _control_plan(u: torch.Tensor, m: torch.Tensor, v: torch.Tensor, grad: torch.Tensor,
                  out: control.Outcome) -> dict[str, torch.Tensor]:
    """The plan dict of a control sequence: action, Adam moments, gradient, prediction."""
    return {"action": u, "m": m, "v": v, "grad": grad, "trajectory": out.trajectory,
            "landing": out.trajectory[-1], "cost": out.cost, "error": out.error}

