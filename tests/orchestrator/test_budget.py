"""ATP: split by trust with a floor, freed ATP really re-used, budget never overrun."""

import math

import pytest
from hypothesis import given, settings, strategies as st

from orchestrator import Orchestrator, Pipeline, TrustStore, share, split_budget
from orchestrator._trust import TrustRecord


def test_split_by_trust_with_floor():
    alloc = split_budget(100.0, ["a", "b"], {"a": 0.9, "b": 0.1}, {"a": 10.0, "b": 10.0})
    assert alloc == pytest.approx({"a": 10 + 80 * 0.9, "b": 10 + 80 * 0.1})
    assert sum(alloc.values()) == pytest.approx(100.0)
    # floors larger than the budget are scaled down, never exceeding it
    alloc = split_budget(10.0, ["a", "b"], {"a": 1.0, "b": 1.0}, {"a": 15.0, "b": 5.0})
    assert alloc == pytest.approx({"a": 7.5, "b": 2.5})


@given(total=st.floats(0, 1e6), trust=st.lists(st.floats(0, 1), min_size=1, max_size=6),
       floor=st.floats(0, 1e3))
def test_split_sums_to_budget_and_respects_floor(total, trust, floor):
    names = [f"n{i}" for i in range(len(trust))]
    alloc = split_budget(total, names, dict(zip(names, trust)), {n: floor for n in names})
    assert sum(alloc.values()) == pytest.approx(total, rel=1e-9, abs=1e-6)
    assert all(v >= min(floor, total / len(names)) - 1e-6 for v in alloc.values())


def test_share_by_trust():
    assert share(10.0, ["a", "b"], {"a": 3.0, "b": 1.0}) == {"a": 7.5, "b": 2.5}
    assert share(10.0, ["a", "b"], {"a": 0.0, "b": 0.0}) == {"a": 5.0, "b": 5.0}
    assert share(0.0, ["a"], {"a": 1.0}) == {}


def two_nodes(fast_steps=5):
    p = Pipeline()
    p.add_node("quick", "toy", halt={"max_steps": fast_steps})
    p.add_node("slow", "toy", config={"lr": 0.001}, halt={"max_steps": 10_000})
    return p


def test_freed_atp_is_reused_by_running_nodes():
    """quick halts after 5 of its 50 ATP; slow then runs far beyond its initial 50."""
    o = Orchestrator(two_nodes(), floor_fraction=0.0)
    o.start(budget=100)
    initial = {name: run.allocation for name, run in o.runs.items()}
    assert initial == {"quick": 50.0, "slow": 50.0}
    result = o.finish()
    assert result["quick"].steps == 5
    assert result["slow"].steps == 95 > initial["slow"]
    assert result["slow"].reason == "budget_exhausted"
    assert result.atp_spent == 100.0
    assert result["quick"].allocation == 5.0 and result["slow"].allocation == 95.0


def test_starved_node_wakes_when_atp_is_freed():
    """slow exhausts its 10 ATP while quick still runs; it waits (starved), then continues on
    the 30 ATP quick leaves when it halts."""
    p = Pipeline()
    p.add_node("slow", "toy", config={"lr": 0.001}, halt={"max_steps": 10_000}, floor=10)
    p.add_node("quick", "toy", halt={"max_steps": 20}, floor=50)
    o = Orchestrator(p, scheduler="round_robin")
    o.start(budget=60)
    assert (o.runs["slow"].allocation, o.runs["quick"].allocation) == (10.0, 50.0)
    statuses = []
    while not o.done:
        o.step()
        statuses.append((o.runs["slow"].status, o.runs["slow"].history.steps))
    result = o.finish()
    assert ("starved", 10) in statuses
    assert result["quick"].steps == 20 and result["slow"].steps == 40
    assert result["slow"].reason == "budget_exhausted" and result.atp_spent == 60


def test_trust_weights_the_split():
    trust = TrustStore({"toy": TrustRecord(0.9), "costly": TrustRecord(0.1)})
    p = Pipeline()
    p.add_node("a", "toy")
    p.add_node("b", "costly")
    o = Orchestrator(p, trust=trust)
    o.start(budget=200)
    assert o.runs["a"].allocation == pytest.approx(10 + 180 * 0.9)
    assert o.runs["b"].allocation == pytest.approx(10 + 180 * 0.1)


def test_unlimited_budget():
    result = Orchestrator(two_nodes()).run()
    assert result.budget is None and math.isinf(result["slow"].allocation)
    assert result["slow"].steps == 10_000 and result["slow"].reason == "max_steps"


@settings(max_examples=25, deadline=None)
@given(budget=st.floats(0, 60), cost=st.sampled_from([0.5, 1.0, 2.5, 7.0]), quick=st.integers(1, 30))
def test_budget_is_never_overrun(budget, cost, quick):
    p = Pipeline()
    p.add_node("a", "costly", config={"cost": cost, "lr": 0.001}, halt={"max_steps": 1000})
    p.add_node("b", "toy", halt={"max_steps": quick})
    p.add_node("c", "costly", config={"cost": 1.0, "lr": 0.001}, halt={"max_steps": 1000})
    result = Orchestrator(p).run(budget=budget)
    assert result.atp_spent <= budget + 1e-9
    for node in result.nodes.values():
        assert node.atp_spent <= node.allocation + 1e-9
    # nothing is left that a running node could still have used
    left = budget - result.atp_spent
    assert left < max(cost, 1.0) + 1e-9
