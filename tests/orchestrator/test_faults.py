"""Fault isolation: a failing node halts with a reason, keeps its last good state, and the rest
of the pipeline finishes exactly as it would have without it."""

import time

import pytest
import torch
from hypothesis import given, settings, strategies as st

from orchestrator import Orchestrator, Pipeline
from sage_core import refine, MaxSteps

EXPECTED = {"raise": "error", "nan": "non_finite", "inf": "non_finite", "bad_type": "bad_type",
            "bad_energy_type": "bad_type", "timeout": "timeout"}


def build(fault=None, at=3, scheduler="energy_drop", timeout=None, sleep=0.5):
    p = Pipeline()
    p.add_node("h1", "toy", config={"lr": 0.05}, halt={"max_steps": 25})
    if fault is not None:
        p.add_node("bad", "faulty", config={"fault": fault, "at": at, "sleep": sleep}, halt={"max_steps": 40},
                   timeout=timeout)
        p.add_node("down", "toy", halt={"max_steps": 5})
        p.add_edge("bad", "down")
    p.add_node("h2", "toy", config={"lr": 0.1, "noise": 1e-3, "problem_seed": 2}, seed=5,
               halt={"max_steps": 30, "threshold": 1e-9})
    p.add_node("after", "toy", halt={"max_steps": 7})
    p.add_edge("h1", "after")
    return p


_REFERENCE = {}


def reference(scheduler):
    if scheduler not in _REFERENCE:
        _REFERENCE[scheduler] = Orchestrator(build(), scheduler=scheduler).run()
    return _REFERENCE[scheduler]


def check_isolated(result, fault, at, scheduler):
    bad = result["bad"]
    assert bad.failed and bad.reason == EXPECTED[fault], bad.fault
    assert bad.state.step == at - 1  # last good state kept
    assert bad.steps == at - 1 and len(bad.energies) == at
    assert result["down"].reason == "upstream_failed" and result["down"].state is None
    assert set(result.failures) == {"bad", "down"}
    ref = reference(scheduler)
    for name in ("h1", "h2", "after"):
        assert result[name].energies == ref[name].energies, name
        assert torch.equal(result[name].state.x, ref[name].state.x), name
        assert result[name].reason == ref[name].reason


@settings(max_examples=30, deadline=None)
@given(fault=st.sampled_from(["raise", "nan", "inf", "bad_type", "bad_energy_type"]), at=st.integers(1, 30),
       scheduler=st.sampled_from(["energy_drop", "round_robin"]), burst=st.booleans())
def test_fault_at_random_step_is_isolated(fault, at, scheduler, burst):
    o = Orchestrator(build(fault, at), scheduler=scheduler)
    o.start()
    if burst:
        result = o.finish()
    else:
        while not o.done:
            o.step()
        result = o.finish()
    check_isolated(result, fault, at, scheduler)
    assert str(result["bad"].fault).startswith(EXPECTED[fault])


def test_raised_error_carries_its_traceback_and_message():
    result = Orchestrator(build("raise", 2)).run()
    fault = result["bad"].fault
    assert "injected failure at step 2" in fault.detail and "RuntimeError" in fault.detail
    assert "Traceback" in fault.traceback and "fakes.py" in fault.traceback


@pytest.mark.parametrize("at", [1, 4])
def test_step_timeout_halts_the_node_and_the_rest_continue(at):
    t0 = time.perf_counter()
    result = Orchestrator(build("timeout", at, timeout=0.1, sleep=1.0)).run()
    check_isolated(result, "timeout", at, "energy_drop")
    assert time.perf_counter() - t0 < 0.9  # the hung step was abandoned, not waited for


def test_failure_in_init_and_in_halt_are_isolated():
    from plugins.toy import QuadraticDescent

    class BadInit(QuadraticDescent):
        name = "bad_init"

        def init_state(self, x0, ctx):
            raise ValueError("no input")

    class BadHalt(QuadraticDescent):
        name = "bad_halt"

        def halt(self, history):
            if history.steps == 2:
                raise KeyError("oops")
            return None

    p = Pipeline()
    p.add_node("i", BadInit())
    p.add_node("h", BadHalt(), halt={"max_steps": 10})
    p.add_node("ok", "toy", halt={"max_steps": 10})
    result = Orchestrator(p).run()
    assert result["i"].reason == "error" and "init_state() raised ValueError: no input" in result["i"].fault.detail
    assert result["i"].state is None
    assert result["h"].reason == "error" and result["h"].steps == 2 and "halt()" in result["h"].fault.detail
    assert result["ok"].steps == 10 and not result["ok"].failed
    ref = refine(p.node("ok").plugin, None, {"seed": 0}, policy=MaxSteps(10))
    assert torch.equal(ref.state.x, result["ok"].state.x)


@pytest.mark.parametrize("burst", [True, False])
def test_halt_state_decides_and_a_bad_verdict_is_a_fault(burst):
    results = {}
    for name, config in (("v", {"at": 4}), ("bad", {"at": 3, "bad": True})):
        p = Pipeline()
        p.add_node(name, "verdict", config=config, halt={"max_steps": 10})
        o = Orchestrator(p)
        o.start()
        while not burst and not o.done:
            o.step()  # one step per round: the general path; finish() bursts a lone inline node
        results[name] = o.finish()[name]
    assert results["v"].reason == "verified" and results["v"].steps == 4
    assert results["bad"].reason == "bad_type" and "halt_state() returned str" in results["bad"].fault.detail
    assert results["bad"].state.step == 2  # the step whose verdict was malformed is not kept


def test_failed_node_frees_its_atp_for_the_others():
    p = Pipeline()
    p.add_node("bad", "faulty", config={"fault": "nan", "at": 2})
    p.add_node("ok", "toy", config={"lr": 0.001}, halt={"max_steps": 1000})
    result = Orchestrator(p, floor_fraction=0.0).run(budget=100)
    assert result["bad"].atp_spent == 1 and result["ok"].atp_spent == 99
