"""The Solver's answer: ``solution(state)``, else ``output(state)``; ``claims`` from ``checked_claims``."""

import types

import pytest

from orchestrator.service import Solver, SolveRequest
from sage_core import HaltDecision, IRPPlugin, IRPState, Registry, hookimpl


class Doubler(IRPPlugin):
    """Halves its energy each step; its answer is twice the grid's sum (``output`` only)."""

    name, version = "doubler", "1.0.0"

    def init_state(self, x0, ctx):
        return IRPState(x=float(sum(map(sum, x0))), meta={"e": 1.0})

    def energy(self, state):
        return state.meta["e"]

    def step(self, state, budget=None):
        return state.evolve(step=state.step + 1, meta={"e": state.meta["e"] / 2})

    def halt_state(self, state):
        return HaltDecision("verified", "two steps") if state.step >= 2 else None

    def output(self, state):
        return [2 * state.x]


class Both(Doubler):
    """``solution`` and ``output`` differ: the solution is the answer."""

    name = "both"

    @staticmethod
    def solution(state):
        return -state.x


class Claimer(Doubler):
    """Says two things about its answer, one of them false."""

    name = "claimer"

    def output(self, state):
        return f"sum = {state.x}\nsum = 0"

    @staticmethod
    def checked_claims(state):
        return [(f"sum = {state.x}", True), ("sum = 0", state.x == 0)]


@pytest.fixture(scope="module")
def solver():
    registry = Registry(strict=True, disabled=())
    module = types.ModuleType("sagetest_answers")
    module.sage_register_plugins = hookimpl(lambda register: [register(c) for c in (Doubler, Both, Claimer)])
    assert registry.add(module, name="sagetest_answers")
    s = Solver(registry)
    yield s
    s.close()


GRID = [[1, 2], [3, 0]]


def test_a_plugin_without_solution_answers_with_its_output(solver):
    res = solver.solve(SolveRequest(GRID, plugin="doubler"), timeout=30)
    assert (res.answer, res.segments, res.verified, res.claims) == ([12.0], 2, True, None)


def test_solution_wins_over_output(solver):
    assert solver.solve(SolveRequest(GRID, plugin="both"), timeout=30).answer == -6.0


def test_checked_claims_come_with_the_answer(solver):
    res = solver.solve(SolveRequest(GRID, plugin="claimer"), timeout=30)
    assert res.answer == "sum = 6.0\nsum = 0"
    assert res.claims == [{"claim": "sum = 6.0", "true": True}, {"claim": "sum = 0", "true": False}]
    assert res.to_dict()["claims"] == res.claims
