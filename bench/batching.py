"""Throughput of 64 concurrent sessions of a batchable torch plugin: batched versus one by one.

Both runs use :class:`orchestrator.BatchPool` with the same sessions and halting (a fixed number
of steps); the batched run makes one ``step_batch``/``energy_batch`` call per round for all
active sessions, the other one ``step``/``energy`` call per session. Target for the HRM: >= 8x.
Usage: ``python bench/batching.py [--sessions 64] [--steps 100] [--dim 32] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from orchestrator import BatchPool, Pipeline, SessionStats, run_sessions
from plugins.toy.batched import BatchedTanhRegression


def throughput(plugin: BatchedTanhRegression, sessions: int, steps: int, batched: bool) -> tuple[float, list[float]]:
    pool = BatchPool(plugin, policy={"max_steps": steps}, max_batch=sessions, batched=batched)
    for seed in range(sessions):
        pool.submit(None, {"seed": seed}, key=seed)
    t0 = time.perf_counter()
    results = pool.run()
    elapsed = time.perf_counter() - t0
    assert pool.steps == sessions * steps
    return pool.steps / elapsed, [results[k].energy for k in range(sessions)]


def pipeline_throughput(plugin: BatchedTanhRegression, sessions: int, steps: int, batched: bool) -> float:
    """The same through whole-pipeline sessions (one Orchestrator each) with run_sessions."""
    pipeline = Pipeline("batching")
    pipeline.add_node("solve", plugin, halt={"max_steps": steps})
    stats = SessionStats()
    t0 = time.perf_counter()
    run_sessions(pipeline, [{} for _ in range(sessions)], max_active=sessions, batched=batched, stats=stats)
    elapsed = time.perf_counter() - t0
    assert stats.steps == sessions * steps
    return stats.steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    plugin = BatchedTanhRegression(dim=args.dim)
    throughput(plugin, 4, 5, True)  # warm-up
    batched, single = [], []
    for _ in range(args.repeats):
        rate_b, energies_b = throughput(plugin, args.sessions, args.steps, True)
        rate_s, energies_s = throughput(plugin, args.sessions, args.steps, False)
        worst = max(abs(a - b) / max(abs(b), 1e-300) for a, b in zip(energies_b, energies_s))
        assert worst < 1e-9, f"batched and unbatched runs disagree (relative {worst:.3g})"
        batched.append(rate_b)
        single.append(rate_s)
    b, s = statistics.median(batched), statistics.median(single)
    pb = statistics.median(pipeline_throughput(plugin, args.sessions, args.steps, True) for _ in range(args.repeats))
    ps = statistics.median(pipeline_throughput(plugin, args.sessions, args.steps, False) for _ in range(args.repeats))
    print(f"toy_batch (dim {args.dim}), {args.sessions} concurrent sessions x {args.steps} steps, "
          f"{args.threads} torch thread(s), median of {args.repeats}")
    print(f"one by one : {s:10.0f} steps/s")
    print(f"batched    : {b:10.0f} steps/s")
    print(f"speed-up   : {b / s:10.2f}x   (target >= 8x for the HRM)")
    print(f"pipeline sessions (run_sessions): one by one {ps:.0f} steps/s, batched {pb:.0f} steps/s, "
          f"speed-up {pb / ps:.2f}x")


if __name__ == "__main__":
    main()
