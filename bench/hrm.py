"""HRM benchmark: eval puzzles/s at batch 1 and 64, time per segment, and 64 concurrent
sessions through the orchestrator's BatchPool batched vs one-by-one (target >= 8x).

    python bench/hrm.py [--task sudoku4] [--checkpoint NAME_OR_PATH] [--n 64] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from plugins.hrm.checkpoint import load_pretrained, resolve
from plugins.hrm.evaluate import EVAL_SEED, task_inputs_to_puzzles
from plugins.hrm.plugin import HRMReasoner
from plugins.hrm.tasks import get_task


@torch.inference_mode()
def act_solve(model, x: torch.Tensor) -> tuple[int, int]:
    """Run a batch until every puzzle's ACT halts (or max segments); (segments run, n)."""
    carry = model.initial_carry(len(x))
    halted = torch.zeros(len(x), dtype=torch.bool)
    s = 0
    for s in range(1, model.cfg.max_segments + 1):
        carry, logits, qh, qc = model.segment(carry, {"inputs": x})
        halted |= qh > qc
        if bool(halted.all()):
            break
    return s, len(x)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sudoku4")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--n", type=int, default=64, help="puzzles / concurrent sessions")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    task = get_task(a.task)
    ck = str(resolve(a.checkpoint or a.task))
    model = load_pretrained(ck)
    x, _ = task.generate(a.n, EVAL_SEED + 99, "test")
    xt = torch.as_tensor(x)
    out: dict = {"task": a.task, "checkpoint": ck, "threads": a.threads, "n": a.n}

    with torch.inference_mode():  # time per segment
        for bs in (1, 64):
            xb = xt[:bs].repeat((bs + len(xt) - 1) // len(xt), 1)[:bs]
            carry = model.initial_carry(bs)
            model.segment(carry, {"inputs": xb})
            t0 = time.perf_counter()
            reps = 20 if bs == 1 else 5
            for _ in range(reps):
                carry, *_ = model.segment(carry, {"inputs": xb})
            out[f"ms_per_segment_b{bs}"] = (time.perf_counter() - t0) / reps * 1e3

    t0 = time.perf_counter()  # bare ACT eval, batch 1
    segs = [act_solve(model, xt[i:i + 1])[0] for i in range(a.n)]
    out["puzzles_per_s_b1"] = a.n / (time.perf_counter() - t0)
    out["mean_segments_b1"] = float(np.mean(segs))
    t0 = time.perf_counter()  # batch 64 (a batch runs until all its puzzles halted)
    for lo in range(0, a.n, 64):
        act_solve(model, xt[lo:lo + 64])
    out["puzzles_per_s_b64"] = a.n / (time.perf_counter() - t0)

    try:
        from orchestrator import BatchPool
    except ImportError:  # orchestrator not installed
        BatchPool = None
    if BatchPool is not None:
        puzzles = task_inputs_to_puzzles(task, x)
        for batched in (True, False):
            plugin = HRMReasoner(checkpoint=ck, mode="bare")
            pool = BatchPool(plugin, max_batch=64, batched=batched, policy={"max_steps": model.cfg.max_segments})
            for i, p in enumerate(puzzles):
                pool.submit(p, {"seed": i, "checkpoint": ck})
            t0 = time.perf_counter()
            pool.run()
            dt = time.perf_counter() - t0
            key = "batched" if batched else "one_by_one"
            out[f"pool_{key}_sessions_per_s"] = a.n / dt
            out[f"pool_{key}_steps"] = pool.steps
        out["pool_speedup"] = out["pool_batched_sessions_per_s"] / out["pool_one_by_one_sessions_per_s"]
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>34}: {v:.3f}" if isinstance(v, float) else f"{k:>34}: {v}")
    return out


if __name__ == "__main__":
    main()
