"""The core refine loop: halting order, budget, zero energy, telemetry with and without sinks."""

import json

import pytest

from plugins.toy import QuadraticDescent
from sage_core import (HaltDecision, JSONLSink, MaxSteps, MemorySink, Telemetry, Threshold, refine,
                       trust_metrics)
import sage_core.loop as loop_module


def test_converges_and_reports_trust():
    result = refine(QuadraticDescent(), [1.0] * 8, {"seed": 0}, policy=MaxSteps(300) | Threshold(1e-10))
    assert result.decision.policy == "threshold" and result.energy <= 1e-10
    assert result.trust.monotonicity == 1.0 and result.trust.convergence_rate > 0
    assert result.trust == trust_metrics(result.history)
    assert result.state.step == result.history.steps and result.state.energy == result.energy


def test_budget_caps_atp_spent():
    class Costly(QuadraticDescent):
        def step_cost(self, state):
            return 2.5

    result = refine(Costly(), None, budget=10.0, policy=MaxSteps(100))
    assert result.decision.policy == "budget_exhausted" and result.history.spent == 10.0
    assert result.state.step == 4


def test_zero_energy_from_the_start_halts_immediately():
    class Solved(QuadraticDescent):
        def energy(self, state):
            return 0.0

    result = refine(Solved(), None, policy=MaxSteps(10) | Threshold(0.0))
    assert result.history.energies == [0.0] and result.state.step == 0


def test_plugin_halt_is_consulted_after_policy():
    class Stubborn(QuadraticDescent):
        def halt(self, history):
            return HaltDecision("own", "plugin decided") if history.steps >= 3 else None

    assert refine(Stubborn(), None, policy=MaxSteps(10)).decision.policy == "own"
    assert refine(Stubborn(), None, policy=MaxSteps(2)).decision.policy == "max_steps"


def test_halt_state_sees_the_new_state_after_each_step():
    seen = []

    class Verified(QuadraticDescent):
        def halt_state(self, state):
            seen.append(state.step)
            return HaltDecision("verified", "state says done") if state.step == 4 else None

    result = refine(Verified(), None, policy=MaxSteps(10))
    assert result.decision.policy == "verified" and result.state.step == 4
    assert seen == [1, 2, 3, 4]  # after every step, not on the initial state
    assert refine(Verified(), None, policy=MaxSteps(3)).decision.policy == "max_steps"  # policy first


def test_telemetry_events_match_history(tmp_path):
    memory = MemorySink()
    jsonl = JSONLSink(tmp_path / "events.jsonl")
    telemetry = Telemetry([memory, jsonl])
    result = refine(QuadraticDescent(), [1.0] * 8, policy=MaxSteps(5), telemetry=telemetry, session="s1")
    telemetry.close()
    steps = [e for e in memory if e.kind == "step"]
    assert [e.energy for e in steps] == result.history.energies[1:]
    assert all(e.session == "s1" and e.plugin == "toy" for e in memory)
    assert [e.d_energy for e in steps] == pytest.approx(
        [b - a for a, b in zip(result.history.energies, result.history.energies[1:])])
    halt = memory.events[-1]
    assert halt.kind == "halt" and halt.policy == "max_steps" and halt.monotonicity == result.trust.monotonicity
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and lines[-1]["reason"] == halt.reason
    with pytest.raises(ValueError, match="closed"):
        jsonl.emit(halt)


def test_no_sink_builds_no_events(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("an event was built with no sink attached")

    monkeypatch.setattr(loop_module, "StepEvent", forbidden)
    monkeypatch.setattr(loop_module, "HaltEvent", forbidden)
    result = refine(QuadraticDescent(), None, policy=MaxSteps(20))
    assert result.history.steps == 20
    telemetry = Telemetry()
    telemetry.attach(MemorySink())
    with pytest.raises(AssertionError, match="no sink"):
        refine(QuadraticDescent(), None, policy=MaxSteps(2), telemetry=telemetry)


def test_attach_refuses_non_sink():
    with pytest.raises(TypeError, match="not a telemetry sink"):
        Telemetry().attach(object())


def test_step_that_would_overrun_budget_is_not_started():
    class Costly(QuadraticDescent):
        def step_cost(self, state):
            return 2.5

    result = refine(Costly(), None, budget=9.0, policy=MaxSteps(100))
    assert result.state.step == 3 and result.history.spent == 7.5
    assert "2.5 ATP, 1.5 left" in result.decision.reason
