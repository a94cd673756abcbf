"""Checkpoint and resume: in the same process and in a new one, bit-identical to an uninterrupted run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from orchestrator import Orchestrator, OrchestratorError, Pipeline

SCRIPT = Path(__file__).with_name("resume_script.py")


def run_script(*args):
    out = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out


def test_resume_in_a_new_process_is_bit_identical(tmp_path):
    root = tmp_path / "store"
    run_script("reference", root, tmp_path / "ref")
    run_script("first", root, tmp_path / "first")
    session = (tmp_path / "first.session").read_text()
    run_script("resume", root, tmp_path / "resumed", session)
    ref = json.loads((tmp_path / "ref.json").read_text())
    got = json.loads((tmp_path / "resumed.json").read_text())
    assert got["energies"] == ref["energies"]
    assert got["alloc"] == ref["alloc"] and got["reasons"] == ref["reasons"]
    assert got["trust"] == ref["trust"] and got["spent"] == ref["spent"]
    assert got["session"] == session
    a, b = load_file(tmp_path / "ref.safetensors"), load_file(tmp_path / "resumed.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # it really was interrupted midway, with work left on both sides
    assert 60 < sum(len(e) for e in ref["energies"].values())


def chain():
    p = Pipeline()
    p.add_node("a", "global_noise", halt={"max_steps": 30})
    p.add_node("b", "toy", halt={"max_steps": 30})
    p.add_node("c", "toy", config={"lr": 0.01})
    p.add_edge("a", "b")
    return p


@pytest.mark.parametrize("rounds", [0, 1, 17, 45])
def test_checkpoint_at_any_round_resumes_identically(store, rounds):
    torch.manual_seed(7)
    reference = Orchestrator(chain(), scheduler="round_robin").run(budget=150)
    torch.manual_seed(7)
    first = Orchestrator(chain(), scheduler="round_robin")
    session = first.start(budget=150, store=store)
    for _ in range(rounds):
        first.step()
    number = first.checkpoint(store)
    torch.manual_seed(0)
    for _ in range(3):
        first.step()  # the first orchestrator moves on; the checkpoint must not
    resumed = Orchestrator(chain(), scheduler="round_robin")
    assert resumed.resume(store, session, number) == session
    result = resumed.finish()
    for name in ("a", "b", "c"):
        assert result[name].energies == reference[name].energies
        assert torch.equal(result[name].state.x, reference[name].state.x)
        assert result[name].allocation == reference[name].allocation


def test_resume_keeps_failures_and_trust(store):
    p = Pipeline()
    p.add_node("bad", "faulty", config={"fault": "raise", "at": 2})
    p.add_node("ok", "toy", config={"lr": 0.01}, halt={"max_steps": 50})
    o = Orchestrator(p)
    session = o.start(store=store)
    for _ in range(10):
        o.step()
    o.checkpoint(store)
    snapshot = store.load(session)
    assert snapshot.orchestrator["trust"] == o.trust.to_dict()
    assert snapshot.orchestrator["nodes"]["bad"]["fault"][0] == "error"
    again = Orchestrator.from_store(store, session)
    result = again.finish()
    assert result["bad"].reason == "error" and "injected" in result["bad"].fault.detail
    assert result["ok"].steps == 50
    assert [e.plugin for e in result.events] == ["bad", "ok"]


def test_resume_refuses_a_different_pipeline(store):
    o = Orchestrator(chain())
    session = o.start(store=store)
    o.checkpoint(store)
    other = Pipeline()
    other.add_node("a", "toy")
    with pytest.raises(OrchestratorError, match="has nodes"):
        Orchestrator(other).resume(store, session)
    swapped = Pipeline()
    swapped.add_node("a", "toy")
    swapped.add_node("b", "toy")
    swapped.add_node("c", "toy")
    with pytest.raises(OrchestratorError, match="node 'a' ran plugin 'global_noise'"):
        Orchestrator(swapped).resume(store, session)


def test_python_object_pipeline_cannot_be_rebuilt_from_store(store):
    from plugins.toy import QuadraticDescent

    p = Pipeline()
    p.add_node("a", QuadraticDescent(), halt={"max_steps": 3})
    o = Orchestrator(p)
    session = o.start(store=store)
    o.checkpoint(store)
    with pytest.raises(OrchestratorError, match="pipeline of Python objects"):
        Orchestrator.from_store(store, session)
    o2 = Orchestrator(p)
    o2.resume(store, session)
    assert o2.finish()["a"].steps == 3


def test_run_inputs_of_nodes_not_started_survive_a_resume(store):
    p = Pipeline()
    p.add_node("a", "toy", halt={"max_steps": 6})
    p.add_node("b", "toy", halt={"max_steps": 3})
    p.add_edge("a", "b", "energy", to="prior")  # b waits for a, but its input comes from run()
    x = torch.linspace(-1, 1, 8, dtype=torch.float64)
    reference = Orchestrator(p).run({"b": x})
    o = Orchestrator(p)
    session = o.start({"b": x}, store=store)
    o.step()
    assert o.runs["b"].status == "pending"
    o.checkpoint(store)
    resumed = Orchestrator(p)
    resumed.resume(store, session)
    result = resumed.finish()
    assert result["b"].energies == reference["b"].energies
    assert torch.equal(result["b"].state.x, reference["b"].state.x)
