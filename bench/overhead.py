"""Per-step cost of the core refine loop versus the plugin's own calls, same run.

Bare: ``init_state`` then ``step`` + ``project`` + ``energy`` in a plain loop.
Loop: ``sage_core.refine`` with halting (finite, budget, max steps, plateau, diverging) and
trust bookkeeping on, no telemetry sink. Prints microseconds per step and the ratio
(target <= 1.3). Usage: ``python bench/overhead.py [--steps N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from plugins.toy import QuadraticDescent
from sage_core import Diverging, MaxSteps, NonFinite, Plateau, refine


def bare(plugin: QuadraticDescent, steps: int) -> float:
    t0 = time.perf_counter()
    state = plugin.init_state(None, {})
    step, project, energy = plugin.step, plugin.project, plugin.energy
    for _ in range(steps):
        state = project(step(state, None))
        energy(state)
    return (time.perf_counter() - t0) / steps


def looped(plugin: QuadraticDescent, steps: int) -> float:
    policy = NonFinite() | MaxSteps(steps) | Plateau(1e-300, 5) | Diverging(1_000_000)
    t0 = time.perf_counter()
    result = refine(plugin, None, {}, policy=policy, budget=float("inf"))
    elapsed = time.perf_counter() - t0
    assert result.history.steps == steps, result.decision
    return elapsed / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    plugin = QuadraticDescent(lr=1e-3)
    bare_us, loop_us = [], []
    for _ in range(args.repeats):  # interleaved so drift affects both equally
        bare_us.append(bare(plugin, args.steps) * 1e6)
        loop_us.append(looped(plugin, args.steps) * 1e6)
    b, l = statistics.median(bare_us), statistics.median(loop_us)
    print(f"toy plugin, {args.steps} steps x {args.repeats} repeats (median)")
    print(f"plugin calls alone : {b:8.2f} us/step")
    print(f"refine loop        : {l:8.2f} us/step")
    print(f"overhead           : {l - b:8.2f} us/step   ratio {l / b:.3f} (target <= 1.3)")
    best_b, best_l = min(bare_us), min(loop_us)
    print(f"best of each       : {best_b:8.2f} vs {best_l:.2f} us/step   ratio {best_l / best_b:.3f} "
          "(less sensitive to a loaded machine)")


if __name__ == "__main__":
    main()
