"""HRM halting is read off the state (``halt_state``), so it holds on every backend: the same
puzzles halt at the same segment for the same reason inline and in Ray actors, where the
driver never sees the state."""

from __future__ import annotations

import os

import pytest

from orchestrator import Orchestrator, Pipeline
from plugins.hrm.plugin import HRMReasoner

PUZZLES = HRMReasoner.held_out_puzzles("sudoku6", 6)


def test_halt_state_reads_act_flag_and_verification() -> None:
    plugin = HRMReasoner(mode="bare")
    state = plugin.init_state(PUZZLES[0], {"task": "sudoku6", "mode": "bare"})
    assert plugin.halt_state(state) is None  # nothing decided before the first segment
    meta = {**state.meta, "best_violations": 3, "act_halted": False}
    unsure = state.evolve(step=1, meta=meta)
    halted = state.evolve(step=1, meta={**meta, "act_halted": True})
    assert plugin.energy(unsure) == plugin.energy(halted)  # the energies cannot tell them apart
    assert plugin.halt_state(unsure) is None
    assert plugin.halt_state(halted).policy == "act"
    assert plugin.halt_state(unsure.evolve(meta={**meta, "best_violations": 0})).policy == "verified"
    assert plugin.halt_state(unsure.evolve(step=meta["max_steps"])).policy == "max_segments"


def pipeline() -> Pipeline:
    p = Pipeline("hrm-halting")
    for i, puzzle in enumerate(PUZZLES):
        # A 2-segment cap that only the plugin's halt_state knows: no pipeline max_steps policy.
        p.add_node(f"p{i}", "hrm", config={"mode": "bare", "max_steps": 2, "checkpoint": "sudoku6"}, input=puzzle)
    return p


def test_ray_actors_halt_like_inline() -> None:
    ray = pytest.importorskip("ray", reason="the Ray backend needs `pip install sage-irp[ray]`")
    from orchestrator import RayBackend

    reference = Orchestrator(pipeline(), scheduler="round_robin").run()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             configure_logging=False)
    try:
        with Orchestrator(pipeline(), scheduler="round_robin", backend=RayBackend()) as o:
            result = o.run()
    finally:
        ray.shutdown()
    assert {node.reason for node in reference.nodes.values()} == {"verified", "max_segments"}
    for name, node in reference.nodes.items():
        assert node.steps <= 2
        assert (result[name].reason, result[name].steps) == (node.reason, node.steps), name
        assert result[name].energies == node.energies, name
