"""Orchestrator API: run/Result, step-level API, events, observer hooks, streaming edges."""

import math

import pytest
import torch

from orchestrator import Orchestrator, OrchestratorError, Pipeline
from plugins.toy import QuadraticDescent
from sage_core import MaxSteps, MemorySink, Telemetry, get_registry, hookimpl, refine


def simple():
    p = Pipeline("simple")
    p.add_node("a", "toy", halt={"max_steps": 12})
    p.add_node("b", "toy", config={"lr": 0.05, "dim": 4}, halt={"max_steps": 8})
    p.add_node("c", "toy", halt={"max_steps": 5})
    p.add_edge("a", "c")
    return p


def test_run_result_matches_the_single_plugin_loop():
    result = Orchestrator(simple()).run(budget=100)
    assert set(result.nodes) == {"a", "b", "c"}
    ref = refine(QuadraticDescent(), None, {"seed": 0}, policy=MaxSteps(12))
    assert result["a"].energies == tuple(ref.history.energies)
    assert torch.equal(result["a"].state.x, ref.state.x) and result["a"].state.energy == ref.energy
    assert result["a"].metrics == ref.trust
    assert {n: r.reason for n, r in result.nodes.items()} == {"a": "max_steps", "b": "max_steps", "c": "max_steps"}
    assert result.atp_spent == 25 and result.budget == 100 and not result.failures
    assert [e.plugin for e in result.events] == ["a", "b", "c"]  # halt order
    d = result.to_dict()
    assert d["nodes"]["c"]["steps"] == 5 and d["trust"] == result.trust


def test_step_level_api_and_events():
    o = Orchestrator(simple(), scheduler="round_robin")
    with pytest.raises(OrchestratorError, match="no session"):
        o.step()
    session = o.start(budget=100)
    first = o.step()
    assert [(e.kind, e.plugin, e.step) for e in first] == [("step", "a", 1)]
    assert first[0].session == session and first[0].atp_spent == 1.0
    events = list(o.events())
    assert o.done and o.step() == []
    steps = [e for e in events if e.kind == "step"]
    halts = [e for e in events if e.kind == "halt"]
    assert len(steps) == 24 and sorted(h.plugin for h in halts) == ["a", "b", "c"]
    for e in steps:
        assert math.isfinite(e.energy) and e.d_energy == pytest.approx(e.d_energy)
    result = o.finish()
    assert result.atp_spent == 25
    assert o.finish() is result  # finishing twice does not update trust twice


def test_telemetry_sink_receives_every_event():
    sink = MemorySink()
    result = Orchestrator(simple(), telemetry=Telemetry([sink])).run()
    assert sum(e.kind == "step" for e in sink) == 25
    assert [e for e in sink if e.kind == "halt"] == list(result.events)
    a_steps = [e.energy for e in sink if e.kind == "step" and e.plugin == "a"]
    assert a_steps == list(result["a"].energies[1:])


def test_observer_hooks_are_called():
    calls = []

    class Observer:
        @hookimpl
        def sage_session_started(self, session, nodes):
            calls.append(("started", session, tuple(nodes)))

        @hookimpl
        def sage_plugin_halted(self, session, node, event):
            calls.append(("halted", node, event.reason))

        @hookimpl
        def sage_session_finished(self, session, result):
            calls.append(("finished", session, result.atp_spent))

    registry = get_registry()
    assert registry.add(Observer(), name="test-observer")
    try:
        result = Orchestrator(simple()).run(session="obs")
    finally:
        registry.remove("test-observer")
    assert calls[0] == ("started", "obs", ("a", "b", "c"))
    assert sorted(c[1] for c in calls if c[0] == "halted") == ["a", "b", "c"]
    assert calls[-1] == ("finished", "obs", result.atp_spent)


def test_a_raising_observer_does_not_break_the_session():
    class Broken:
        @hookimpl
        def sage_plugin_halted(self, session, node, event):
            raise RuntimeError("observer bug")

    registry = get_registry()
    registry.add(Broken(), name="test-broken-observer")
    try:
        result = Orchestrator(simple()).run()
    finally:
        registry.remove("test-broken-observer")
    assert all(not r.failed for r in result.nodes.values()) and result.atp_spent == 25


def test_streaming_edge_starts_target_after_first_step_and_delivers_each_step():
    p = Pipeline()
    p.add_node("src", "toy", halt={"max_steps": 6})
    p.add_node("dst", "listener", halt={"max_steps": 10})
    p.add_edge("src", "dst", "identity", to="hint", streaming=True)
    o = Orchestrator(p, scheduler="round_robin")
    o.start()
    assert o.runs["dst"].status == "pending"
    o.step()
    assert o.runs["dst"].status == "running"  # started after the producer's first step
    result = o.finish()
    dst = result["dst"].state
    assert dst.meta["received"] == 5  # steps 2..6 of src, delivered while dst ran
    assert torch.equal(dst.carry["hint"], result["src"].state.x)


def test_independent_nodes_interleave():
    o = Orchestrator(simple(), scheduler="round_robin")
    o.start()
    names = [e.plugin for _ in range(6) for e in o.step() if e.kind == "step"]
    assert names == ["a", "b", "a", "b", "a", "b"]


def test_plugin_own_halt_is_honoured():
    class Act(QuadraticDescent):
        name = "act"

        def halt(self, history):
            from sage_core import HaltDecision

            return HaltDecision("act", "q_halt > q_continue") if history.steps == 4 else None

    p = Pipeline()
    p.add_node("x", Act(), halt={"max_steps": 50})
    result = Orchestrator(p).run()
    assert result["x"].reason == "act" and result["x"].steps == 4
