"""Per-step cost of a one-node pipeline run by ``Orchestrator.run`` versus the plugin's own calls.

Bare: ``init_state`` then ``step`` + ``project`` + ``energy`` (+ ``step_cost``) in a plain loop.
Orchestrated: a one-node Pipeline of the toy plugin with the same halting as bench/overhead.py
(max steps, plateau, diverging; NaN/inf, type, budget and fault checks always on), a finite ATP
budget, the default scheduler and trust update, no telemetry sink. Both are timed in the same
process, interleaved. Prints microseconds per step and the ratio (target <= 1.3).
Usage: ``python bench/overhead_orchestrator.py [--steps N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from orchestrator import Orchestrator, Pipeline
from plugins.toy import QuadraticDescent
from sage_core import Diverging, MaxSteps, NonFinite, Plateau


def bare(plugin: QuadraticDescent, steps: int) -> float:
    t0 = time.perf_counter()
    state = plugin.init_state(None, {})
    step, project, energy = plugin.step, plugin.project, plugin.energy
    for _ in range(steps):
        state = project(step(state, None))
        energy(state)
    return (time.perf_counter() - t0) / steps


def orchestrated(plugin: QuadraticDescent, steps: int) -> float:
    policy = NonFinite() | MaxSteps(steps) | Plateau(1e-300, 5) | Diverging(1_000_000)
    pipeline = Pipeline("overhead")
    pipeline.add_node("toy", plugin, halt=policy)
    orchestrator = Orchestrator(pipeline)
    t0 = time.perf_counter()
    result = orchestrator.run(budget=float(steps))
    elapsed = time.perf_counter() - t0
    assert result["toy"].steps == steps, result["toy"].decision
    return elapsed / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    plugin = QuadraticDescent(lr=1e-3)
    orchestrated(plugin, 100)  # warm up imports and registry
    bare_us, orch_us = [], []
    for _ in range(args.repeats):
        bare_us.append(bare(plugin, args.steps) * 1e6)
        orch_us.append(orchestrated(plugin, args.steps) * 1e6)
    b, o = statistics.median(bare_us), statistics.median(orch_us)
    print(f"toy plugin, one-node pipeline, {args.steps} steps x {args.repeats} repeats (median)")
    print(f"plugin calls alone : {b:8.2f} us/step")
    print(f"Orchestrator.run   : {o:8.2f} us/step")
    print(f"overhead           : {o - b:8.2f} us/step   ratio {o / b:.3f} (target <= 1.3)")
    print(f"best of each       : {min(bare_us):8.2f} vs {min(orch_us):.2f} us/step   ratio {min(orch_us) / min(bare_us):.3f} "
          "(less sensitive to a loaded machine)")


if __name__ == "__main__":
    main()
