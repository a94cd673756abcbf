"""BatchPool's batched admission (``init_state_batch``) and batched projection (``project_batch``):
one call per round, the same results as one call per session, and a bad input or a wrong-length
answer isolated to the session it belongs to."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import BatchPool
from plugins.toy.batched import BatchedTanhRegression


class Counting(BatchedTanhRegression):
    """The toy with batch admission and projection (clipping x to [-2, 2]); counts the calls."""

    name = "toy_counting"

    def __init__(self, *, short: bool = False, **kw) -> None:
        super().__init__(**kw)
        self.short = short  # batch methods drop the last state (a broken plugin)
        self.calls = {"init_state_batch": [], "init_state": 0, "project_batch": [], "project": 0}

    def init_state(self, x0, ctx):
        self.calls["init_state"] += 1
        if ctx.get("bad"):
            raise ValueError(f"bad input {ctx['seed']}")
        return super().init_state(x0, ctx)

    def init_state_batch(self, x0s, ctxs):
        self.calls["init_state_batch"].append(len(x0s))
        out = [BatchedTanhRegression.init_state(self, x0, ctx) for x0, ctx in zip(x0s, ctxs)]
        if any(ctx.get("bad") for ctx in ctxs):
            raise ValueError("a bad input in the batch")
        return out[:-1] if self.short else out

    def project(self, state):
        self.calls["project"] += 1
        return state.evolve(x=state.x.clamp(-2.0, 2.0))

    def project_batch(self, states):
        self.calls["project_batch"].append(len(states))
        out = [state.evolve(x=state.x.clamp(-2.0, 2.0)) for state in states]
        return out[:-1] if self.short else out


def run_pool(plugin, ctxs, batched, max_batch=4, steps=5):
    pool = BatchPool(plugin, policy={"max_steps": steps}, max_batch=max_batch, batched=batched)
    for i, ctx in enumerate(ctxs):
        pool.submit(None, ctx, key=i)
    return pool, pool.run()


def test_admission_and_projection_are_one_call_per_round_and_match_one_by_one():
    ctxs = [{"seed": s} for s in range(10)]
    batched = Counting(dim=8)
    pool, got = run_pool(batched, ctxs, True)
    single = Counting(dim=8)
    _, ref = run_pool(single, ctxs, False)
    assert batched.calls["init_state"] == 0 and batched.calls["project"] == 0
    assert batched.calls["init_state_batch"] == [4, 4, 2]  # 4 slots; all halt after 5 steps together
    assert sum(batched.calls["project_batch"]) == pool.steps == 50
    assert single.calls["init_state_batch"] == [] and single.calls["project_batch"] == []
    assert single.calls["init_state"] == 10 and single.calls["project"] == 50
    for i in range(10):
        assert got[i].steps == ref[i].steps == 5
        assert torch.allclose(got[i].state.x, ref[i].state.x, rtol=0, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 12), bad=st.sets(st.integers(0, 11)), max_batch=st.integers(2, 6))
def test_a_bad_input_fails_alone(n, bad, max_batch):
    bad = {b for b in bad if b < n}
    ctxs = [{"seed": s, "bad": s in bad} for s in range(n)]
    plugin = Counting(dim=4)
    _, results = run_pool(plugin, ctxs, True, max_batch=max_batch, steps=3)
    assert len(results) == n
    for i, r in results.items():
        if i in bad:
            assert r.fault is not None and r.fault.kind == "error"
            assert f"bad input {i}" in r.fault.detail and "init_state()" in r.fault.detail
            assert r.state is None and r.steps == 0
        else:
            assert r.fault is None and r.decision.policy == "max_steps" and r.steps == 3


def test_batch_methods_returning_too_few_states_fall_back_to_one_call_each():
    ctxs = [{"seed": s} for s in range(6)]
    plugin = Counting(dim=8, short=True)
    _, got = run_pool(plugin, ctxs, True, max_batch=3)
    _, ref = run_pool(Counting(dim=8), ctxs, False, max_batch=3)
    assert plugin.calls["init_state"] == 6  # every admission redone one by one
    assert plugin.calls["project"] > 0
    for i in range(6):
        assert got[i].fault is None and got[i].steps == ref[i].steps
        assert torch.allclose(got[i].state.x, ref[i].state.x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("batched", [False, None])
def test_admission_batching_follows_the_batched_flag(batched):
    plugin = Counting(dim=4)
    run_pool(plugin, [{"seed": s} for s in range(6)], batched, max_batch=6, steps=2)
    if batched is False:
        assert plugin.calls["init_state_batch"] == [] and plugin.calls["init_state"] == 6
    else:
        assert plugin.calls["init_state_batch"] == [6] and plugin.calls["init_state"] == 0
