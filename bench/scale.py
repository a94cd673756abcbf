"""Scale: (1) 1,000 concurrent sessions of the toy plugin in one process (peak memory, steps/s);
(2) the Ray backend versus inline on a CPU-heavy plugin with 2 workers.

(1) uses :class:`orchestrator.BatchPool` (the toy plugin has no ``step_batch``, so each round
steps every active session one by one). Memory: peak RSS of the process before and after, and
the Python-heap peak of the run (tracemalloc, which does not see torch's allocator).
(2) runs a pipeline of independent CPU-heavy nodes (matrix products) inline and on Ray with
``ray.init(num_cpus=2)``; both with one torch thread per worker. Actor start-up is reported
separately from stepping. Usage: ``python bench/scale.py [--sessions 1000] [--steps 50] [--no-ray]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import tracemalloc
from typing import Any

import torch

from orchestrator import BatchPool, Orchestrator, Pipeline
from plugins.toy import QuadraticDescent
from sage_core import IRPPlugin, IRPState


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pool(sessions: int, steps: int) -> BatchPool:
    pool = BatchPool(QuadraticDescent(lr=0.05), policy={"max_steps": steps}, max_batch=sessions)
    for i in range(sessions):
        pool.submit([float(i % 7)] * 8, {"seed": i}, key=i)
    return pool


def many_sessions(sessions: int, steps: int) -> None:
    before = peak_rss_mb()
    pool = _pool(sessions, steps)
    t0 = time.perf_counter()
    results = pool.run()
    elapsed = time.perf_counter() - t0
    assert len(results) == sessions and all(r.steps == steps for r in results.values())
    rss = peak_rss_mb()
    tracemalloc.start()  # a second, traced run for the Python-heap peak (tracing slows it down)
    _pool(sessions, steps).run()
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{sessions} concurrent toy sessions x {steps} steps in one process (BatchPool)")
    print(f"  throughput       : {pool.steps / elapsed:10.0f} steps/s  ({elapsed:.2f} s)")
    print(f"  peak RSS         : {rss:10.1f} MB  (before the sessions: {before:.1f} MB)")
    print(f"  Python heap peak : {heap_peak / 2**20:10.1f} MB  ({heap_peak / sessions / 1024:.1f} KB per session)")


class Heavy(IRPPlugin):
    """CPU-bound steps: ``reps`` products of a ``size`` x ``size`` matrix."""

    name = "heavy"
    version = "1.0.0"

    def __init__(self, size: int = 192, reps: int = 6) -> None:
        self.size, self.reps = size, reps

    def init_state(self, x0: Any, ctx: Any) -> IRPState:
        g = torch.Generator().manual_seed(int(ctx.get("seed", 0)))
        return IRPState(x=torch.randn(self.size, self.size, generator=g, dtype=torch.float64) / self.size)

    def energy(self, state: IRPState) -> float:
        return float(state.x.abs().mean())

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        x = state.x
        for _ in range(self.reps):
            x = torch.tanh(x @ x.T)
        return IRPState(x=0.5 * x, step=state.step + 1)


def heavy_pipeline(nodes: int, steps: int, size: int) -> Pipeline:
    p = Pipeline("heavy")
    for i in range(nodes):
        p.add_node(f"n{i}", Heavy(size=size), seed=i, halt={"max_steps": steps})
    return p


def ray_versus_inline(nodes: int, steps: int, size: int) -> None:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    t0 = time.perf_counter()
    inline = Orchestrator(heavy_pipeline(nodes, steps, size), scheduler="round_robin").run()
    t_inline = time.perf_counter() - t0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             configure_logging=False)
    try:
        from orchestrator import RayBackend

        with Orchestrator(heavy_pipeline(nodes, steps, size), scheduler="round_robin", backend=RayBackend()) as o:
            t0 = time.perf_counter()
            o.start()
            t_start = time.perf_counter() - t0
            t0 = time.perf_counter()
            result = o.finish()
            t_ray = time.perf_counter() - t0
    finally:
        ray.shutdown()
    same = all(result[n].energies == inline[n].energies for n in inline.nodes)
    total = nodes * steps
    print(f"CPU-heavy plugin ({size}x{size} matrices), {nodes} nodes x {steps} steps, 2 workers "
          f"(ray.init(num_cpus=2)), one torch thread each, identical={same}")
    print(f"  inline           : {total / t_inline:8.1f} steps/s  ({t_inline:.2f} s)")
    print(f"  ray (stepping)   : {total / t_ray:8.1f} steps/s  ({t_ray:.2f} s)   speed-up {t_inline / t_ray:.2f}x")
    print(f"  ray actor start  : {t_start:8.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--heavy-nodes", type=int, default=4)
    parser.add_argument("--heavy-steps", type=int, default=30)
    parser.add_argument("--heavy-size", type=int, default=512,
                        help="matrix size of the CPU-heavy plugin (192: ~2 ms steps, where Ray's per-call cost shows)")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    many_sessions(args.sessions, args.steps)
    if not args.no_ray:
        ray_versus_inline(args.heavy_nodes, args.heavy_steps, args.heavy_size)


if __name__ == "__main__":
    main()
