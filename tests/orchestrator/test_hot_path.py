"""The per-step shortcuts of the multi-node fast path decide exactly as the plain code does:
the fused halting check of AnyOf, the scheduler's heap in ``pick``, and ``finish``'s inlined
bookkeeping (checked against runs with telemetry on, round by round, and resumed midway)."""

import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import EnergyDropScheduler, Orchestrator, Pipeline
from plugins.toy import QuadraticDescent
from sage_core import (AnyOf, BudgetExhausted, Diverging, EnergyHistory, HaltDecision, MaxSteps, MemorySink,
                       NonFinite, Plateau, Threshold, check_of)

# -- the fused AnyOf check ------------------------------------------------------------------


class Custom:
    """A policy of another kind: asked through its own check."""

    def __init__(self, at: float) -> None:
        self.at = at

    def check(self, history):
        return HaltDecision("custom", "over") if history.energies and history.energies[-1] > self.at else None


class EveryOther(MaxSteps):
    """A subclass of a built-in policy with its own check: the fused check must not inline MaxSteps'."""

    def check(self, history):
        return HaltDecision("odd", "odd steps") if len(history.energies) % 2 == 0 else None


class FlatHistory(EnergyHistory):
    """A history whose slope is always 0 (a Plateau halts on it): not inlined either."""

    def slope(self, window):
        return 0.0


finite = st.floats(-1e3, 1e3, allow_nan=False)
policies = st.one_of(
    st.just(NonFinite()), st.just(BudgetExhausted()), st.integers(1, 12).map(MaxSteps), finite.map(Threshold),
    st.tuples(st.floats(1e-6, 10.0), st.integers(2, 6)).map(lambda a: Plateau(*a)), st.integers(1, 4).map(Diverging),
    finite.map(Custom), st.integers(1, 5).map(EveryOther))
energy = st.one_of(finite, st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1.0]))


def each_in_turn(policy, history):
    for member in policy.policies:
        decision = member.check(history)
        if decision is not None:
            return decision
    return None


@settings(max_examples=300, deadline=None)
@given(members=st.lists(policies, min_size=1, max_size=6), energies=st.lists(energy, max_size=14),
       costs=st.lists(st.floats(0.0, 3.0), max_size=14), budget=st.one_of(st.none(), st.floats(0.0, 20.0)),
       flat=st.booleans())
def test_fused_check_decides_as_each_policy_in_turn(members, energies, costs, budget, flat):
    policy = AnyOf.of(*members)
    history = (FlatHistory if flat else EnergyHistory)(budget=budget)
    want = each_in_turn(policy, history)
    assert policy.check(history) == want and check_of(policy)(history) == want
    for i, e in enumerate(energies):  # the decision after every step, as a loop asks it
        history.append(e, costs[i] if i < len(costs) else 1.0)
        want = each_in_turn(policy, history)
        assert policy.check(history) == want and check_of(policy)(history) == want


def test_check_of_is_the_policy_check_for_other_policies():
    policy = MaxSteps(3)
    assert check_of(policy) == policy.check
    assert AnyOf.of(MaxSteps(3), Threshold(0.0)) == AnyOf.of(MaxSteps(3)) | Threshold(0.0)


def test_a_copied_any_of_builds_its_own_fused_check():
    policy = NonFinite() | MaxSteps(3) | Plateau(1e-3, 4) | Diverging(2) | Threshold(1.5)
    for other in (copy.copy(policy), copy.deepcopy(policy)):
        assert other == policy and hash(other) == hash(policy)
        assert check_of(other) is not check_of(policy)
        for energies in ([1.0, 1.0, 1.0], [6.0, 6.0], [2.0, 2.0, 2.0, 2.0], [1.0, 2.0, 3.0, 4.0]):
            history = EnergyHistory.of(energies)
            assert other.check(history) == policy.check(history) == each_in_turn(policy, history)


# -- the scheduler's heap -------------------------------------------------------------------


class Candidate:
    def __init__(self, name, index, energies, cost):
        self.name, self.index, self.next_cost = name, index, cost
        self.history = EnergyHistory.of(energies)


def reference_pick(scheduler, candidates):
    """What pick did before it kept a heap: min over every candidate's key, in list order."""
    name = min(scheduler._key(c) for c in candidates)[3]
    scheduler._tick += 1
    scheduler._last[name] = scheduler._tick
    return name


class ByIndex(EnergyDropScheduler):
    """Overrides priority: pick must call it rather than its inlined copy."""

    def priority(self, candidate):
        return -float(candidate.index) if candidate.history.steps % 3 else math.inf


#: Energies on a few levels and a few costs, so that priorities often tie (then the least
#: recently stepped goes first: the ticks in the heap's keys must be right).
level = st.one_of(st.integers(-2, 2).map(float), st.integers(-2, 2).map(float), st.floats(-5, 5))
cost = st.one_of(st.sampled_from([1.0, 1.0, 1.0, 0.5, 2.0, 0.0, math.inf, math.nan]), st.floats(1e-3, 5.0))
step = st.tuples(st.just("step"), level, cost)
move = st.one_of(step, step, step, step, step, step, st.tuples(st.just("halt"), st.integers(0, 20)),
                 st.just(("resume",)), st.just(("select",)))


@settings(max_examples=300, deadline=None)
@given(start=st.lists(st.lists(level, min_size=1, max_size=6), min_size=2, max_size=12),
       moves=st.lists(move, max_size=60), kind=st.sampled_from([EnergyDropScheduler, ByIndex]))
def test_pick_keeps_deciding_as_min_over_all_keys(start, moves, kind):
    """Steps (NaN and infinite costs too), halts (a new, shorter list), a resume (load_state_dict)
    and a select between picks: pick chooses as the minimum over every key would."""
    def make():
        return [Candidate(f"c{i}", i, e, 1.0) for i, e in enumerate(start)]

    a, b = kind(), kind()
    ca, cb = make(), make()
    changed = None
    for m in moves:
        if m[0] == "halt" and len(ca) > 1:
            i = m[1] % len(ca)
            ca, cb = ca[:i] + ca[i + 1:], cb[:i] + cb[i + 1:]
            changed = None
        elif m[0] == "resume":
            a.load_state_dict(a.state_dict())
        elif m[0] == "select":
            assert a.select(ca, 1) == b.select(cb, 1)
            changed = None
        elif m[0] == "step":
            got, want = a.pick(ca, changed), reference_pick(b, cb)
            assert got == want
            for cands in (ca, cb):
                chosen = next(c for c in cands if c.name == got)
                chosen.history.append(m[1], m[2])
                chosen.next_cost = m[2]
            changed = got
        assert a.state_dict() == b.state_dict()


def test_pick_breaks_a_tie_by_the_least_recently_stepped():
    """c1 goes first (a larger drop) and falls level with c0; then the two alternate, the one
    stepped longer ago first, whatever their pipeline order (the tick in the heap's keys)."""
    s = EnergyDropScheduler()
    cands = [Candidate("c0", 0, [0.0, 0.0], 1.0), Candidate("c1", 1, [1.0, 0.0], 1.0)]
    changed, seen = None, []
    for _ in range(8):
        changed = s.pick(cands, changed)
        seen.append(changed)
        next(c for c in cands if c.name == changed).history.append(0.0, 1.0)
    assert seen == ["c1", "c1", "c1", "c0", "c1", "c0", "c1", "c0"]


def test_pick_with_eight_candidates_takes_turns():
    """Identical candidates: each is picked once per eight picks (the least recently stepped)."""
    s = EnergyDropScheduler()
    cands = [Candidate(f"c{i}", i, [10.0], 1.0) for i in range(8)]
    changed, seen = None, []
    for _ in range(32):
        changed = s.pick(cands, changed)
        seen.append(changed)
        chosen = next(c for c in cands if c.name == changed)
        chosen.history.append(chosen.history.last - 1.0 / (1 + chosen.history.steps))
    assert [seen[i:i + 8] for i in range(0, 32, 8)] == [[f"c{i}" for i in range(8)]] * 4


# -- finish()'s inlined bookkeeping -----------------------------------------------------------


class HaltRaises(QuadraticDescent):
    """halt() raises after ``at`` steps: a fault of the node, found by the bookkeeping."""

    name = "halt_raises"

    def __init__(self, at=4, **config):
        super().__init__(**config)
        self.at = at

    def halt(self, history):
        if history.steps >= self.at:
            raise RuntimeError("halt() gave up")
        return None


def wide():
    """Ten nodes with different lengths, costs, halting and faults (several halt mid-run)."""
    p = Pipeline()
    for i in range(8):
        p.add_node(f"t{i}", "toy" if i % 3 else "costly", config={"dim": 4, "lr": 0.05 + 0.02 * i, "problem_seed": i},
                   halt={"max_steps": 5 + 4 * i, "plateau": {"eps": 1e-9, "window": 3}})
    p.add_node("f", "faulty", config={"dim": 4, "at": 6})
    p.add_node("v", "verdict", config={"dim": 4, "at": 9})
    p.add_node("h", HaltRaises(at=7, dim=4), halt=MaxSteps(40))
    p.add_edge("t0", "t1")
    return p


def outcome(result):
    """Everything a result says of its nodes (of a fault, its kind and detail: the traceback text
    names the frames it passed through, which differ between the fast path and a round)."""
    return {name: (n.energies, n.allocation, n.reason, n.fault and (n.fault.kind, n.fault.detail), n.atp_spent, n.steps)
            for name, n in result.nodes.items()}


@pytest.mark.parametrize("scheduler", ["energy_drop", "round_robin"])
@pytest.mark.parametrize("budget", [None, 60.0, 400.0])
def test_finish_decides_the_same_with_and_without_events(scheduler, budget):
    quiet = Orchestrator(wide(), scheduler=scheduler)
    plain = quiet.run(budget=budget, session="s")
    sink = MemorySink()
    loud = Orchestrator(wide(), scheduler=scheduler)
    loud.telemetry.attach(sink)
    watched = loud.run(budget=budget, session="s")
    stepped = Orchestrator(wide(), scheduler=scheduler)
    stepped.start(budget=budget, session="s")
    while not stepped.done:
        stepped.step()
    by_round = stepped.finish()
    assert outcome(plain) == outcome(watched) == outcome(by_round)
    assert plain.trust == watched.trust == by_round.trust
    assert [e.plugin for e in plain.events] == [e.plugin for e in watched.events] == [e.plugin for e in by_round.events]
    assert quiet.rounds == loud.rounds == stepped.rounds
    assert quiet.scheduler.state_dict() == loud.scheduler.state_dict() == stepped.scheduler.state_dict()
    if budget is None:  # every node gets to its own end
        assert plain["f"].failed and plain["h"].failed and "halt()" in plain["h"].fault.detail
        assert plain["v"].reason == "verified" and plain["t7"].reason in ("max_steps", "plateau")
    assert sum(e.__class__.__name__ == "StepEvent" for e in sink.events) == sum(n.steps for n in plain.nodes.values())


@pytest.mark.parametrize("rounds", [3, 40, 90])
def test_eight_nodes_resumed_midway_finish_as_uninterrupted(store, rounds):
    """The scheduler's heap is not saved: a resumed session ranks afresh and still picks the same."""
    reference = Orchestrator(wide(), scheduler="energy_drop")
    expected = reference.run(budget=300.0)
    first = Orchestrator(wide(), scheduler="energy_drop")
    session = first.start(budget=300.0, store=store)
    for _ in range(rounds):
        first.step()
    number = first.checkpoint(store)
    resumed = Orchestrator(wide(), scheduler="energy_drop")
    resumed.resume(store, session, number)
    result = resumed.finish()
    assert outcome(result) == outcome(expected)
    assert result.trust == expected.trust and resumed.rounds == reference.rounds
    for name in expected.nodes:
        a, b = expected[name].state, result[name].state
        assert (a is None) == (b is None) and (a is None or torch.equal(a.x, b.x))


def test_starved_nodes_wake_when_others_halt_in_the_fast_path():
    """Costly nodes run out of their share, wait, and resume on ATP handed over by halting nodes."""
    p = Pipeline()
    for i in range(4):
        p.add_node(f"c{i}", "costly", config={"dim": 4, "cost": 3.0, "problem_seed": i}, halt={"max_steps": 30})
    for i in range(4):
        p.add_node(f"t{i}", "toy", config={"dim": 4, "problem_seed": i}, halt={"max_steps": 3})
    fast = Orchestrator(p).run(budget=100.0)
    slow_orchestrator = Orchestrator(p)
    slow_orchestrator.start(budget=100.0)
    while not slow_orchestrator.done:
        slow_orchestrator.step()
    assert outcome(fast) == outcome(slow_orchestrator.finish())
    assert any(n.reason == "budget_exhausted" for n in fast.nodes.values())


def with_a_cycle():
    """Six plain nodes beside a feedback cycle: finish alternates between the fast path (while the
    cycle rests or is done) and rounds (while a streaming node runs), ranking afresh each time."""
    p = Pipeline()
    p.add_node("a", "coupled", config={"dim": 4, "lr": 0.3, "problem_seed": 1, "condition": 3},
               halt={"max_steps": 12, "plateau": {"eps": 1e-6, "window": 3}})
    p.add_node("b", "coupled", config={"dim": 4, "lr": 0.02, "problem_seed": 2, "condition": 3},
               halt={"max_steps": 25})
    p.add_edge("a", "b", to="peer", streaming=True)
    p.add_edge("b", "a", to="peer", feedback=True)
    for i in range(6):
        p.add_node(f"t{i}", "toy", config={"dim": 4, "lr": 0.03 * (i + 1), "problem_seed": i},
                   halt={"max_steps": 6 + 5 * i})
    p.add_edge("a", "t0")
    return p


@pytest.mark.parametrize("budget", [None, 90.0])
def test_a_pipeline_with_a_feedback_cycle_decides_the_same_every_way(budget):
    plain = Orchestrator(with_a_cycle()).run(budget=budget, session="s")
    loud = Orchestrator(with_a_cycle())
    loud.telemetry.attach(MemorySink())
    watched = loud.run(budget=budget, session="s")
    stepped = Orchestrator(with_a_cycle())
    stepped.start(budget=budget, session="s")
    while not stepped.done:
        stepped.step()
    by_round = stepped.finish()
    assert outcome(plain) == outcome(watched) == outcome(by_round)
    assert [e.plugin for e in plain.events] == [e.plugin for e in watched.events] == [e.plugin for e in by_round.events]
    assert plain.trust == watched.trust == by_round.trust
