"""Backends: threads and Ray give the same results as inline for deterministic plugins; Ray
faults and timeouts are isolated. Ray runs a real local cluster (2 CPUs, loopback) once per
test module."""

import time

import pytest
import torch

from orchestrator import Orchestrator, Pipeline, ThreadBackend


def pipeline(timeout=None):
    p = Pipeline("backends")
    p.add_node("a", "toy", config={"lr": 0.05}, halt={"max_steps": 15})
    p.add_node("b", "toy", config={"noise": 1e-3, "problem_seed": 4}, seed=9, halt={"max_steps": 12})
    p.add_node("c", "toy", halt={"max_steps": 6, "threshold": 1e-12})
    p.add_node("bad", "faulty", config={"fault": "raise", "at": 4}, halt={"max_steps": 10})
    p.add_node("ver", "verdict", config={"at": 5}, halt={"max_steps": 10})
    p.add_edge("a", "c")
    return p


def same(result, reference):
    assert set(result.nodes) == set(reference.nodes)
    for name, node in reference.nodes.items():
        got = result[name]
        assert got.energies == node.energies, name
        assert got.reason == node.reason and got.allocation == node.allocation
        assert (got.state is None and node.state is None) or torch.equal(got.state.x, node.state.x)


@pytest.fixture(scope="module")
def reference():
    result = Orchestrator(pipeline(), scheduler="round_robin").run(budget=80)
    assert result["ver"].reason == "verified" and result["ver"].steps == 5  # halt_state decided
    return result


def test_threads_match_inline(reference):
    with Orchestrator(pipeline(), scheduler="round_robin", backend=ThreadBackend(workers=2)) as o:
        result = o.run(budget=80)
    same(result, reference)
    assert result["bad"].reason == "error"


def test_threads_timeout_is_preemptive():
    p = Pipeline()
    p.add_node("hang", "faulty", config={"fault": "timeout", "at": 2, "sleep": 1.5}, timeout=0.2)
    p.add_node("ok", "toy", halt={"max_steps": 20})
    t0 = time.perf_counter()
    with Orchestrator(p, backend="threads") as o:
        result = o.run()
    assert time.perf_counter() - t0 < 1.2
    assert result["hang"].reason == "timeout" and result["hang"].state.step == 1
    assert result["ok"].steps == 20


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the Ray backend needs `pip install sage-irp[ray]`")
    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_matches_inline(ray_cluster, reference):
    from orchestrator import RayBackend

    with Orchestrator(pipeline(), scheduler="round_robin", backend=RayBackend()) as o:
        assert o.backend.parallel == 2
        result = o.run(budget=80)
    same(result, reference)
    assert "injected failure at step 4" in result["bad"].fault.detail


def test_ray_timeout_keeps_last_good_state(ray_cluster, store):
    from orchestrator import RayBackend

    p = Pipeline()
    p.add_node("hang", "faulty", config={"fault": "timeout", "at": 3, "sleep": 30.0}, timeout=0.5)
    p.add_node("ok", "toy", halt={"max_steps": 10})
    with Orchestrator(p, backend=RayBackend()) as o:
        session = o.start(store=store)  # actors start here
        t0 = time.perf_counter()
        result = o.finish()
        elapsed = time.perf_counter() - t0
        o.checkpoint(store)  # the killed node's last good state is still saved
    assert elapsed < 10  # the 30 s step was cut off
    assert result["hang"].reason == "timeout" and result["hang"].state.step == 2
    assert result["ok"].steps == 10 and not result["ok"].failed
    assert store.load(session).nodes["hang"].meta["step"] == 2
