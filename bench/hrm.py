"""HRM benchmark: eval puzzles/s at batch 1 and 64, time per segment, and 64 concurrent
sessions through the orchestrator's BatchPool batched vs one-by-one (target >= 8x).

    python bench/hrm.py [--task sudoku4] [--checkpoint NAME_OR_PATH] [--n 64] [--threads 1]
                        [--repeats 3] [--json]

Every figure is the median of ``--repeats`` runs. The pool comparison runs the batched and the
one-by-one pool alternately in each repeat (same plugin instance, same puzzles, same halting,
so the same number of segments) and reports wall-clock rates and the speed-up measured both in
wall time and in CPU time of this process (CPU time is steadier on a shared machine), and once
admitted (``pool_stepping_speedup``: each run minus the time spent in ``init_state``).
``ms_per_segment_*`` / ``puzzles_per_s_*`` time ``HRM.segment`` (the reference forward that
``sage eval`` uses); the ``*_serving`` variants time the plugin's serving forward
(:class:`plugins.hrm.inference.FastSegment`, equal within float tolerance).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from plugins.hrm.checkpoint import load_pretrained, resolve
from plugins.hrm.evaluate import EVAL_SEED, task_inputs_to_puzzles
from plugins.hrm.inference import FastSegment
from plugins.hrm.plugin import HRMReasoner
from plugins.hrm.tasks import get_task


@torch.inference_mode()
def act_solve(segment, model, x: torch.Tensor) -> tuple[int, int]:
    """Run a batch until every puzzle's ACT halts (or max segments); (segments run, n)."""
    carry = model.initial_carry(len(x))
    halted = torch.zeros(len(x), dtype=torch.bool)
    s = 0
    for s in range(1, model.cfg.max_segments + 1):
        carry, logits, qh, qc = segment(carry, x)
        halted |= model.act_halt(qh, qc)
        if bool(halted.all()):
            break
    return s, len(x)


def eval_figures(segment, model, xt: torch.Tensor, n: int, suffix: str) -> dict:
    out: dict = {}
    with torch.inference_mode():  # time per segment
        for bs in (1, 64):
            xb = xt[:bs].repeat((bs + len(xt) - 1) // len(xt), 1)[:bs]
            carry = model.initial_carry(bs)
            segment(carry, xb)
            t0 = time.perf_counter()
            reps = 20 if bs == 1 else 5
            for _ in range(reps):
                carry, *_ = segment(carry, xb)
            out[f"ms_per_segment_b{bs}{suffix}"] = (time.perf_counter() - t0) / reps * 1e3
    t0 = time.perf_counter()  # bare ACT eval, batch 1
    segs = [act_solve(segment, model, xt[i:i + 1])[0] for i in range(n)]
    out[f"puzzles_per_s_b1{suffix}"] = n / (time.perf_counter() - t0)
    out[f"mean_segments_b1{suffix}"] = float(np.mean(segs))
    t0 = time.perf_counter()  # batch 64 (a batch runs until all its puzzles halted)
    for lo in range(0, n, 64):
        act_solve(segment, model, xt[lo:lo + 64])
    out[f"puzzles_per_s_b64{suffix}"] = n / (time.perf_counter() - t0)
    return out


def pool_run(plugin, puzzles, ck: str, max_steps: int, batched: bool) -> tuple[float, float, float, int, list]:
    """(wall s, CPU s, wall s inside ``init_state``, steps, energies) of one BatchPool run of all sessions."""
    from orchestrator import BatchPool

    pool = BatchPool(plugin, max_batch=64, batched=batched, policy={"max_steps": max_steps})
    for i, p in enumerate(puzzles):
        pool.submit(p, {"seed": i, "checkpoint": ck}, key=i)
    admission = [0.0]
    init_state = plugin.init_state

    def timed_init_state(x0, ctx):  # admission work, the same in both arms
        t = time.perf_counter()
        try:
            return init_state(x0, ctx)
        finally:
            admission[0] += time.perf_counter() - t

    plugin.init_state = timed_init_state
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        results = pool.run()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        del plugin.init_state  # back to the class's method
    return wall, cpu, admission[0], pool.steps, [results[i].energy for i in range(len(puzzles))]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sudoku4")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--n", type=int, default=64, help="puzzles / concurrent sessions")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    task = get_task(a.task)
    ck = str(resolve(a.checkpoint or a.task))
    model = load_pretrained(ck)
    x, _ = task.generate(a.n, EVAL_SEED + 99, "test")
    xt = torch.as_tensor(x)
    out: dict = {"task": a.task, "checkpoint": ck, "threads": a.threads, "n": a.n, "repeats": a.repeats}
    fast = FastSegment(model)
    out["serving_forward"] = "FastSegment" if fast.supported else "HRM.segment"

    def reference(carry, inputs):
        return model.segment(carry, {"inputs": inputs})

    runs = [{**eval_figures(reference, model, xt, a.n, ""), **eval_figures(fast, model, xt, a.n, "_serving")}
            for _ in range(a.repeats)]
    for k in runs[0]:
        out[k] = statistics.median(r[k] for r in runs)

    try:
        import orchestrator  # noqa: F401
    except ImportError:  # orchestrator not installed
        orchestrator = None
    if orchestrator is not None:
        puzzles = task_inputs_to_puzzles(task, x)
        plugin = HRMReasoner(checkpoint=ck, mode="bare")
        S = model.cfg.max_segments
        pool_run(plugin, puzzles[:8], ck, S, True)  # warm-up (model load, first-call costs)
        pool_run(plugin, puzzles[:8], ck, S, False)
        rows: dict[str, list] = {k: [] for k in ("bw", "bc", "ba", "sw", "sc", "sa")}
        for _ in range(a.repeats):
            bw, bc, ba, bsteps, be = pool_run(plugin, puzzles, ck, S, True)
            sw, sc, sa, ssteps, se = pool_run(plugin, puzzles, ck, S, False)
            assert bsteps == ssteps, (bsteps, ssteps)  # same work: same segments in both
            worst = max(abs(p - q) for p, q in zip(be, se))
            assert worst < 1e-3, f"batched and one-by-one energies differ by {worst}"
            for k, v in zip(("bw", "bc", "ba", "sw", "sc", "sa"), (bw, bc, ba, sw, sc, sa)):
                rows[k].append(v)
        med = {k: statistics.median(v) for k, v in rows.items()}
        out["pool_steps"] = bsteps
        out["pool_batched_sessions_per_s"] = a.n / med["bw"]
        out["pool_one_by_one_sessions_per_s"] = a.n / med["sw"]
        out["pool_speedup"] = statistics.median(s / b for s, b in zip(rows["sw"], rows["bw"]))
        out["pool_speedup_cpu"] = statistics.median(s / b for s, b in zip(rows["sc"], rows["bc"]))
        # steps/s once sessions are admitted: the run minus its init_state calls (same work in both arms)
        out["pool_admission_ms"] = statistics.median(rows["ba"] + rows["sa"]) * 1e3
        out["pool_stepping_speedup"] = statistics.median(
            (s - sa) / (b - ba) for s, sa, b, ba in zip(rows["sw"], rows["sa"], rows["bw"], rows["ba"]))
        out["pool_batched_cpu_ms"] = med["bc"] * 1e3
        out["pool_one_by_one_cpu_ms"] = med["sc"] * 1e3
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>34}: {v:.3f}" if isinstance(v, float) else f"{k:>34}: {v}")
    return out


if __name__ == "__main__":
    main()
