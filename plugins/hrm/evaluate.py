"""Evaluation of the bare model (ACT halting and always-max) on held-out puzzles."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from .model import HRM
from .tasks import Distribution, Task, get_task

#: Seed of the default held-out evaluation set (training data uses the train split, whose
#: puzzles are disjoint from every test-split puzzle by construction).
EVAL_SEED = 9001


@torch.inference_mode()
def run_bare(model: HRM, inputs: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Run every puzzle for ``max_segments`` segments; record the ACT-halt and the final answers.

    Returns ``pred_act`` (answer at the first segment where the model's ACT rule halts, else
    the last), ``pred_max`` (answer after max segments), ``seg_act`` (segments used under ACT),
    ``conf_act`` (mean max-probability of the ACT answer), per-segment predictions ``preds``
    (S, N, L) and ``q_margin`` (S, N): q_halt - q_continue at each segment.
    """
    cfg = model.cfg
    S = cfg.max_segments
    N = len(inputs)
    preds = np.zeros((S, N, cfg.seq_len), dtype=np.int64)
    confs = np.zeros((S, N), dtype=np.float32)
    q_margin = np.zeros((S, N), dtype=np.float32)
    device = model.H_init.device
    for lo in range(0, N, batch_size):
        x = torch.as_tensor(inputs[lo:lo + batch_size], dtype=torch.long, device=device)
        carry = model.initial_carry(len(x))
        for s in range(S):
            carry, logits, qh, qc = model.segment(carry, {"inputs": x})
            p = logits.softmax(-1)
            conf, arg = p.max(-1)
            preds[s, lo:lo + len(x)] = arg.cpu().numpy()
            confs[s, lo:lo + len(x)] = conf.mean(-1).cpu().numpy()
            q_margin[s, lo:lo + len(x)] = (qh - qc).cpu().numpy()
    first = act_segments(q_margin, cfg.halt_margin) - 1
    idx = np.arange(N)
    return {
        "preds": preds,
        "pred_act": preds[first, idx],
        "pred_max": preds[-1],
        "seg_act": first + 1,
        "conf_act": confs[first, idx],
        "q_margin": q_margin,
    }


def act_segments(q_margin: np.ndarray, halt_margin: float) -> np.ndarray:
    """Segments used per puzzle (N,) under the ACT rule q_halt - q_continue > ``halt_margin``
    (the last segment always halts), from the per-segment margins (S, N); the same comparison
    as :meth:`HRM.act_halt`, in float32."""
    halt = q_margin > np.float32(halt_margin)
    halt[-1] = True
    return halt.argmax(0) + 1


#: Candidate ACT margins searched by :func:`tune_halt_margin` (0 = the reference rule).
HALT_MARGINS = tuple(float(m) for m in np.arange(0.0, 8.01, 0.25))


def tune_halt_margin(model: HRM, task: Task | str, inputs: np.ndarray,
                     margins: tuple[float, ...] = HALT_MARGINS) -> tuple[float, list[dict[str, float]]]:
    """Pick the inference ACT margin on validation puzzles: the one with the highest bare exact,
    ties to fewer segments. Returns (margin, table of {margin, exact, mean_segments})."""
    task = get_task(task) if isinstance(task, str) else task
    r = run_bare(model, inputs)
    ok = np.stack([task.violations(p, inputs) == 0 for p in r["preds"]])  # (S, N)
    idx = np.arange(len(inputs))
    table = []
    for m in margins:
        seg = act_segments(r["q_margin"], m)
        table.append({"margin": m, "exact": float(ok[seg - 1, idx].mean()), "mean_segments": float(seg.mean())})
    best = max(table, key=lambda row: (row["exact"], -row["mean_segments"], -row["margin"]))
    return best["margin"], table


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


def task_inputs_to_puzzles(task: Task, inputs: np.ndarray) -> list[Any]:
    """Flat tokens -> what a user passes to the plugin (Sudoku grids / maze strings)."""
    from plugins.puzzles import maze

    grids = inputs.reshape(len(inputs), task.size, task.size)
    if task.kind == "sudoku":
        return [g for g in grids]
    return [maze.render(g) for g in grids]


def evaluate_irp(checkpoint: str, task: Task | str, inputs: np.ndarray, max_steps: int | None = None,
                 batch_size: int = 256, seed: int = 0) -> dict[str, Any]:
    """IRP refinement through the plugin (continue past ACT, symmetric restarts, keep best)."""
    from .plugin import HRMReasoner

    task = get_task(task) if isinstance(task, str) else task
    plugin = HRMReasoner(checkpoint=checkpoint, mode="irp", max_steps=max_steps)
    puzzles = task_inputs_to_puzzles(task, inputs)
    t0 = time.perf_counter()
    states = [plugin.init_state(p, {"seed": seed + i, "checkpoint": checkpoint}) for i, p in enumerate(puzzles)]
    done = [False] * len(states)
    steps_used = np.zeros(len(states), dtype=np.int64)
    while not all(done):
        active = [i for i, d in enumerate(done) if not d]
        for lo in range(0, len(active), batch_size):
            chunk = active[lo:lo + batch_size]
            new = plugin.step_batch([states[i] for i in chunk])
            for i, s in zip(chunk, new):
                s = plugin.project(s)
                states[i] = s
                steps_used[i] = s.step
                if s.meta["best_violations"] == 0 or s.step >= s.meta["max_steps"]:
                    done[i] = True
    dt = time.perf_counter() - t0
    best = np.stack([s.x["best"] for s in states])
    ok = task.violations(best, inputs) == 0
    return {
        "exact_irp": float(ok.mean()),
        "irp_mean_segments": float(steps_used.mean()),
        "irp_max_steps": int(states[0].meta["max_steps"]) if states else 0,
        "irp_seconds": dt,
        "irp_best": best,
    }


def slice_distribution(task: Task, blanks: tuple[int, int] | None = None,
                       sg_distance: tuple[int, int] | None = None) -> Distribution | None:
    """The held-out slice ``sage eval hrm --blanks / --sg-distance`` measures: Sudoku puzzles
    with blanks in [lo, hi] (several completions allowed, any valid one counts), or mazes with S
    and G on any open cells at a distance in [lo, hi] moves. None: the task's own test set."""
    if blanks is not None:
        if task.kind != "sudoku":
            raise ValueError(f"--blanks applies to Sudoku tasks, not {task.name!r} (use --sg-distance for mazes)")
        if not 0 <= blanks[0] <= blanks[1] <= task.seq_len:
            raise ValueError(f"--blanks must be LO-HI with 0 <= LO <= HI <= {task.seq_len}, got {blanks[0]}-{blanks[1]}")
    if sg_distance is not None:
        if task.kind != "maze":
            raise ValueError(f"--sg-distance applies to maze tasks, not {task.name!r} (use --blanks for Sudoku)")
        if not 1 <= sg_distance[0] <= sg_distance[1]:
            raise ValueError(f"--sg-distance must be LO-HI with 1 <= LO <= HI, got {sg_distance[0]}-{sg_distance[1]}")
    if blanks is None and sg_distance is None:
        return None
    return Distribution(blanks=blanks, unique=blanks is None, sg_anywhere=sg_distance is not None,
                        sg_distance=sg_distance)


def run_eval(task_name: str, checkpoint: str | None = None, n: int = 1000, seed: int | None = None,
             irp: bool = True, blanks: tuple[int, int] | None = None,
             sg_distance: tuple[int, int] | None = None) -> dict[str, Any]:
    """What ``sage eval hrm`` prints: bare (ACT and always-max), IRP, cell accuracy, speed, on
    the task's test set or on a slice of it (:func:`slice_distribution`)."""
    from .checkpoint import default_checkpoint, load_pretrained, resolve

    task = get_task(task_name)
    dist = slice_distribution(task, blanks, sg_distance)
    ck = str(resolve(checkpoint or default_checkpoint(task_name)))
    model = load_pretrained(ck)
    if model.cfg.task != task.name:
        raise ValueError(f"checkpoint {ck} was trained on {model.cfg.task!r}, not {task.name!r}")
    seed = EVAL_SEED if seed is None else seed
    x, y = task.generate(n, seed, "test", dist)
    r = evaluate_bare(model, task, x, y)
    r["puzzles_per_s"] = n / r.pop("seconds_all_max")
    r["exact_irp"] = None
    if irp:
        ir = evaluate_irp(ck, task, x, seed=seed)
        ir.pop("irp_best")
        r["irp_puzzles_per_s"] = n / ir.pop("irp_seconds")
        r.update(ir)
    r.update(checkpoint=ck, seed=seed, blanks=list(blanks) if blanks else None,
             sg_distance=list(sg_distance) if sg_distance else None)
    return r
