"""Evaluation of the bare model (ACT halting and always-max) on held-out puzzles."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from .model import HRM
from .tasks import Task, get_task

#: Seed of the default held-out evaluation set (training data uses the train split, whose
#: puzzles are disjoint from every test-split puzzle by construction).
EVAL_SEED = 9001


@torch.inference_mode()
def run_bare(model: HRM, inputs: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Run every puzzle for ``max_segments`` segments; record the ACT-halt and the final answers.

    Returns ``pred_act`` (answer at the first segment with q_halt > q_continue, else the last),
    ``pred_max`` (answer after max segments), ``seg_act`` (segments used under ACT),
    ``conf_act`` (mean max-probability of the ACT answer) and per-segment predictions ``preds``
    (S, N, L).
    """
    cfg = model.cfg
    S = cfg.max_segments
    N = len(inputs)
    preds = np.zeros((S, N, cfg.seq_len), dtype=np.int64)
    confs = np.zeros((S, N), dtype=np.float32)
    halt = np.zeros((S, N), dtype=bool)
    for lo in range(0, N, batch_size):
        x = torch.as_tensor(inputs[lo:lo + batch_size], dtype=torch.long)
        carry = model.initial_carry(len(x))
        for s in range(S):
            carry, logits, qh, qc = model.segment(carry, {"inputs": x})
            p = logits.softmax(-1)
            conf, arg = p.max(-1)
            preds[s, lo:lo + len(x)] = arg.numpy()
            confs[s, lo:lo + len(x)] = conf.mean(-1).numpy()
            halt[s, lo:lo + len(x)] = (qh > qc).numpy()
    halt[-1] = True
    first = halt.argmax(0)
    idx = np.arange(N)
    return {
        "preds": preds,
        "pred_act": preds[first, idx],
        "pred_max": preds[-1],
        "seg_act": first + 1,
        "conf_act": confs[first, idx],
    }


def evaluate_bare(model: HRM, task: Task | str, inputs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    task = get_task(task) if isinstance(task, str) else task
    t0 = time.perf_counter()
    r = run_bare(model, inputs)
    dt = time.perf_counter() - t0
    ok_act = task.violations(r["pred_act"], inputs) == 0
    ok_max = task.violations(r["pred_max"], inputs) == 0
    return {
        "task": task.name,
        "n": int(len(inputs)),
        "exact_bare": float(ok_act.mean()),
        "exact_bare_max": float(ok_max.mean()),
        "label_match": float((r["pred_act"] == labels).all(1).mean()),
        "cell_accuracy": float((r["pred_act"] == labels).mean()),
        "mean_segments": float(r["seg_act"].mean()),
        "max_segments": int(model.cfg.max_segments),
        "seconds_all_max": dt,
    }
