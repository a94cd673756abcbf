"""Load test of ``sage serve`` on loopback with ``hey`` (Debian package ``hey``).

Two servers run side by side, batching on and off (``--no-batching``: one model call per request,
the baseline), and each load cell is measured on both back to back (the machine's other load
drifts less between the two); ``POST /v1/solve`` with a held-out 4x4 and 6x6 Sudoku is driven at
concurrency 1, 16 and 64 for ``--seconds`` each: requests/s, p50/p95/p99 latency, errors. Then
a ``--soak``-second run at concurrency 64 (4x4, batching on) must have zero errors, and pipeline
runs measure the time to the first SSE event and SSE events/s. The CPU time of the load
generator and of the server is reported as a share of the machine's cores.

Targets (issue 17): at concurrency 64, batching >= 5x the requests/s of one model call per
request, p99 <= 250 ms for 4x4; zero errors over 60 s at concurrency 64.
Usage: ``python bench/serve.py [--seconds 10] [--soak 60] [--runs 20]``; traffic goes to
127.0.0.1 only, bounded by the durations above.
"""

from __future__ import annotations

import argparse
import collections
import csv
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from plugins.hrm.plugin import HRMReasoner

CONCURRENCY = (1, 16, 64)
SIZES = ("sudoku4", "sudoku6")
RUN_TOML = """
[pipeline]
name = "bench"
[nodes.a]
plugin = "toy"
config = { dim = 8, lr = 0.05, noise = 1e-4 }
halt = { max_steps = 200 }
"""


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU seconds of process ``pid`` (or of its thread ``thread``) so far (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """``sage serve`` in a subprocess on a free loopback port."""

    def __init__(self, batching: bool, store: str, threads: int | None = None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        sage = Path(sys.executable).with_name("sage")
        args = [str(sage), "serve", "--port", str(self.port), "--store", store, "--max-queue", "1024"]
        if threads is not None:
            args += ["--threads", str(threads)]
        self.proc = subprocess.Popen(args + ([] if batching else ["--no-batching"]),
                                     env={**os.environ, "SAGE_API_TOKEN": ""},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.url + "/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def hey(url: str, body: str, concurrency: int, seconds: float) -> dict[str, float]:
    """One ``hey`` run; its figures and the client's CPU seconds."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(body)
    before = os.times()
    t0 = time.perf_counter()
    out = subprocess.run(["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-T", "application/json",
                          "-D", f.name, "-t", "60", "-o", "csv", url + "/v1/solve"],
                         capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - t0
    after = os.times()
    os.unlink(f.name)
    rows = list(csv.DictReader(io.StringIO(out)))
    ok = sorted(float(r["response-time"]) for r in rows if r["status-code"] == "200")
    codes = collections.Counter(r["status-code"] for r in rows if r["status-code"] != "200")  # "0": no response
    q = statistics.quantiles(ok, n=100) if len(ok) >= 2 else [float("nan")] * 99
    return {"requests": len(rows), "errors": len(rows) - len(ok), "codes": dict(codes), "rps": len(ok) / seconds,
            "p50": q[49] * 1e3,
            "p95": q[94] * 1e3, "p99": q[98] * 1e3, "client_cpu": (after.children_user + after.children_system)
            - (before.children_user + before.children_system), "wall": wall}


def measure(server: Server, body: str, concurrency: int, seconds: float, cores: int) -> dict[str, float]:
    """One load cell against ``server``, with the client's and the server's CPU share, and the
    server's CPU milliseconds per answered request: in all and in its event loop (the main
    thread; the rest is the solver's thread, torch's threads and the thread pool). CPU per
    request depends less on the machine's other load than requests/s do."""
    pid = server.proc.pid
    s0, loop0 = cpu_seconds(pid), cpu_seconds(pid, pid)
    r = hey(server.url, body, concurrency, seconds)
    cpu, loop = cpu_seconds(pid) - s0, cpu_seconds(pid, pid) - loop0
    answered = max(r["rps"] * seconds, 1)
    r["client_share"] = r["client_cpu"] / (r["wall"] * cores)
    r["server_share"] = cpu / (r["wall"] * cores)
    r["cpu_ms"], r["loop_ms"] = cpu / answered * 1e3, loop / answered * 1e3
    return r


def row(label: str, r: dict[str, float]) -> str:
    return (f"    {label:<4} {r['rps']:7.1f} req/s  p50 {r['p50']:7.1f}  p95 {r['p95']:7.1f}  p99 {r['p99']:7.1f} ms  "
            f"errors {r['errors']}/{r['requests']} {r['codes'] or ''}  CPU client {r['client_share']:.0%} "
            f"server {r['server_share']:.0%}, {r['cpu_ms']:.2f} ms/request (event loop {r['loop_ms']:.2f})")


def sse_figures(url: str, runs: int) -> dict[str, float]:
    """Time from POST /v1/runs to the first SSE event, and events/s over each run's stream."""
    first, rates, events = [], [], 0
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(runs):
            t0 = time.perf_counter()
            run = client.post("/v1/runs", json={"toml": RUN_TOML}).json()
            n, t_first = 0, None
            with client.stream("GET", run["events"]) as stream:
                for line in stream.iter_lines():
                    if line.startswith("data: "):
                        n += 1
                        if t_first is None:
                            t_first = time.perf_counter()
            t_end = time.perf_counter()
            first.append((t_first - t0) * 1e3)
            rates.append(n / (t_end - t0))
            events += n
    return {"first_ms_p50": statistics.median(first), "first_ms_max": max(first),
            "events_per_s": statistics.median(rates), "events": events}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="duration of each load cell")
    parser.add_argument("--soak", type=float, default=60, help="duration of the zero-error run at concurrency 64")
    parser.add_argument("--runs", type=int, default=20, help="pipeline runs for the SSE figures")
    parser.add_argument("--threads", type=int, default=None, help="the server's torch threads (default: torch's)")
    args = parser.parse_args()
    if shutil.which("hey") is None:
        raise SystemExit("bench/serve.py needs the load generator hey: apt-get install hey")
    cores = os.cpu_count() or 1
    bodies = {size: json.dumps({"puzzle": HRMReasoner.held_out_puzzles(size, 1)[0], "mode": "irp"}) for size in SIZES}
    print(f"sage serve load test on 127.0.0.1, {cores} cores, hey, {args.seconds:g} s per cell; "
          f"load average before: {os.getloadavg()[0]:.1f}")
    table: dict[tuple[bool, str, int], dict] = {}
    with tempfile.TemporaryDirectory() as store:
        servers = {True: Server(True, store, args.threads), False: Server(False, store, args.threads)}
        try:
            for size, body in bodies.items():
                for server in servers.values():  # model load and warm-up
                    warm = httpx.post(server.url + "/v1/solve", content=body, timeout=60).json()
                print(f"{size} (the puzzle takes {warm['segments']} segment(s), verified {warm['verified']}); "
                      f"'on' = batching, 'off' = one model call per request, measured back to back:")
                for c in CONCURRENCY:
                    print(f"  concurrency {c}:")
                    for batching, server in servers.items():
                        table[batching, size, c] = r = measure(server, body, c, args.seconds, cores)
                        print(row("on" if batching else "off", r), flush=True)
            url = servers[True].url
            sse = sse_figures(url, args.runs)
            print(f"SSE: first event {sse['first_ms_p50']:.1f} ms median ({sse['first_ms_max']:.1f} max) after "
                  f"POST /v1/runs; {sse['events_per_s']:.0f} events/s per stream ({sse['events']} events, {args.runs} runs)")
            if args.soak:
                soak = hey(url, bodies["sudoku4"], 64, args.soak)
                codes = f" {soak['codes']}" if soak["codes"] else ""
                print(f"soak {args.soak:g} s at c=64 (4x4, batching): {soak['requests']} requests, {soak['errors']} "
                      f"errors{codes}, {soak['rps']:.1f} req/s, p99 {soak['p99']:.1f} ms", flush=True)
        finally:
            for server in servers.values():
                server.close()
    print("targets at concurrency 64:")
    for size in SIZES:
        on, off = table[True, size, 64], table[False, size, 64]
        speedup = on["rps"] / off["rps"] if off["rps"] else float("inf")
        print(f"  {size}: batching {on['rps']:.1f} req/s vs {off['rps']:.1f} one call per request = {speedup:.1f}x "
              f"(target >= 5x: {'met' if speedup >= 5 else 'MISSED'}); p99 {on['p99']:.1f} ms"
              + (f" (target <= 250 ms: {'met' if on['p99'] <= 250 else 'MISSED'})" if size == "sudoku4" else "")
              + f"; server CPU per request {on['cpu_ms']:.2f} vs {off['cpu_ms']:.2f} ms "
              f"({off['cpu_ms'] / on['cpu_ms'] if on['cpu_ms'] else float('inf'):.1f}x less with batching)")
    print(f"load average after: {os.getloadavg()[0]:.1f} (other processes share the cores; the server's CPU "
          "share above shows how much it got)")
    if args.soak:
        print(f"  soak: {soak['errors']} errors in {args.soak:g} s (target 0: {'met' if soak['errors'] == 0 else 'MISSED'})")


if __name__ == "__main__":
    main()
