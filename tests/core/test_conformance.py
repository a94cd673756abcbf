"""The conformance kit passes a good plugin and catches each kind of broken one by name."""

import functools
import math

import pytest
import torch

from plugins.toy import BatchedTanhRegression, QuadraticDescent
from sage_core import IRPState
from sage_core.testing import CHECKS, ConformanceError, check_plugin, parametrize_with_checks


@parametrize_with_checks([QuadraticDescent, functools.partial(QuadraticDescent, noise=0.05, dim=8), BatchedTanhRegression])
def test_toy_plugin_conforms(plugin_check):
    plugin_check()


class Mutates(QuadraticDescent):
    def step(self, state, budget=None):
        state.x.mul_(0.5)
        return state.evolve(step=state.step + 1)


class NonFiniteEnergy(QuadraticDescent):
    def energy(self, state):
        return math.nan if state.step >= 2 else super().energy(state)


class Nondeterministic(QuadraticDescent):
    def step(self, state, budget=None):
        new = super().step(state)
        return new.evolve(x=new.x + 1e-3 * torch.randn(self.dim, dtype=torch.float64))


class ForgetsCarry(QuadraticDescent):
    """Keeps hidden progress on the instance, so a fresh instance cannot resume."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls = 0

    def step(self, state, budget=None):
        self.calls += 1
        new = super().step(state)
        return new.evolve(x=new.x * (1 + 0.01 * self.calls))


class NoStepCount(QuadraticDescent):
    def step(self, state, budget=None):
        return super().step(state).evolve(step=state.step)


class ProjectNotIdempotent(QuadraticDescent):
    def project(self, state):
        return state.evolve(x=state.x * 0.5)


class BadExport(QuadraticDescent):
    def export_state(self, state):
        return {"x": state.x}, {"when": object()}


@pytest.mark.parametrize("cls,check", [
    (Mutates, "step_does_not_mutate"),
    (NonFiniteEnergy, "finite_energies"),
    (Nondeterministic, "deterministic"),
    (ForgetsCarry, "resume_equals_uninterrupted"),
    (NoStepCount, "contract"),
    (ProjectNotIdempotent, "project_idempotent"),
    (BadExport, "export_round_trip"),
])
def test_kit_names_the_failed_check_and_plugin(cls, check):
    report = check_plugin(cls, raise_on_failure=False)
    assert check in {r.check for r in report.failures}
    with pytest.raises(ConformanceError, match=rf"plugin 'toy' failed .*{check}"):
        check_plugin(cls)


def test_every_check_passes_on_toy_and_is_counted():
    report = check_plugin(QuadraticDescent)
    assert report.passed and len(report.results) == len(CHECKS)


def test_missing_example_requires_explicit_input():
    class NoExample(QuadraticDescent):
        example = None

    with pytest.raises(ValueError, match="pass x0= and ctx="):
        check_plugin(NoExample)
    assert check_plugin(NoExample, x0=[0.5] * 8, ctx={"seed": 1}).passed


def test_pytest_plugin_fixture(irp_conformance):
    assert irp_conformance is check_plugin
    assert isinstance(IRPState(x=1), IRPState)


class StepBatchDrifts(BatchedTanhRegression):
    def step_batch(self, states):
        return [s.evolve(x=s.x * (1 + 1e-3)) for s in super().step_batch(states)]


class EnergyBatchOff(BatchedTanhRegression):
    def energy_batch(self, states):
        return [e + 1e-2 for e in super().energy_batch(states)]


class InitBatchShort(BatchedTanhRegression):
    def init_state_batch(self, x0s, ctxs):
        return [self.init_state(x0, c) for x0, c in zip(x0s, ctxs)][:-1]


class ProjectBatchSkips(BatchedTanhRegression):
    def project(self, state):
        return state.evolve(x=state.x.clamp(-0.5, 0.5))

    def project_batch(self, states):
        return list(states)


class StepBatchWithinRounding(BatchedTanhRegression):
    def init_state_batch(self, x0s, ctxs):
        return [self.init_state(x0, c) for x0, c in zip(x0s, ctxs)]

    def step_batch(self, states):
        return [s.evolve(x=s.x * (1 + 1e-9)) for s in super().step_batch(states)]


@pytest.mark.parametrize("cls,fragment", [
    (StepBatchDrifts, "step_batch item 0"),
    (EnergyBatchOff, "energy_batch item 0"),
    (InitBatchShort, "init_state_batch returned 2 results for 3"),
    (ProjectBatchSkips, "project_batch item"),
])
def test_kit_catches_batch_methods_that_disagree(cls, fragment):
    report = check_plugin(cls, raise_on_failure=False)
    assert [r.check for r in report.failures] == ["batch_methods_agree"]
    assert fragment in report.failures[0].detail


def test_batch_methods_may_differ_by_float_rounding():
    assert check_plugin(StepBatchWithinRounding).passed
