"""Latency of one ``solve_sudoku`` tool call: over MCP (in-memory client, stdio) against calling the plugin.

Each path solves the same held-out puzzles one call at a time, interleaved round by round so
that machine load hits every path alike:

- ``plugin``: ``refine(HRMReasoner(), grid, ctx)`` in process (the baseline: no tool layer);
- ``catalogue``: the tool catalogue in process (argument checks, the service's Solver thread);
- ``mcp memory``: the SDK's in-process ``Client`` (direct dispatch, the modern protocol);
- ``mcp memory json-rpc``: the same client in ``legacy`` mode (JSON-RPC over memory streams);
- ``mcp stdio``: ``sage mcp`` as a subprocess (what desktop clients launch).

Protocol overhead = a path's p50 minus the plugin's p50 (target: under 10 ms at p50).
Usage: ``python bench/tools.py [--task sudoku4] [--calls 200] [--warmup 10] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import torch
from mcp import Client, StdioServerParameters

from orchestrator.service import Service
from orchestrator.tools import Catalogue, build_server
from plugins.hrm.plugin import HRMReasoner
from sage_core import get_registry, refine

TARGET_MS = 10.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def text(grid: list[list[int]]) -> str:
    return "".join(str(c) if c else "." for row in grid for c in row)


async def measure(calls: int, warmup: int, puzzles: list[Any], catalogue: Catalogue, home: str,
                  threads: int) -> dict[str, list]:
    plugin = HRMReasoner()
    times: dict[str, list[float]] = {k: [] for k in ("plugin", "catalogue", "mcp memory", "mcp memory json-rpc",
                                                      "mcp stdio")}
    stdio = StdioServerParameters(command=str(Path(sys.executable).with_name("sage")),
                                  args=["mcp", "--threads", str(threads)], env={**os.environ, "SAGE_HOME": home})
    server = build_server(catalogue)
    async with Client(server) as memory, Client(server, mode="legacy") as jsonrpc, Client(stdio) as piped:
        async def via(client: Any, grid: Any) -> None:
            result = await client.call_tool("solve_sudoku", {"puzzle": text(grid)})
            assert not result.is_error and result.structured_content["verified"], result.content[0].text

        paths = {
            "plugin": lambda g: anyio.to_thread.run_sync(lambda: refine(plugin, g, {"mode": "irp"})),
            "catalogue": lambda g: anyio.to_thread.run_sync(catalogue.call, "solve_sudoku", {"puzzle": text(g)}),
            "mcp memory": lambda g: via(memory, g), "mcp memory json-rpc": lambda g: via(jsonrpc, g),
            "mcp stdio": lambda g: via(piped, g),
        }
        for i in range(warmup + calls):
            grid = puzzles[i % len(puzzles)]
            for name, path in paths.items():
                t0 = time.perf_counter()
                await path(grid)
                if i >= warmup:
                    times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sudoku4", choices=["sudoku4", "sudoku6"])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, here and in the stdio server")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    puzzles = HRMReasoner.held_out_puzzles(args.task, 50)
    with tempfile.TemporaryDirectory() as home:
        registry = get_registry()
        catalogue = Catalogue(registry, service=Service(Path(home) / "sessions", registry=registry))
        try:
            times = anyio.run(measure, args.calls, args.warmup, puzzles, catalogue, home, args.threads)
        finally:
            catalogue.close()
    base = statistics.median(times["plugin"])
    load = os.getloadavg()[0]
    print(f"solve_sudoku latency, {args.task}, {args.calls} calls per path (interleaved), {args.threads} torch "
          f"thread(s), {os.cpu_count()} CPUs, load average {load:.1f}; ms")
    print(f"{'path':<22}{'p50':>9}{'p99':>9}{'overhead p50':>15}")
    for name, values in times.items():
        p50 = statistics.median(values)
        extra = "" if name == "plugin" else f"{p50 - base:+15.2f}"
        print(f"{name:<22}{p50:9.2f}{percentile(values, 99):9.2f}{extra}")
    worst = max(statistics.median(v) - base for k, v in times.items() if k.startswith("mcp"))
    verdict = "met" if worst < TARGET_MS else "MISSED"
    print(f"largest MCP protocol overhead at p50: {worst:.2f} ms (target < {TARGET_MS:g} ms): {verdict}")


if __name__ == "__main__":
    main()
