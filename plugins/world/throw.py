"""Throws solved by Newton's method through the differentiable flight simulator, many at once.

The action of a throw is (launch speed m/s, launch angle rad); the residual is the signed miss
along the ground. A fixed angle gives a 1-D Newton step on the speed; a free angle gives the
minimum-norm (Gauss-Newton) step on both, with the speed held at its limit when the target is
beyond it (active set), so an unreachable target converges to the farthest throw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import torch

from .physics import GRAVITY, Flight, drag_per_mass, simulate_throw
from .tasks import ThrowTask

MIN_SPEED = 0.1
ANGLE_BOUNDS = (math.radians(1.0), math.radians(89.0))
#: metric of the free-angle step: one radian of angle weighs like 1/sqrt(ANGLE_WEIGHT) m/s of speed
ANGLE_WEIGHT = 0.01
DAMPING = 1e-3
MAX_SPEED_STEP, MAX_ANGLE_STEP = 10.0, 0.2
DT = 0.1


@attrs.frozen
class ThrowBatch:
    """Per-row parameters of B throws as tensors (float64)."""

    k: torch.Tensor
    restitution: torch.Tensor
    friction: torch.Tensor
    contacts: torch.Tensor
    start: torch.Tensor
    target: torch.Tensor
    max_speed: torch.Tensor
    angle: torch.Tensor  # fixed angle in rad, NaN where free

    @classmethod
    def of(cls, tasks: Sequence[ThrowTask]) -> ThrowBatch:
        def col(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float64)

        return cls(
            k=col([drag_per_mass(t.mass, t.radius, t.drag_coeff) for t in tasks])[:, None],
            restitution=col([t.restitution for t in tasks])[:, None],
            friction=col([t.friction for t in tasks])[:, None],
            contacts=torch.tensor([t.bounces + 1 for t in tasks], dtype=torch.long),
            start=col([[0.0, t.height] for t in tasks]).reshape(-1, 2),
            target=col([t.target[0] for t in tasks]),
            max_speed=col([t.max_speed for t in tasks]),
            angle=col([math.nan if t.angle is None else math.radians(t.angle) for t in tasks]),
        )

    @property
    def free(self) -> torch.Tensor:
        return torch.isnan(self.angle)


def velocity(action: torch.Tensor) -> torch.Tensor:
    """Launch velocities (B x 2) of actions (B x [speed, angle])."""
    return action[:, :1] * torch.stack([torch.cos(action[:, 1]), torch.sin(action[:, 1])], dim=1)


def fly(batch: ThrowBatch, action: torch.Tensor) -> Flight:
    """Simulate the throws of ``action`` (B x 2) to their final contact."""
    return simulate_throw(velocity(action), batch.start, batch.k, batch.restitution, batch.friction,
                          batch.contacts, dt=DT)


def fly_with_jacobian(batch: ThrowBatch, action: torch.Tensor) -> tuple[Flight, torch.Tensor]:
    """The flight of ``action`` and d(landing x)/d(action) per row (B x 2), by one backward pass."""
    a = action.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        flight = fly(batch, a)
        (jacobian,) = torch.autograd.grad(flight.landing[:, 0].sum(), a)
    detached = Flight(flight.landing.detach(), flight.trajectory.detach(), flight.landed)
    return detached, jacobian


def closed_form_speed(distance: torch.Tensor, angle: torch.Tensor, height: torch.Tensor) -> torch.Tensor:
    """Launch speed that lands at ``distance`` without drag (from ``height``, at ``angle``)."""
    c, t = torch.cos(angle), torch.tan(angle)
    return torch.sqrt(GRAVITY * distance**2 / (2.0 * c**2 * (distance * t + height).clamp(min=1e-9)))


def initial_action(batch: ThrowBatch, free_angle_deg: float = 45.0) -> torch.Tensor:
    """The no-drag closed-form action (45 degrees where the angle is free); past a bounce the
    first hop is shortened by the flat-ground no-drag hop ratio."""
    angle = torch.where(batch.free, torch.full_like(batch.angle, math.radians(free_angle_deg)), batch.angle)
    e, mu = batch.restitution[:, 0], batch.friction[:, 0]
    ratio = (e * (1.0 - mu * (1.0 + e) * torch.tan(angle))).clamp(min=0.0)
    hops = sum(ratio**n for n in range(int(batch.contacts.max())))
    hops = torch.where(batch.contacts > 1, hops, torch.ones_like(hops))
    first = batch.target / hops
    speed = closed_form_speed(first, angle, batch.start[:, 1])
    return project(batch, torch.stack([speed, angle], dim=1))


def project(batch: ThrowBatch, action: torch.Tensor) -> torch.Tensor:
    """Actuator limits: speed in [MIN_SPEED, max_speed]; angle fixed or inside ANGLE_BOUNDS."""
    speed = torch.minimum(action[:, 0].clamp(min=MIN_SPEED), batch.max_speed)
    angle = torch.where(batch.free, action[:, 1].clamp(*ANGLE_BOUNDS), batch.angle)
    return torch.stack([speed, angle], dim=1)


def propose(batch: ThrowBatch, action: torch.Tensor, miss: torch.Tensor, jacobian: torch.Tensor,
            damping: torch.Tensor) -> torch.Tensor:
    """A Levenberg-Marquardt step on the signed miss (minimum norm where the angle is free, the
    speed held where it is pinned at its limit), trust-region clipped and projected."""
    js = jacobian[:, 0]
    ja = torch.where(batch.free, jacobian[:, 1], torch.zeros_like(jacobian[:, 1]))
    pinned = (action[:, 0] >= batch.max_speed - 1e-9) & (-miss * js > 0)
    js = torch.where(pinned, torch.zeros_like(js), js)
    denom = js * js + ANGLE_WEIGHT * ja * ja + damping
    ds = (-miss * js / denom).clamp(-MAX_SPEED_STEP, MAX_SPEED_STEP)
    da = (-miss * ANGLE_WEIGHT * ja / denom).clamp(-MAX_ANGLE_STEP, MAX_ANGLE_STEP)
    return project(batch, action + torch.stack([ds, da], dim=1))


@attrs.frozen
class ThrowIterate:
    """Where B throws stand: actions, LM damping, landing points, Jacobians, trajectories, and
    whether the last proposal could not move (an action pinned at its limit)."""

    action: torch.Tensor
    damping: torch.Tensor
    landing: torch.Tensor
    jacobian: torch.Tensor
    trajectory: torch.Tensor
    stuck: torch.Tensor

    def miss(self, batch: ThrowBatch) -> torch.Tensor:
        return self.landing[:, 0] - batch.target


def start(batch: ThrowBatch, action: torch.Tensor | None = None) -> ThrowIterate:
    """The iterate at ``action`` (default: the no-drag closed form)."""
    action = initial_action(batch) if action is None else action
    flight, jac = fly_with_jacobian(batch, action)
    n = action.shape[0]
    return ThrowIterate(action, torch.full((n,), DAMPING, dtype=torch.float64), flight.landing, jac,
                        flight.trajectory, torch.zeros(n, dtype=torch.bool))


def advance(batch: ThrowBatch, it: ThrowIterate) -> ThrowIterate:
    """One LM iteration: propose, fly the proposal (one forward and one backward pass), keep it
    where it lands closer (damping / 3) and keep the old action where not (damping x 4)."""
    miss = it.miss(batch)
    proposal = propose(batch, it.action, miss, it.jacobian, it.damping)
    flight, jac = fly_with_jacobian(batch, proposal)
    better = (flight.landing[:, 0] - batch.target).abs() < miss.abs()
    keep = better[:, None]
    trajectory = _pad_like(flight.trajectory, it.trajectory)
    old = _pad_like(it.trajectory, trajectory)
    return ThrowIterate(
        action=torch.where(keep, proposal, it.action),
        damping=torch.where(better, it.damping / 3.0, it.damping * 4.0).clamp(1e-9, 1e12),
        landing=torch.where(keep, flight.landing, it.landing),
        jacobian=torch.where(keep, jac, it.jacobian),
        trajectory=torch.where(keep[:, :, None], trajectory, old),
        stuck=(proposal - it.action).abs().amax(dim=1) < 1e-7,
    )


def _pad_like(trajectory: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``trajectory`` (B x T x 2) padded with its last point to at least ``other``'s length."""
    extra = other.shape[1] - trajectory.shape[1]
    if extra <= 0:
        return trajectory
    return torch.cat([trajectory, trajectory[:, -1:].expand(-1, extra, -1)], dim=1)


def infeasible(batch: ThrowBatch, it: ThrowIterate) -> torch.Tensor:
    """Rows thrown at full speed that still fall short and can no longer move."""
    return (it.action[:, 0] >= batch.max_speed - 1e-9) & (it.miss(batch) < 0) & it.stuck


#: The solver aims at a tenth of the task's tolerance, so the few-micrometre difference between
#: this integrator and another cannot turn a hit into a miss.
AIM = 0.1


@attrs.frozen
class ThrowSolution:
    """Result of :func:`solve_throws`: actions, landing points, misses, iterations per row."""

    action: torch.Tensor
    landing: torch.Tensor
    miss: torch.Tensor
    iterations: torch.Tensor
    infeasible: torch.Tensor


def solve_throws(tasks: Sequence[ThrowTask], max_iter: int = 60) -> ThrowSolution:
    """Solve B throws as one batch: LM iterations on the rows still open until each lands
    within AIM x its tolerance or is pinned at the speed limit and stops moving (infeasible)."""
    batch = ThrowBatch.of(tasks)
    tol = AIM * torch.tensor([t.tolerance for t in tasks], dtype=torch.float64)
    it = start(batch)
    action, landing = it.action.clone(), it.landing.clone()
    iterations = torch.zeros(len(tasks), dtype=torch.long)
    failed = torch.zeros(len(tasks), dtype=torch.bool)
    rows = torch.arange(len(tasks))
    for _ in range(max_iter):
        stuck = infeasible(batch, it)
        failed[rows] = stuck
        open_ = ~((it.miss(batch).abs() <= tol[rows]) | stuck)
        if not bool(open_.any()):
            break
        rows, it, batch = rows[open_], _rows(it, open_), _rows(batch, open_)
        it = advance(batch, it)
        iterations[rows] += 1
        action[rows], landing[rows] = it.action, it.landing
    target = torch.tensor([t.target[0] for t in tasks], dtype=torch.float64)
    return ThrowSolution(action=action, landing=landing, miss=landing[:, 0] - target, iterations=iterations,
                         infeasible=failed)


def _rows(value: ThrowBatch | ThrowIterate, mask: torch.Tensor) -> ThrowBatch | ThrowIterate:
    """The rows ``mask`` of every tensor field of an attrs batch value."""
    return attrs.evolve(value, **{f.name: getattr(value, f.name)[mask] for f in attrs.fields(type(value))})
