"""Schedulers (default energy drop per ATP, round robin, replaceable) and trust across sessions."""

import time

import pytest
from hypothesis import given, strategies as st

from orchestrator import (
    MAX_TRUST,
    MIN_TRUST,
    EnergyDropScheduler,
    Orchestrator,
    Pipeline,
    RoundRobinScheduler,
    TrustStore,
    session_score,
    updated_trust,
)
from sage_core import EnergyHistory, get_registry, hookimpl


def pair(lr_a=0.001, lr_b=0.15, steps=30):
    p = Pipeline()
    p.add_node("a", "toy", config={"lr": lr_a}, halt={"max_steps": steps})
    p.add_node("b", "toy", config={"lr": lr_b}, halt={"max_steps": steps})
    return p


def order_of(o, rounds):
    names = []
    for _ in range(rounds):
        names += [e.plugin for e in o.step() if e.kind == "step"]
    return names


def test_round_robin_alternates():
    o = Orchestrator(pair(), scheduler="round_robin")
    o.start()
    assert order_of(o, 6) == ["a", "b"] * 3


def test_energy_drop_prefers_the_node_that_drops_fastest_per_atp():
    o = Orchestrator(pair())
    o.start()
    names = order_of(o, 20)
    assert names[:2] == ["a", "b"]  # every node is tried once first
    assert names[2:7] == ["b"] * 5  # b descends far faster per step, so it goes on
    assert "a" in names[7:]  # until its gains shrink below a's
    # the same drop at a higher ATP price loses
    s = EnergyDropScheduler(window=2)

    class C:
        def __init__(self, name, index, energies, cost):
            self.name, self.index, self.next_cost = name, index, cost
            self.history = EnergyHistory.of(energies)

    cheap, dear = C("cheap", 1, [4.0, 3.0, 2.0], 1.0), C("dear", 0, [4.0, 3.0, 2.0], 3.0)
    assert s.select([dear, cheap], 1) == ["cheap"]
    assert s.priority(cheap) == 1.0 and s.priority(dear) == pytest.approx(1 / 3)


class FirstNode:
    """A replacement scheduler: always the first candidate in pipeline order."""

    name = "first"

    def select(self, candidates, k):
        return [min(candidates, key=lambda c: c.index).name]

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def test_scheduler_is_replaceable_by_parameter_and_by_hook():
    o = Orchestrator(pair(lr_b=0.5), scheduler=FirstNode())
    o.start()
    assert set(order_of(o, 10)) == {"a"}

    class Plugin:
        @hookimpl
        def sage_register_backends(self, register):
            register(FirstNode, name="first")

    registry = get_registry()
    assert registry.add(Plugin(), name="test-first-scheduler")
    try:
        o = Orchestrator(pair(), scheduler="first")
        assert isinstance(o.scheduler, FirstNode)
    finally:
        registry.remove("test-first-scheduler")


def test_scheduler_state_round_trips():
    s = RoundRobinScheduler()
    s._position = 3
    t = RoundRobinScheduler()
    t.load_state_dict(s.state_dict())
    assert t.state_dict() == {"position": 3}
    e = EnergyDropScheduler()
    e._tick, e._last = 5, {"a": 4}
    f = EnergyDropScheduler()
    f.load_state_dict(e.state_dict())
    assert f.state_dict() == e.state_dict()


@given(trust=st.floats(MIN_TRUST, MAX_TRUST), score=st.floats(0, 1))
def test_trust_update_is_bounded(trust, score):
    new = updated_trust(trust, score)
    assert MIN_TRUST <= new <= MAX_TRUST
    assert min(trust, score) - 1e-12 <= new or new == MIN_TRUST
    assert new <= max(trust, score) + 1e-12


def test_session_score():
    assert session_score(EnergyHistory.of([4.0, 2.0, 1.0, 0.0]), failed=False) == 1.0
    assert session_score(EnergyHistory.of([4.0, 2.0, 1.0, 0.0]), failed=True) == 0.0
    assert session_score(EnergyHistory.of([1.0, 2.0, 3.0]), failed=False) == 0.0
    assert session_score(EnergyHistory.of([1.0]), failed=False) == 0.5


def test_converging_plugin_gains_trust_and_failing_plugin_loses_it():
    trust = TrustStore()
    history = []
    for session in range(8):
        p = Pipeline()
        p.add_node("good", "toy", halt={"max_steps": 30})
        p.add_node("bad", "faulty", config={"fault": "raise", "at": 2})
        result = Orchestrator(p, trust=trust).run(budget=100)
        assert result.failures.keys() == {"bad"}
        history.append((result.trust["toy"], result.trust["faulty"]))
    goods, bads = zip(*history)
    assert all(b > a for a, b in zip(goods, goods[1:])) and goods[-1] > 0.8
    assert all(b < a for a, b in zip(bads, bads[1:])) and bads[-1] < 0.15
    assert trust.record("faulty").failures == 8 and trust.record("toy").sessions == 8
    # and the next session gives the trusted plugin more ATP
    p = Pipeline()
    p.add_node("good", "toy")
    p.add_node("bad", "faulty")
    o = Orchestrator(p, trust=trust)
    o.start(budget=100)
    assert o.runs["good"].allocation > 3 * o.runs["bad"].allocation


def test_trust_store_file_round_trip(tmp_path):
    trust = TrustStore()
    trust.update("toy", EnergyHistory.of([2.0, 1.0]), failed=False)
    trust.save(tmp_path / "t.msgpack")
    loaded = TrustStore.load(tmp_path / "t.msgpack")
    assert loaded.to_dict() == trust.to_dict() and loaded.get("toy") == pytest.approx(0.8 * 0.5 + 0.2 * 0.75)
    assert TrustStore.load(tmp_path / "missing.msgpack").to_dict() == {}
    (tmp_path / "bad.msgpack").write_bytes(b"\x93\x01\x02\x03")
    with pytest.raises(ValueError, match="not a sage trust file"):
        TrustStore.load(tmp_path / "bad.msgpack")


_MERGE_CHILD = """
import os, sys, time
from orchestrator import TrustStore
from sage_core import EnergyHistory
path = sys.argv[1]
open(path + ".ready" + sys.argv[2], "w").close()
while not os.path.exists(path + ".go"):  # start together: the sessions really overlap
    time.sleep(0.001)
for i in range(25):
    trust = TrustStore.load(path)  # every session starts from the file ...
    trust.update("toy", EnergyHistory.of([2.0, 1.0]), failed=False)
    trust.update("flaky", EnergyHistory.of([2.0]), failed=True)
    trust.merge_into(path)         # ... and finishes while others are finishing too
"""


def test_concurrent_sessions_never_drop_each_others_trust_updates(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "trust.msgpack"
    procs = [subprocess.Popen([sys.executable, "-c", _MERGE_CHILD, str(path), str(i)]) for i in range(4)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"trust.msgpack.ready{i}").exists() for i in range(4)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    (tmp_path / "trust.msgpack.go").touch()
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    merged = TrustStore.load(path)
    assert merged.record("toy").sessions == 100 and merged.record("flaky").failures == 100
    assert merged.get("flaky") == pytest.approx(0.05)


def test_merge_into_applies_only_this_sessions_outcomes(tmp_path):
    path = tmp_path / "trust.msgpack"
    first, second = TrustStore.load(path), TrustStore.load(path)
    first.update("toy", EnergyHistory.of([2.0, 1.0]), failed=False)
    second.update("toy", EnergyHistory.of([2.0, 1.0]), failed=False)
    first.merge_into(path)
    second.merge_into(path)  # last writer: a plain save() would leave 1 session here
    assert TrustStore.load(path).record("toy").sessions == 2 == second.record("toy").sessions
    second.merge_into(path)  # nothing new to add
    assert TrustStore.load(path).record("toy").sessions == 2
