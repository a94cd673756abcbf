"""Control sequences (arm reach, point-mass track) refined by Adam through the torch dynamics.

A problem maps a control sequence u (T x 2, each entry in [-1, 1]: the fraction of the actuator
limit) to a cost and a predicted trajectory; :func:`adam_step` is one optimizer iteration with
its moments kept in the caller's state, so a stopped refinement resumes bit-identically.
"""

from __future__ import annotations

import math

import attrs
import torch

from .physics import arm_rollout, arm_tip, point_mass_rollout
from .tasks import ReachTask, TrackTask

BETAS = (0.9, 0.999)
EPS = 1e-8


@attrs.frozen
class Outcome:
    """Cost of a control sequence, its predicted trajectory (T+1 x 2) and its task error (m)."""

    cost: torch.Tensor
    trajectory: torch.Tensor
    error: torch.Tensor


def reach_outcome(task: ReachTask, u: torch.Tensor) -> Outcome:
    """Tip distance squared at the horizon + effort + a little final joint speed."""
    arm = task.arm
    q0 = torch.tensor([task.q0], dtype=torch.float64)
    q, dq = arm_rollout(q0, torch.zeros_like(q0), arm.gear * u[None], arm)
    tips = arm_tip(q[0], arm)
    target = torch.tensor(task.target, dtype=torch.float64)
    miss = tips[-1] - target
    cost = (miss * miss).sum() + task.effort * (u * u).mean() + 1e-4 * (dq[0, -1] ** 2).sum()
    return Outcome(cost, tips, miss.norm())


def waypoint_times(task: TrackTask) -> list[int]:
    """Control steps at which the point mass should stand on each waypoint."""
    return [(i + 1) * task.steps_per_waypoint for i in range(len(task.waypoints))]


def track_outcome(task: TrackTask, u: torch.Tensor) -> Outcome:
    """Sum of squared waypoint misses at their times + effort; error = the worst miss."""
    p0 = torch.tensor([task.start], dtype=torch.float64)
    p, _ = point_mass_rollout(p0, torch.zeros_like(p0), task.max_force * u[None], task.mass, task.dt)
    at = p[0, waypoint_times(task)]
    miss = (at - torch.tensor(task.waypoints, dtype=torch.float64)).norm(dim=1)
    cost = (miss * miss).sum() + task.effort * (u * u).mean()
    return Outcome(cost, p[0], miss.max())


def horizon(task: ReachTask | TrackTask) -> int:
    """Number of control steps of a task."""
    return task.horizon if isinstance(task, ReachTask) else task.steps_per_waypoint * len(task.waypoints)


def outcome(task: ReachTask | TrackTask, u: torch.Tensor) -> Outcome:
    """The task's outcome of the control sequence ``u``."""
    return reach_outcome(task, u) if isinstance(task, ReachTask) else track_outcome(task, u)


def outcome_and_gradient(task: ReachTask | TrackTask, u: torch.Tensor) -> tuple[Outcome, torch.Tensor]:
    """The outcome of ``u`` (detached) and d(cost)/du by one backward pass."""
    leaf = u.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = outcome(task, leaf)
        (grad,) = torch.autograd.grad(out.cost, leaf)
    return Outcome(out.cost.detach(), out.trajectory.detach(), out.error.detach()), grad


def adam_step(u: torch.Tensor, grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor, t: int,
              lr: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Adam update (iteration ``t`` >= 1) of ``u``, clipped to the actuator limits [-1, 1]."""
    m = BETAS[0] * m + (1.0 - BETAS[0]) * grad
    v = BETAS[1] * v + (1.0 - BETAS[1]) * grad * grad
    m_hat = m / (1.0 - BETAS[0] ** t)
    v_hat = v / (1.0 - BETAS[1] ** t)
    return (u - lr * m_hat / (v_hat.sqrt() + EPS)).clamp(-1.0, 1.0), m, v


def closest_reach(task: ReachTask) -> float:
    """Distance from the target to the arm's workspace annulus (0 when reachable)."""
    l1, l2 = task.arm.lengths
    r = math.hypot(*task.target)
    inner = math.sqrt(max(l1**2 + l2**2 + 2 * l1 * l2 * math.cos(task.arm.elbow_limit), 0.0))
    return max(r - (l1 + l2), inner - r, 0.0)
