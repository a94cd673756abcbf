"""Continuous batching: batched and unbatched steps agree; halted sessions leave, waiting ones join;
faults stay per session."""

import pytest
import torch

from orchestrator import BatchPool
from plugins.toy import QuadraticDescent
from plugins.toy.batched import BatchedTanhRegression
from sage_core import HaltDecision, MaxSteps, refine


def test_batched_and_unbatched_steps_agree():
    plugin = BatchedTanhRegression(dim=16)
    states = [plugin.init_state(None, {"seed": s}) for s in range(9)]
    batched = plugin.step_batch(states)
    for state, b in zip(states, batched):
        single = plugin.step(state)
        assert b.step == single.step == state.step + 1
        assert torch.allclose(b.x, single.x, rtol=0, atol=1e-12)
    energies = plugin.energy_batch(batched)
    assert energies == pytest.approx([plugin.energy(s) for s in batched], rel=1e-12)


def test_pool_matches_one_by_one_refinement():
    plugin = BatchedTanhRegression(dim=16)
    pool = BatchPool(plugin, policy={"max_steps": 20, "threshold": 0.05}, max_batch=8)
    for seed in range(20):
        pool.submit(None, {"seed": seed}, key=f"s{seed}")
    results = pool.run()
    assert len(results) == 20 and pool.done
    for seed in range(20):
        ref = refine(plugin, None, {"seed": seed}, policy=MaxSteps(20) | __import__("sage_core").Threshold(0.05))
        got = results[f"s{seed}"]
        assert got.decision.policy == ref.decision.policy
        assert got.steps == ref.history.steps
        assert got.energy == pytest.approx(ref.energy, rel=1e-9)


@pytest.mark.parametrize("batched", [True, False])
def test_pool_honours_halt_state(batched):
    class Verified(BatchedTanhRegression):
        def halt_state(self, state):
            return HaltDecision("verified", "done") if state.step == 3 else None

    pool = BatchPool(Verified(dim=8), policy={"max_steps": 10}, max_batch=4, batched=batched)
    for seed in range(6):
        pool.submit(None, {"seed": seed}, key=seed)
    results = pool.run()
    assert {r.decision.policy for r in results.values()} == {"verified"}
    assert {r.steps for r in results.values()} == {3}


def test_halted_sessions_leave_and_waiting_ones_join():
    plugin = BatchedTanhRegression(dim=8)
    calls = []
    original = plugin.step_batch

    def spy(states):
        calls.append(len(states))
        return original(states)

    plugin.step_batch = spy
    pool = BatchPool(plugin, policy={"max_steps": 50}, max_batch=4)
    for i, steps in enumerate([2, 3, 9, 9, 9, 4]):
        pool.submit(None, {"seed": i}, key=i, budget=steps)
    pool.step()
    assert len(pool.active) == 4 and len(pool.waiting) == 2 and calls == [4]
    results = pool.run()
    assert [results[i].steps for i in range(6)] == [2, 3, 9, 9, 9, 4]
    assert all(results[i].decision.policy == "budget_exhausted" for i in range(6))
    assert max(calls) == 4 and calls[2] == 4  # sessions 4 and 5 filled the places of 0 and 1
    assert pool.steps == 2 + 3 + 9 + 9 + 9 + 4
    singles = pool.rounds - len(calls)  # a lone session is stepped with step(), not step_batch()
    assert sum(calls) + singles == pool.steps and singles <= 2


def test_fault_in_a_batch_fails_only_its_session():
    class Fragile(BatchedTanhRegression):
        name = "fragile"

        def step(self, state, budget=None):
            if state.meta["seed"] == 2 and state.step == 3:
                raise RuntimeError("bad sample")
            return super().step(state, budget)

        def step_batch(self, states):
            if any(s.meta["seed"] == 2 and s.step == 3 for s in states):
                raise RuntimeError("bad sample in batch")
            return super().step_batch(states)

    pool = BatchPool(Fragile(dim=8), policy={"max_steps": 6}, max_batch=8)
    for seed in range(5):
        pool.submit(None, {"seed": seed}, key=seed)
    results = pool.run()
    assert results[2].decision.policy == "error" and results[2].steps == 3
    assert "bad sample" in results[2].fault.detail and results[2].state.step == 3
    assert all(results[k].steps == 6 and results[k].fault is None for k in (0, 1, 3, 4))


def test_pool_without_step_batch_and_forced_unbatched():
    pool = BatchPool(QuadraticDescent(), policy={"max_steps": 5}, max_batch=3)
    assert not pool.batched
    for i in range(7):
        pool.submit([float(i)] * 8)
    results = pool.run()
    assert sorted(results) == list(range(7)) and all(r.steps == 5 for r in results.values())
    assert not BatchPool(BatchedTanhRegression(), batched=False).batched
    with pytest.raises(ValueError, match="already in the pool"):
        pool.submit(None, key=0)


def session_pipeline():
    from orchestrator import Pipeline

    p = Pipeline()
    p.add_node("prep", "toy", config={"dim": 16}, halt={"max_steps": 4})
    p.add_node("solve", BatchedTanhRegression(dim=16), halt={"max_steps": 30, "threshold": 0.2})
    p.add_edge("prep", "solve", "identity")
    return p


def test_sessions_of_a_pipeline_are_batched_across_sessions_and_match_solo_runs():
    from orchestrator import Orchestrator, SessionStats, run_sessions

    p = session_pipeline()
    inputs = [{"prep": [0.1 * i] * 16} for i in range(12)]
    stats = SessionStats()
    results = run_sessions(p, inputs, max_active=5, budget=200, stats=stats)
    assert stats.batched_calls > 0 and stats.batched_steps > stats.batched_calls  # several sessions per call
    assert stats.steps == sum(r.atp_spent for r in results)
    for inp, got in zip(inputs, results):
        solo = Orchestrator(p).run(inp, budget=200)
        for name in ("prep", "solve"):
            assert got[name].steps == solo[name].steps and got[name].reason == solo[name].reason
            assert got[name].energies == pytest.approx(solo[name].energies, rel=1e-9)


def test_a_failing_session_does_not_disturb_its_batch():
    from orchestrator import Pipeline, run_sessions

    class Fragile(BatchedTanhRegression):
        name = "fragile_batch"

        def init_state(self, x0, ctx):
            state = super().init_state(x0, ctx)
            return state.evolve(meta={**state.meta, "bad": bool(state.x[0] == 9.0)})

        def step_batch(self, states):
            out = super().step_batch(states)
            return [s.evolve(x=s.x * float("nan")) if s.meta["bad"] and s.step == 3 else s for s in out]

    p = Pipeline()
    p.add_node("solve", Fragile(dim=8), halt={"max_steps": 6})
    inputs = [{"solve": [float(i)] * 8} for i in (1, 9, 2, 3)]
    results = run_sessions(p, inputs, max_active=4)
    assert [r["solve"].reason for r in results] == ["max_steps", "non_finite", "max_steps", "max_steps"]
    assert [r["solve"].steps for r in results] == [6, 2, 6, 6]
    assert results[1]["solve"].state.step == 2  # last good state kept
    healthy = run_sessions(p, [inputs[0]], max_active=1)[0]
    assert healthy["solve"].energies == pytest.approx(results[0]["solve"].energies, rel=1e-12)
