"""Per-step cost of the core refine loop and of ``Orchestrator.run`` on pipelines of one, two
and eight nodes versus the plugin's own calls, same run.

Bare: ``init_state`` then ``step`` + ``project`` + ``energy`` in a plain loop.
Loop: ``sage_core.refine`` with halting (finite, budget, max steps, plateau, diverging) and
trust bookkeeping on, no telemetry sink.
Orchestrated: a one-node Pipeline of the same plugin with the same halting (NaN/inf, type,
budget and fault checks always on), a finite ATP budget, the default scheduler and the trust
update, no telemetry sink.
Orchestrated, N nodes: N independent nodes of the same plugin sharing the steps (each halts
after steps / N), so the default scheduler picks the node of every step (the one-node fast
path does not apply).
The runners are interleaved so that drift affects them equally. Prints microseconds per step
and the ratios to bare (target <= 1.3 for each).
Usage: ``python bench/overhead.py [--steps N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from orchestrator import Orchestrator, Pipeline
from plugins.toy import QuadraticDescent
from sage_core import Diverging, MaxSteps, NonFinite, Plateau, refine


def policy(steps: int) -> object:
    return NonFinite() | MaxSteps(steps) | Plateau(1e-300, 5) | Diverging(1_000_000)


def bare(plugin: QuadraticDescent, steps: int) -> float:
    t0 = time.perf_counter()
    state = plugin.init_state(None, {})
    step, project, energy = plugin.step, plugin.project, plugin.energy
    for _ in range(steps):
        state = project(step(state, None))
        energy(state)
    return (time.perf_counter() - t0) / steps


def looped(plugin: QuadraticDescent, steps: int) -> float:
    t0 = time.perf_counter()
    result = refine(plugin, None, {}, policy=policy(steps), budget=float("inf"))
    elapsed = time.perf_counter() - t0
    assert result.history.steps == steps, result.decision
    return elapsed / steps


def orchestrated(plugin: QuadraticDescent, steps: int, nodes: int = 1) -> float:
    pipeline = Pipeline("overhead")
    each = steps // nodes
    for i in range(nodes):
        pipeline.add_node(f"toy{i}", plugin, halt=policy(each))
    orchestrator = Orchestrator(pipeline)
    t0 = time.perf_counter()
    result = orchestrator.run(budget=float(steps + nodes))
    elapsed = time.perf_counter() - t0
    assert all(node.steps == each for node in result.nodes.values()), result.to_dict()
    return elapsed / (each * nodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    plugin = QuadraticDescent(lr=1e-3)
    orchestrated(plugin, 100)  # warm up imports and the registry
    runners: dict[str, Callable[[QuadraticDescent, int], float]] = {
        "plugin calls alone": bare, "refine loop": looped, "Orchestrator.run": orchestrated,
        "2 nodes": lambda p, n: orchestrated(p, n, 2), "8 nodes": lambda p, n: orchestrated(p, n, 8)}
    micros: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, run in runners.items():
            micros[name].append(run(plugin, args.steps) * 1e6)
    base, best = statistics.median(micros["plugin calls alone"]), min(micros["plugin calls alone"])
    print(f"toy plugin, {args.steps} steps x {args.repeats} repeats")
    print(f"{'':20} {'median us/step':>15} {'ratio':>7} {'best us/step':>13} {'ratio':>7}")
    for name, values in micros.items():
        median, low = statistics.median(values), min(values)
        print(f"{name:20} {median:15.2f} {median / base:7.3f} {low:13.2f} {low / best:7.3f}")
    print("target: ratio <= 1.3 (best-of is less sensitive to a loaded machine)")


if __name__ == "__main__":
    main()
