"""The torch physics: gradients by gradcheck, ground contact, the arm's limits and kinematics."""

import math

import torch
from torch.autograd import gradcheck

from plugins.world.physics import (
    ArmParams, arm_rollout, arm_step, arm_tip, bounce, drag_per_mass, point_mass_rollout, rk4_ballistic, simulate_throw,
)

K = drag_per_mass(0.15, 0.025, 0.47)


def _throw(v0, contacts=1):
    n = v0.shape[0]
    col = lambda x: torch.full((n, 1), x, dtype=torch.float64)  # noqa: E731
    return simulate_throw(v0, torch.zeros(n, 2, dtype=torch.float64), col(K), col(0.5), col(0.3),
                          torch.full((n,), contacts, dtype=torch.long))


def test_gradcheck_ballistic_step():
    s = torch.tensor([[0.0, 1.0, 10.0, 5.0], [2.0, 0.5, -3.0, 8.0]], dtype=torch.float64, requires_grad=True)
    k = torch.tensor([[K], [2 * K]], dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda s, k: rk4_ballistic(s, k, 0.05), (s, k))


def test_gradcheck_landing_point_and_bounce():
    v0 = torch.tensor([[12.0, 9.0], [20.0, 4.0]], dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda v: _throw(v).landing[:, 0], (v0,))
    assert gradcheck(lambda v: _throw(v, contacts=2).landing[:, 0], (v0,))
    v = torch.tensor([[5.0, -4.0]], dtype=torch.float64, requires_grad=True)
    e = torch.tensor([[0.6]], dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda v, e: bounce(v, e, torch.tensor([[0.2]], dtype=torch.float64)), (v, e))


def test_gradcheck_arm_and_point_mass_steps():
    arm = ArmParams()
    q = torch.tensor([[0.3, -0.5], [1.0, 2.9]], dtype=torch.float64, requires_grad=True)
    dq = torch.tensor([[0.1, 0.2], [-0.3, 0.4]], dtype=torch.float64, requires_grad=True)
    tau = torch.tensor([[10.0, -5.0], [0.0, 30.0]], dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda q, dq, tau: arm_step(q, dq, tau, arm), (q, dq, tau))
    f = torch.randn(2, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    zero = torch.zeros(2, 2, dtype=torch.float64)
    assert gradcheck(lambda f: point_mass_rollout(zero, zero, f, 1.0, 0.05, 0.1)[0], (f,))


def test_drag_free_flight_matches_the_closed_form_and_drag_shortens_it():
    v = torch.tensor([[20.0 * math.cos(0.6), 20.0 * math.sin(0.6)]], dtype=torch.float64)
    n = 1
    col = lambda x: torch.full((n, 1), x, dtype=torch.float64)  # noqa: E731
    no_drag = simulate_throw(v, torch.zeros(1, 2, dtype=torch.float64), col(0.0), col(0.5), col(0.3),
                             torch.ones(1, dtype=torch.long))
    exact = 400.0 * math.sin(1.2) / 9.81
    assert abs(float(no_drag.landing[0, 0]) - exact) < 1e-6
    assert float(_throw(v).landing[0, 0]) < exact - 1.0


def test_bounce_lands_farther_and_friction_never_reverses():
    v0 = torch.tensor([[15.0, 10.0]], dtype=torch.float64)
    one, two = _throw(v0), _throw(v0, contacts=2)
    assert float(two.landing[0, 0]) > float(one.landing[0, 0]) + 0.5
    after = bounce(torch.tensor([[0.5, -10.0]], dtype=torch.float64), torch.tensor([[0.5]]), torch.tensor([[1.0]]))
    assert float(after[0, 0]) == 0.0 and abs(float(after[0, 1]) - 5.0) < 1e-12


def test_arm_tip_kinematics_and_elbow_limit_holds():
    arm = ArmParams()
    tip = arm_tip(torch.tensor([[0.0, 0.0], [math.pi / 2, 0.0]], dtype=torch.float64), arm)
    assert torch.allclose(tip, torch.tensor([[0.21, 0.0], [0.0, 0.21]], dtype=torch.float64), atol=1e-12)
    q0 = torch.zeros(1, 2, dtype=torch.float64)
    q, _ = arm_rollout(q0, q0, torch.tensor([[[0.0, arm.gear]]], dtype=torch.float64).expand(1, 100, 2), arm)
    assert float(q[0, :, 1].max()) == arm.elbow_limit and float(q[0, :, 1].abs().max()) <= arm.elbow_limit
