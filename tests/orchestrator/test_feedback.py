"""Feedback edges: cycles only through them, nodes of a cycle interleave and rest until the whole
cycle halts, budget and trust as for any node, and a checkpoint mid-cycle resumes bit-identically."""

import tempfile
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import Orchestrator, Pipeline, PipelineError
from orchestrator._orchestrator import RESTING

from .fakes import Coupled, make_store

FAST = {"plateau": {"eps": 1e-2, "window": 3}, "max_steps": 200}
SLOW = {"plateau": {"eps": 1e-6, "window": 3}, "max_steps": 200}


def loop(*, downstream: bool = True, slow_halt: dict | None = None) -> Pipeline:
    """a <-> b (a streams to b, b feeds back to a), then c after a."""
    p = Pipeline("loop")
    p.add_node("a", "coupled", config={"dim": 4, "lr": 0.3, "problem_seed": 1, "condition": 3}, halt=FAST)
    p.add_node("b", "coupled", config={"dim": 4, "lr": 0.02, "problem_seed": 2, "condition": 3, "noise": 1e-4},
               halt=slow_halt or SLOW, seed=5)
    p.add_edge("a", "b", to="peer", streaming=True)
    p.add_edge("b", "a", to="peer", feedback=True)
    if downstream:
        p.add_node("c", "toy", config={"dim": 4}, halt={"max_steps": 3})
        p.add_edge("a", "c")
    return p


def statuses(orchestrator: Orchestrator) -> list[dict[str, str]]:
    trace = []
    while not orchestrator.done:
        orchestrator.step()
        trace.append({name: run.status for name, run in orchestrator.runs.items()})
    return trace


# -- validation ---------------------------------------------------------------------------------
def test_a_cycle_without_feedback_is_refused_naming_it():
    p = Pipeline()
    for name in "abc":
        p.add_node(name, "toy")
    p.add_edge("a", "b")
    p.add_edge("b", "c", to="hint")
    with pytest.raises(PipelineError, match=r"edge 'c'->'a' would close the cycle a -> b -> c -> a with no feedback"):
        p.add_edge("c", "a", to="hint")
    assert p.graph.number_of_edges() == 2


def test_validate_names_a_cycle_added_behind_the_builders_back():
    p = Pipeline("raw")
    p.add_node("a", "coupled")
    p.add_node("b", "coupled")
    edge = p.add_edge("a", "b", to="peer", streaming=True)
    p.graph.add_edge("b", "a", edge=edge)
    with pytest.raises(PipelineError, match=r"pipeline 'raw' has the cycle (a -> b -> a|b -> a -> b) with no feedback"):
        p.validate()


def test_toml_feedback_edge_builds_and_round_trips(tmp_path):
    path = tmp_path / "loop.toml"
    path.write_text(textwrap.dedent("""
        [pipeline]
        name = "loop"
        [nodes.a]
        plugin = "coupled"
        [nodes.b]
        plugin = "coupled"
        [[edges]]
        from = "a"
        to = "b"
        into = "peer"
        streaming = true
        [[edges]]
        from = "b"
        to = "a"
        into = "peer"
        feedback = true
    """))
    p = Pipeline.from_toml(path)
    assert p.cycles() == [frozenset("ab")]
    back = p.out_edges("b")[0]
    assert back.feedback and back.streaming and back.to == "peer"
    again = Pipeline.from_dict(p.to_dict())
    assert [(e.source, e.target, e.feedback) for e in again.in_edges("a")] == [("b", "a", True)]


@pytest.mark.parametrize("edge, needle", [
    ({"to": "input"}, "a feedback edge goes into a context key"),
    ({}, "streaming edges need the target plugin to define receive"),
])
def test_feedback_edge_errors_name_the_edge(edge, needle):
    p = Pipeline()
    p.add_node("a", "toy")
    p.add_node("b", "toy")
    p.add_edge("a", "b")
    with pytest.raises(PipelineError, match=f"edge 'b'->'a': {needle}"):
        p.add_edge("b", "a", feedback=True, **edge)


def test_feedback_defaults_to_the_feedback_key_and_checks_its_kind():
    p = Pipeline()
    p.add_node("a", "coupled")
    p.add_node("b", "coupled")
    p.add_edge("a", "b", to="peer", streaming=True)
    assert p.add_edge("b", "a", feedback=True).to == "feedback"
    q = Pipeline()
    q.add_node("a", "coupled")
    q.add_node("b", "coupled")
    with pytest.raises(PipelineError, match=r"edge 'b'->'a': bridge 'energy' produces 'scalar' but node 'a' "
                                            r"\(coupled\) takes 'vector' as 'peer'"):
        q.add_edge("b", "a", "energy", to="peer", feedback=True)


def test_an_edge_on_a_cycle_needs_a_receiving_target():
    p = Pipeline()
    p.add_node("a", "coupled")
    p.add_node("b", "toy")
    p.add_edge("a", "b")
    p.add_edge("b", "a", to="peer", feedback=True)
    with pytest.raises(PipelineError, match=r"edge 'a'->'b' lies on a cycle: 'b' gets 'a''s new result .* "
                                            r"plugin 'toy' must define receive"):
        p.validate()


# -- running ------------------------------------------------------------------------------------
def test_cycle_nodes_interleave_both_ways():
    orchestrator = Orchestrator(loop(), scheduler="round_robin")
    orchestrator.start()
    stepped = []
    while not orchestrator.done:
        stepped += [event.plugin for event in orchestrator.step() if event.kind == "step"]
    result = orchestrator.finish()
    cycle_steps = [name for name in stepped if name != "c"]
    switches = sum(1 for x, y in zip(cycle_steps, cycle_steps[1:]) if x != y)
    assert switches > len(cycle_steps) // 3  # a and b alternate, not one after the other
    a, b = result["a"].state.meta, result["b"].state.meta
    assert a["received"] >= result["b"].steps - 1 and b["received"] >= result["a"].steps - 1


def test_a_halted_cycle_node_rests_wakes_on_feedback_and_the_cycle_ends_together():
    orchestrator = Orchestrator(loop(), scheduler="round_robin")
    orchestrator.start()
    trace = statuses(orchestrator)
    rested = [i for i, row in enumerate(trace) if row["a"] == RESTING]
    assert rested, "a converges first and must rest while b still runs"
    woke = [i for i in rested if i + 1 < len(trace) and trace[i + 1]["a"] == "running"]
    assert woke, "b's feedback changes a's energy, so a must wake"
    # c (fed by a through a plain edge) starts only once the whole cycle has halted
    first_c = next(i for i, row in enumerate(trace) if row["c"] != "pending")
    assert trace[first_c]["a"] == trace[first_c]["b"] == "halted"
    assert all(row["c"] == "pending" for row in trace[:first_c])
    result = orchestrator.finish()
    halts = [event.plugin for event in result.events]
    assert halts.index("c") == 2  # one halt event per node; the cycle's two come first
    assert sorted(halts) == ["a", "b", "c"]


def test_a_failure_on_a_cycle_halts_that_node_and_the_rest_goes_on():
    p = Pipeline()
    p.add_node("a", "coupled", config={"dim": 4}, halt=SLOW)
    p.add_node("b", Coupled(dim=4), halt={"max_steps": 30})
    p.add_edge("a", "b", to="peer", streaming=True)
    p.add_edge("b", "a", to="peer", feedback=True)

    def boom(state):
        if state.step == 4:
            raise RuntimeError("bridge broke")
        return state.x

    p.graph.edges["b", "a"]["edge"].bridge = type(p.out_edges("b")[0].bridge)("boom", boom)
    result = Orchestrator(p).run()
    assert result["a"].failed and "bridge broke" in result["a"].fault.detail
    assert not result["b"].failed and result["b"].steps == 30


@pytest.mark.parametrize("budget", [40.0, 90.0])
def test_budget_bounds_a_cycle_and_trust_updates(budget):
    orchestrator = Orchestrator(loop(slow_halt={"max_steps": 500}))
    result = orchestrator.run(budget=budget)
    assert result.atp_spent <= budget + 1e-9
    assert result["b"].reason in ("budget_exhausted", "max_steps", "plateau")
    assert set(result.trust) >= {"coupled", "toy"}


def run_reference():
    return Orchestrator(loop(), scheduler="energy_drop").run(budget=300)


REFERENCE = None


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rounds=st.integers(min_value=0, max_value=140))
def test_checkpoint_mid_cycle_resumes_bit_identically(rounds):
    global REFERENCE
    if REFERENCE is None:
        REFERENCE = run_reference()
    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(Path(tmp))
        first = Orchestrator(loop(), scheduler="energy_drop")
        session = first.start(budget=300, store=store)
        for _ in range(rounds):
            first.step()
        number = first.checkpoint(store)
        for _ in range(5):
            first.step()
        resumed = Orchestrator(loop(), scheduler="energy_drop")
        resumed.resume(store, session, number)
        result = resumed.finish()
    for name in "abc":
        assert result[name].energies == REFERENCE[name].energies
        assert torch.equal(result[name].state.x, REFERENCE[name].state.x)
        assert result[name].allocation == REFERENCE[name].allocation
        assert result[name].reason == REFERENCE[name].reason
    assert [e.plugin for e in result.events] == [e.plugin for e in REFERENCE.events]
