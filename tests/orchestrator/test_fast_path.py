"""The multi-node fast path of finish() (scheduler pick + inlined steps) makes the same choices and
results as stepping round by round."""

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import EnergyDropScheduler, Orchestrator, Pipeline
from sage_core import EnergyHistory

node_specs = st.lists(st.tuples(st.floats(0.01, 0.3), st.integers(1, 40), st.sampled_from(["toy", "costly"]),
                                st.integers(0, 3)), min_size=2, max_size=6)


def build(specs, edge):
    p = Pipeline()
    for i, (lr, steps, plugin, seed) in enumerate(specs):
        p.add_node(f"n{i}", plugin, config={"dim": 4, "lr": lr, "problem_seed": seed},
                   halt={"max_steps": steps, "plateau": {"eps": 1e-7, "window": 3}})
    if edge:
        p.add_edge("n0", "n1")
    return p


@settings(max_examples=30, deadline=None)
@given(specs=node_specs, budget=st.one_of(st.none(), st.floats(5, 200)), edge=st.booleans(),
       scheduler=st.sampled_from(["energy_drop", "round_robin"]))
def test_finish_equals_stepping_round_by_round(specs, budget, edge, scheduler):
    fast = Orchestrator(build(specs, edge), scheduler=scheduler).run(budget=budget)
    slow_orchestrator = Orchestrator(build(specs, edge), scheduler=scheduler)
    slow_orchestrator.start(budget=budget)
    while not slow_orchestrator.done:
        slow_orchestrator.step()
    slow = slow_orchestrator.finish()
    for name in fast.nodes:
        assert fast[name].energies == slow[name].energies
        assert fast[name].allocation == slow[name].allocation and fast[name].reason == slow[name].reason
    assert [e.plugin for e in fast.events] == [e.plugin for e in slow.events]


class Candidate:
    def __init__(self, name, index, energies, cost):
        self.name, self.index, self.next_cost = name, index, cost
        self.history = EnergyHistory.of(energies)


@settings(max_examples=60, deadline=None)
@given(start=st.lists(st.lists(st.floats(-5, 5), min_size=1, max_size=6), min_size=2, max_size=8),
       moves=st.lists(st.tuples(st.floats(-5, 5), st.sampled_from([0.5, 1.0, 2.0])), max_size=30))
def test_pick_equals_select_as_candidates_step(start, moves):
    """pick(candidates, the one just stepped) chooses what select(candidates, 1) would."""
    def make():
        return [Candidate(f"c{i}", i, e, 1.0) for i, e in enumerate(start)]

    a, b = EnergyDropScheduler(), EnergyDropScheduler()
    ca, cb = make(), make()
    changed = None
    for energy, cost in moves:
        got, want = a.pick(ca, changed), b.select(cb, 1)[0]
        assert got == want
        for cands in (ca, cb):
            chosen = next(c for c in cands if c.name == got)
            chosen.history.append(energy, cost)
            chosen.next_cost = cost
        changed = got
    assert a.state_dict() == b.state_dict()
