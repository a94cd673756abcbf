"""HRM benchmark: eval puzzles/s at batch 1 and 64, time per segment, and sessions stepped
through the orchestrator's BatchPool (64 at a time) batched vs one by one (target >= 8x).

    python bench/hrm.py [--task sudoku4] [--checkpoint NAME_OR_PATH] [--n 64] [--threads N]
                        [--concurrent 64] [--sessions 512] [--repeats 3] [--json]

Every figure is the median of ``--repeats`` runs. Each pool comparison runs the batched and the
one-by-one pool alternately in each repeat (same plugin instance, same puzzles, same halting,
so the same number of segments) and reports steps/s and the speed-up in wall time and in CPU
time of this process. Admission (``init_state``, one ``init_state_batch`` call per round when
batched) is inside the timed run. Two workloads:

* ``pool_*``: steady state. ``--sessions`` sessions stream through ``--concurrent`` slots, so
  every round but the last steps a full batch and admits the sessions that replace the halted
  ones (continuous batching).
* ``wave_*``: exactly ``--concurrent`` sessions from cold; as sessions halt the batch shrinks,
  and the last rounds step a few sessions each.

``ms_per_segment_*`` / ``puzzles_per_s_*`` time ``HRM.segment`` (the reference forward that
``sage eval`` uses); the ``*_serving`` variants time the plugin's serving forward
(:class:`plugins.hrm.inference.FastSegment`, equal within float tolerance).
"""

from __future__ import annotations

import argparse
import gc
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


def pool_run(plugin, puzzles, ck: str, max_steps: int, concurrent: int, batched: bool) -> tuple[float, float, int, list]:
    """(wall s, CPU s, steps, energies) of one BatchPool run of all ``puzzles``, at most
    ``concurrent`` sessions at a time. Timed like ``timeit``: garbage collected before, the
    collector off during the run (a collection landing in the short batched run would
    otherwise weigh on it several times more than on the one-by-one run)."""
    from orchestrator import BatchPool

    pool = BatchPool(plugin, max_batch=concurrent, batched=batched, policy={"max_steps": max_steps})
    for i, p in enumerate(puzzles):
        pool.submit(p, {"seed": i, "checkpoint": ck}, key=i)
    gc.collect()
    gc.disable()
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        results = pool.run()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        gc.enable()
    return wall, cpu, pool.steps, [results[i].energy for i in range(len(puzzles))]


def pool_figures(plugin, puzzles, ck: str, max_steps: int, concurrent: int, repeats: int) -> dict:
    """Batched vs one-by-one steps/s of ``puzzles`` through a pool of ``concurrent`` slots,
    the two arms alternating in each repeat (same sessions, same halting, same steps)."""
    rows: dict[str, list] = {k: [] for k in ("bw", "bc", "sw", "sc")}
    for _ in range(repeats):
        bw, bc, bsteps, be = pool_run(plugin, puzzles, ck, max_steps, concurrent, True)
        sw, sc, ssteps, se = pool_run(plugin, puzzles, ck, max_steps, concurrent, False)
        assert bsteps == ssteps, (bsteps, ssteps)  # same work: same segments in both
        worst = max(abs(p - q) for p, q in zip(be, se))
        assert worst < 1e-3, f"batched and one-by-one energies differ by {worst}"
        for k, v in zip(("bw", "bc", "sw", "sc"), (bw, bc, sw, sc)):
            rows[k].append(v)
    return {
        "steps": bsteps,
        "batched_steps_per_s": bsteps / statistics.median(rows["bw"]),
        "one_by_one_steps_per_s": bsteps / statistics.median(rows["sw"]),
        "speedup": statistics.median(s / b for s, b in zip(rows["sw"], rows["bw"])),
        "speedup_cpu": statistics.median(s / b for s, b in zip(rows["sc"], rows["bc"])),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sudoku4")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--n", type=int, default=64, help="puzzles for the eval figures")
    ap.add_argument("--concurrent", type=int, default=64, help="pool slots (sessions stepped together)")
    ap.add_argument("--sessions", type=int, default=512, help="sessions streamed through the pool")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's own, one per physical core)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    task = get_task(a.task)
    ck = str(resolve(a.checkpoint or a.task))
    model = load_pretrained(ck)
    x, _ = task.generate(a.n, EVAL_SEED + 99, "test")
    xt = torch.as_tensor(x)
    out: dict = {"task": a.task, "checkpoint": ck, "threads": torch.get_num_threads(), "n": a.n, "repeats": a.repeats}
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
        plugin = HRMReasoner(checkpoint=ck, mode="bare")
        S = model.cfg.max_segments
        stream = task_inputs_to_puzzles(task, task.generate(a.sessions, EVAL_SEED + 98, "test")[0])
        pool_run(plugin, stream[:2 * a.concurrent], ck, S, a.concurrent, True)  # warm-up
        pool_run(plugin, stream[:a.concurrent], ck, S, a.concurrent, False)
        # steady state: a stream of sessions keeps all slots full (continuous batching)
        for k, v in pool_figures(plugin, stream, ck, S, a.concurrent, a.repeats).items():
            out[f"pool_{k}"] = v
        # one wave: exactly `concurrent` sessions from cold (admission, then a shrinking batch)
        for k, v in pool_figures(plugin, task_inputs_to_puzzles(task, x)[:a.concurrent], ck, S, a.concurrent,
                                 a.repeats).items():
            out[f"wave_{k}"] = v
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>34}: {v:.3f}" if isinstance(v, float) else f"{k:>34}: {v}")
    return out


if __name__ == "__main__":
    main()
