"""Train an HRM with deep supervision and ACT Q-learning on CPU; resumable, deterministic.

Training follows the reference: a batch of *slots*, each holding one puzzle and its carry.
Every iteration runs one segment for all slots (one-step gradient), computes the loss and
takes an optimizer step (deep supervision). Slots whose puzzle halted (ACT: q_halt >
q_continue, with random minimum segments for exploration, or max segments) get a fresh
augmented puzzle and a reset carry. Q targets: halt = whole answer correct; continue =
sigmoid of the next segment's max(q_halt, q_continue) (q_halt at the last segment).

    python -m plugins.hrm.train --task sudoku4 --out runs/sudoku4 --minutes 30
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from plugins.puzzles import sudoku

from . import checkpoint as ckpt
from .config import HRMConfig
from .evaluate import EVAL_SEED, evaluate_bare
from .model import HRM, sequence_loss
from .tasks import Distribution, get_task


@attrs.define
class TrainArgs:
    task: str = "sudoku4"
    out: str = "runs/sudoku4"
    seed: int = 0
    n_train: int = 10000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int = 200
    decay_iters: int = 0  # > 0: cosine decay of the lr to lr * lr_min_ratio at this iteration
    decay_start: int = 0  # iteration where the cosine decay starts (at least the warmup)
    lr_min_ratio: float = 0.1
    grad_clip: float = 0.0  # > 0: clip the global gradient norm to this before each step
    ema: float = 0.0  # > 0: keep an exponential moving average of the weights with this decay; evaluated and shipped
    minutes: float = 60.0  # CPU (process) time of the training steps
    max_iters: int = 10**9
    eval_every: int = 500
    eval_n: int = 256
    ckpt_every_s: float = 120.0
    threads: int = 1
    model: dict = attrs.Factory(dict)  # HRMConfig overrides
    #: training data: a mixture of distributions (``tasks.Distribution`` fields), n_train split
    #: evenly between them; empty = the task's own distribution
    data: list = attrs.Factory(list)
    #: start from these weights (a shipped name or a checkpoint path) instead of random ones;
    #: the model config is the checkpoint's (``model`` overrides are applied on top)
    init: str = ""
    #: Sudoku puzzles with several completions get, at every step, the completion nearest the
    #: model's current answer as their label (``sudoku.complete_guided``): any is right
    relabel: bool = False
    device: str = "cpu"  # "cuda" where an accelerator is lent; the code path is the same
    recipe: str = ""  # the recipe these arguments came from (named in the model card's reproduce command)
    clock: str = attrs.field(default="cpu", validator=attrs.validators.in_(["cpu", "wall"]))  # what --minutes counts


#: Per-task training recipes (the shipped checkpoints' reproduce commands use these).
RECIPES: dict[str, dict[str, Any]] = {
    "sudoku4": {"n_train": 5000, "minutes": 20.0, "lr": 1e-3, "batch_size": 64,
                "model": {"hidden": 64, "heads": 4, "H_layers": 2, "L_layers": 2, "max_segments": 8}},
    "sudoku6": {"n_train": 20000, "minutes": 60.0, "lr": 1e-3, "batch_size": 64, "decay_iters": 10000,
                "model": {"hidden": 64, "heads": 4, "H_layers": 2, "L_layers": 2, "max_segments": 8}},
    # sudoku9 (stretch): the sudoku6 model size; at hidden 128 an iteration took ~4x longer
    "sudoku9": {"n_train": 20000, "minutes": 60.0, "lr": 1e-3, "batch_size": 64, "decay_iters": 6000,
                "grad_clip": 1.0, "ema": 0.998,
                "model": {"hidden": 64, "heads": 4, "H_layers": 2, "L_layers": 2, "max_segments": 8}},
    # maze11: 2-D rotary positions and a 3x3 local attention window (grid neighbours only) and
    # 8 L updates per H update, so each segment can run a dead-end-filling style propagation;
    # with 1-D rotary and full attention the model stayed on the "no path" plateau for 59 CPU-min
    "maze11": {"n_train": 20000, "minutes": 60.0, "lr": 1e-3, "batch_size": 32, "decay_iters": 12000,
               "model": {"hidden": 64, "heads": 4, "H_layers": 1, "L_layers": 1, "max_segments": 8, "L_cycles": 8,
                         "pos_encoding": "rope2d", "rope_theta": 100.0, "attn_window": 1}},
    "maze13": {"n_train": 20000, "minutes": 60.0, "lr": 1e-3, "batch_size": 32,
               "model": {"hidden": 64, "heads": 4, "H_layers": 1, "L_layers": 1, "max_segments": 8}},
    # --- every input a user gives (fine-tunes of the shipped models; a recipe's "task" names the
    # task when the recipe's name is not a task) ---
    # Sudoku with several completions: half the puzzles unique as before (no loss there), half
    # with blanks up to an empty grid's worth and any completion right (labels: complete_guided)
    "sudoku4-any": {"task": "sudoku4", "init": "sudoku4", "n_train": 20000, "minutes": 30.0, "lr": 3e-4,
                    "batch_size": 64, "grad_clip": 1.0, "ema": 0.999, "relabel": True, "decay_iters": 8000,
                    "data": [{}, {"blanks": [8, 16], "unique": False}], "model": {}},
    "sudoku6-any": {"task": "sudoku6", "init": "sudoku6", "n_train": 40000, "minutes": 60.0, "lr": 3e-4,
                    "batch_size": 64, "grad_clip": 1.0, "ema": 0.999, "relabel": True, "decay_iters": 12000,
                    "data": [{}, {"blanks": [20, 34], "unique": False}], "model": {}},
    # mazes with S and G on any two open cells (a third of the data within 5 moves)
    "maze11-any": {"task": "maze11", "init": "maze11_trm", "n_train": 30000, "minutes": 60.0, "lr": 3e-4,
                   "batch_size": 32, "grad_clip": 1.0, "ema": 0.999, "decay_iters": 12000,
                   "data": [{}, {"sg_anywhere": True}, {"sg_anywhere": True, "sg_distance": [1, 5]}], "model": {}},
    # the second stage of maze11_any: its first stage (above) left S and G 1-2 moves apart at 62 %
    # bare (stray path cells, detours); this stage weights near endpoints and trains longer
    "maze11-any-near": {"task": "maze11", "init": "maze11_any", "n_train": 60000, "minutes": 60.0, "lr": 3e-4,
                        "batch_size": 256, "grad_clip": 1.0, "ema": 0.999, "decay_iters": 12000, "eval_n": 1024,
                        "data": [{}, {"sg_anywhere": True}, {"sg_anywhere": True, "sg_distance": [1, 2]},
                                 {"sg_anywhere": True, "sg_distance": [3, 5]}], "model": {}},
    # 9x9 (30-50 blanks, unique), sized for an accelerator run (runs on CPU too, slowly)
    "sudoku9-large": {"task": "sudoku9", "n_train": 40000, "minutes": 360.0, "lr": 1e-3, "batch_size": 384,
                      "decay_iters": 20000, "grad_clip": 1.0, "ema": 0.999, "eval_n": 512,
                      "model": {"hidden": 128, "heads": 4, "H_layers": 2, "L_layers": 2, "max_segments": 16}},
}


def recipe(task: str, out: str, seed: int = 0, minutes: float | None = None, model: dict | None = None,
           **kw: Any) -> TrainArgs:
    """TrainArgs from the recipe named ``task`` (a task's own, or a named one such as
    ``maze11-any`` that says its task) with overrides (``model`` overrides are merged)."""
    if task not in RECIPES:
        raise ValueError(f"unknown recipe {task!r}: expected one of {sorted(RECIPES)}")
    name = task
    r = {k: (dict(v) if isinstance(v, dict) else v) for k, v in RECIPES[name].items()}
    task = r.pop("task", name)
    if minutes is not None:
        r["minutes"] = minutes
    if model:
        r["model"].update(model)
    r.update(kw)
    return TrainArgs(task=task, out=out, seed=seed, recipe=name, **r)


def load_or_make_data(task_name: str, n: int, seed: int, out: Path, split: str = "train",
                      data: list[dict] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` puzzles of ``split`` drawn evenly from the ``data`` mixture (default: the task's own
    distribution), cached as .npy files in ``out`` (named after the mixture)."""
    out.mkdir(parents=True, exist_ok=True)
    tag = "" if not data else "-" + hashlib.blake2b(json.dumps(data, sort_keys=True).encode(), digest_size=4).hexdigest()
    fx, fy = out / f"{split}_inputs{tag}.npy", out / f"{split}_labels{tag}.npy"
    if fx.is_file() and fy.is_file():
        x, y = np.load(fx, allow_pickle=False), np.load(fy, allow_pickle=False)
        if len(x) == n:
            return x.astype(np.int64), y.astype(np.int64)
    x, y = generate_mixture(get_task(task_name), n, seed, split, [Distribution.from_dict(d) for d in data or []])
    np.save(fx, x.astype(np.int8), allow_pickle=False)  # tokens < 128: 8x smaller files
    np.save(fy, y.astype(np.int8), allow_pickle=False)
    return x, y


def generate_mixture(task: Any, n: int, seed: int, split: str,
                     dists: list[Distribution | None]) -> tuple[np.ndarray, np.ndarray]:
    """``n`` puzzles of ``split`` drawn evenly from ``dists`` (None, or no dists at all: the
    task's own distribution), in order of the list."""
    if not dists:
        return task.generate(n, seed, split)
    sizes = [n // len(dists) + (i < n % len(dists)) for i in range(len(dists))]
    parts = [task.generate(k, seed, split, dist) for k, dist in zip(sizes, dists)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def several_solutions(task_name: str, x: np.ndarray) -> np.ndarray:
    """(N,) bool: which Sudoku inputs have more than one completion (all False for mazes)."""
    task = get_task(task_name)
    if task.kind != "sudoku":
        return np.zeros(len(x), dtype=bool)
    grids = x.reshape(len(x), task.size, task.size)
    return np.array([sudoku.count_solutions(g, limit=2) > 1 for g in grids], dtype=bool)


class Trainer:
    def __init__(self, args: TrainArgs, log=print) -> None:
        self.args = args
        self.log = log
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(args.threads)
        self.device = torch.device(args.device)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
        self.task = get_task(args.task)
        base = ckpt.load_pretrained(args.init) if args.init else None
        if base is not None:
            if base.cfg.task != args.task:
                raise ValueError(f"--init {args.init} was trained on {base.cfg.task!r}, not {args.task!r}")
            self.cfg = attrs.evolve(base.cfg, **{"halt_margin": 0.0, **args.model})
        else:
            self.cfg = HRMConfig.for_task(args.task, **args.model)
        torch.manual_seed(args.seed)
        self.model = HRM(self.cfg)
        if base is not None:
            self.model.load_state_dict(base.state_dict())
        self.model.to(self.device)
        decay = [p for n, p in self.model.named_parameters() if p.ndim >= 2 and "prefix" not in n]
        no_decay = [p for n, p in self.model.named_parameters() if not (p.ndim >= 2 and "prefix" not in n)]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=args.lr, betas=(0.9, 0.95),
        )
        self.ema_model = self._make_ema()
        data_dir = self.out / "data"
        self.x_train, self.y_train = load_or_make_data(args.task, args.n_train, args.seed, data_dir, data=args.data)
        self.x_eval, self.y_eval = load_or_make_data(args.task, args.eval_n, EVAL_SEED + 1, data_dir, "test", args.data)
        self.multi_train = (several_solutions(args.task, self.x_train) if args.relabel
                            else np.zeros(len(self.x_train), dtype=bool))
        self.np_rng = np.random.default_rng([args.seed, 1])
        self.gen = torch.Generator().manual_seed(args.seed + 2)
        B = args.batch_size
        L = self.cfg.seq_len
        dev = self.device
        self.carry = self.model.initial_carry(B)
        self.inputs = torch.zeros(B, L, dtype=torch.long, device=dev)
        self.labels = torch.zeros(B, L, dtype=torch.long, device=dev)
        self.steps = torch.zeros(B, dtype=torch.long, device=dev)
        self.halted = torch.ones(B, dtype=torch.bool, device=dev)
        self.slot_multi = np.zeros(B, dtype=bool)  # slots whose puzzle has several completions
        self.it = 0
        self.elapsed = 0.0
        self.puzzles_done = 0
        self.best: tuple[float, float] | None = None  # (exact, -mean segments) of RUN/best
        self._resume()

    def _make_ema(self) -> HRM | None:
        if not self.args.ema:
            return None
        ema = copy.deepcopy(self.model)
        ema.requires_grad_(False)
        return ema

    @property
    def eval_model(self) -> HRM:
        """The weights that are evaluated and saved as `best`: the EMA if kept, else the live model."""
        return self.ema_model if self.ema_model is not None else self.model

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema_model is None:
            return
        for avg, live in zip(self.ema_model.parameters(), self.model.parameters()):  # a deepcopy: same order
            avg.lerp_(live, 1.0 - self.args.ema)

    # --- persistence ------------------------------------------------------------------
    def _resume(self) -> None:
        st = ckpt.load_train_state(self.out)
        if st is None:
            return
        tensors, meta = st
        cfg = HRMConfig.for_task(meta["args"]["task"], **meta["args"]["model"])
        if cfg != self.cfg:
            raise ValueError(f"{self.out}: checkpoint config {cfg} differs from requested {self.cfg}")
        self.model.load_state_dict(_prefixed(tensors, "model."))
        if self.ema_model is not None:
            self.ema_model.load_state_dict(_prefixed(tensors, "ema."))
        ckpt.optimizer_from_flat(self.opt, tensors, meta["opt"])
        dev = self.device
        self.carry = {"z_H": tensors["slot.z_H"].to(dev), "z_L": tensors["slot.z_L"].to(dev)}
        self.inputs, self.labels = tensors["slot.inputs"].to(dev), tensors["slot.labels"].to(dev)
        self.steps, self.halted = tensors["slot.steps"].to(dev), tensors["slot.halted"].bool().to(dev)
        if "slot.multi" in tensors:
            self.slot_multi = tensors["slot.multi"].bool().numpy()
        self.gen.set_state(tensors["rng.torch"])
        self.np_rng.bit_generator.state = json.loads(meta["rng_numpy"])
        self.it, self.elapsed, self.puzzles_done = meta["it"], meta["elapsed"], meta["puzzles_done"]
        self.best = tuple(meta["best"]) if meta.get("best") else None
        self.log(f"resumed {self.out} at iteration {self.it} ({self.elapsed / 60:.1f} min trained)")

    def save(self) -> None:
        """The resumable state first (one atomic file), then ``last``/``ema`` as loadable exports."""
        opt_t, opt_m = ckpt.optimizer_to_flat(self.opt)
        tensors = {
            **opt_t,
            **{"model." + k: v for k, v in self.model.state_dict().items()},
            **({"ema." + k: v for k, v in self.ema_model.state_dict().items()} if self.ema_model is not None else {}),
            "slot.z_H": self.carry["z_H"], "slot.z_L": self.carry["z_L"],
            "slot.inputs": self.inputs, "slot.labels": self.labels,
            "slot.steps": self.steps, "slot.halted": self.halted.to(torch.uint8),
            "slot.multi": torch.from_numpy(self.slot_multi.astype(np.uint8)),
            "rng.torch": self.gen.get_state(),
        }
        tensors = {k: v.detach().cpu() for k, v in tensors.items()}
        meta = {
            "it": self.it, "elapsed": self.elapsed, "puzzles_done": self.puzzles_done,
            "best": list(self.best) if self.best else None,
            "opt": opt_m, "rng_numpy": json.dumps(self.np_rng.bit_generator.state),
            "args": attrs.asdict(self.args),
        }
        ckpt.save_train_state(self.out, tensors, meta)
        summary = {k: meta[k] for k in ("it", "elapsed", "puzzles_done", "args")}
        (self.out / RUN_SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")
        ckpt.save_model(self.model, self.out / "last", extra={"it": self.it, "elapsed_s": self.elapsed})
        if self.ema_model is not None:
            ckpt.save_model(self.ema_model, self.out / "ema", extra={"it": self.it, "elapsed_s": self.elapsed})

    # --- training ---------------------------------------------------------------------
    def lr_at(self, it: int) -> float:
        a = self.args
        lr = a.lr * min(1.0, (it + 1) / a.warmup)
        start = max(a.warmup, a.decay_start)
        if a.decay_iters > start and it > start:
            frac = min(1.0, (it - start) / (a.decay_iters - start))
            lr *= a.lr_min_ratio + (1 - a.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * frac))
        return lr

    def _refill(self) -> None:
        idx = torch.nonzero(self.halted).flatten().cpu().numpy()
        if len(idx) == 0:
            return
        pick = self.np_rng.integers(len(self.x_train), size=len(idx))
        x, y = self.task.augment(self.x_train[pick], self.y_train[pick], self.np_rng)
        rows = torch.from_numpy(idx).to(self.device)
        self.inputs[rows] = torch.from_numpy(x).to(self.device)
        self.labels[rows] = torch.from_numpy(y).to(self.device)
        self.steps[rows] = 0
        self.slot_multi[idx] = self.multi_train[pick]
        self.carry = self.model.reset_carry(self.carry, self.halted)

    def train_step(self) -> dict[str, float]:
        cfg, model = self.cfg, self.model
        model.train()
        self._refill()
        batch = {"inputs": self.inputs}
        new_carry, logits, q_halt, q_cont = model.segment(self.carry, batch)
        self.steps = self.steps + 1
        is_last = self.steps >= cfg.max_segments
        with torch.no_grad():
            if self.slot_multi.any():
                self._relabel(logits)
            pred = logits.argmax(-1)
            correct = (pred == self.labels).all(-1)
            halted = is_last | (q_halt > q_cont)
            B, dev = len(self.steps), self.device
            explore = torch.rand(B, generator=self.gen).to(dev) < cfg.halt_exploration_prob
            min_steps = explore * torch.randint(2, cfg.max_segments + 1, (B,), generator=self.gen).to(dev)
            halted = halted & (self.steps >= min_steps) | is_last
            if cfg.variant == "trm":
                nq_halt = nq_cont = torch.zeros_like(q_halt)
            else:
                _, _, nq_halt, nq_cont = model.segment(new_carry, batch)
            target_cont = torch.sigmoid(torch.where(is_last, nq_halt, torch.maximum(nq_halt, nq_cont)))
        lm = sequence_loss(cfg, logits, self.labels).mean()
        qh = F.binary_cross_entropy_with_logits(q_halt, correct.float())
        if cfg.variant == "trm":  # halt head only
            qc = torch.zeros((), dtype=qh.dtype)
        else:
            qc = F.binary_cross_entropy_with_logits(q_cont, target_cont)
        loss = lm + 0.5 * (qh + qc)
        for g in self.opt.param_groups:
            g["lr"] = self.lr_at(self.it)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.args.grad_clip)
        self.opt.step()
        self._update_ema()
        self.carry = new_carry
        n_done = int(halted.sum())
        self.puzzles_done += n_done
        stats = {
            "loss": float(lm.detach()), "q_halt_loss": float(qh.detach()), "q_cont_loss": float(qc.detach()),
            "acc_halted": float(correct[halted].float().mean()) if n_done else float("nan"),
            "seg_halted": float(self.steps[halted].float().mean()) if n_done else float("nan"),
            "cell_acc": float((pred == self.labels).float().mean()),
        }
        self.halted = halted
        self.it += 1
        return stats

    def _relabel(self, logits: torch.Tensor) -> None:
        """Label each slot whose puzzle has several completions with the completion nearest
        the model's current answer (``sudoku.complete_guided`` on its log-probabilities)."""
        rows = torch.from_numpy(np.nonzero(self.slot_multi)[0]).to(self.device)
        n = self.task.size
        scores = logits[rows].float().log_softmax(-1).cpu().numpy()
        puzzles, labels = self.inputs[rows].cpu().numpy(), self.labels[rows].cpu().numpy()
        for j in range(len(rows)):
            done = sudoku.complete_guided(puzzles[j].reshape(n, n), scores[j].reshape(n, n, n))
            if done is not None:
                labels[j] = done.reshape(-1) - 1
        self.labels[rows] = torch.from_numpy(labels).to(self.device)

    def evaluate(self) -> dict[str, Any]:
        model = self.eval_model
        model.eval()
        r = evaluate_bare(model, self.task, self.x_eval, self.y_eval)
        r.update(it=self.it, minutes=self.elapsed / 60, puzzles_seen=self.puzzles_done)
        with open(self.out / "curve.jsonl", "a") as f:
            f.write(json.dumps(r) + "\n")
        score = (r["exact_bare"], -r["mean_segments"])
        if self.best is None or score > self.best:  # model selection on the validation split
            self.best = score
            ckpt.save_model(model, self.out / "best", extra={"it": self.it, "elapsed_s": self.elapsed,
                                                                  "val_exact": r["exact_bare"]})
        return r

    def run(self, progress: bool = True) -> dict[str, Any]:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        args = self.args
        budget = args.minutes * 60
        last_ckpt = time.perf_counter()
        smooth: dict[str, float] = {}
        result: dict[str, Any] = {}
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                      TimeElapsedColumn(), disable=not progress) as bar:
            tid = bar.add_task(f"hrm {args.task}", total=budget, completed=self.elapsed, info="")
            clock = time.process_time if args.clock == "cpu" else time.perf_counter
            while self.elapsed < budget and self.it < args.max_iters:
                t0 = clock()
                s = self.train_step()
                self.elapsed += clock() - t0
                for k, v in s.items():
                    if not math.isnan(v):
                        smooth[k] = v if k not in smooth else 0.98 * smooth[k] + 0.02 * v
                info = (f"it {self.it} loss {smooth.get('loss', 0):.3f} exact {smooth.get('acc_halted', 0):.3f} "
                        f"seg {smooth.get('seg_halted', 0):.2f} cell {smooth.get('cell_acc', 0):.3f}")
                bar.update(tid, completed=min(self.elapsed, budget), info=info)
                if self.it % 50 == 0 and not progress:
                    self.log(info + f" t {self.elapsed / 60:.1f}m")
                if self.it % args.eval_every == 0:
                    result = self.evaluate()
                    self.log(f"eval it {self.it}: " + json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}))
                if time.perf_counter() - last_ckpt > args.ckpt_every_s:
                    self.save()
                    last_ckpt = time.perf_counter()
        self.save()
        result = self.evaluate()
        self.log("final eval: " + json.dumps(result))
        return result


#: A run's human-readable summary (iteration, training time, puzzles, arguments) beside its state;
#: what ``ship`` reads when the (large) resumable state was not kept
RUN_SUMMARY = "run.json"


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="sudoku4", help="a task or a named recipe (see RECIPES)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--eval-n", type=int, default=None)
    ap.add_argument("--init", default=None, help="start from these weights (a shipped name or a checkpoint path)")
    ap.add_argument("--max-iters", type=int, default=None)
    ap.add_argument("--decay-iters", type=int, default=None)
    ap.add_argument("--decay-start", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grad-clip", type=float, default=None)
    ap.add_argument("--ema", type=float, default=None)
    ap.add_argument("--model", default="{}", help="JSON HRMConfig overrides, e.g. '{\"hidden\": 64}'")
    ap.add_argument("--device", default=None, help="torch device (cpu, cuda)")
    ap.add_argument("--clock", choices=["cpu", "wall"], default=None, help="what --minutes counts")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    kw = {k: v for k, v in {"n_train": a.n_train, "batch_size": a.batch_size, "lr": a.lr, "max_iters": a.max_iters,
                            "decay_iters": a.decay_iters, "decay_start": a.decay_start,
                            "grad_clip": a.grad_clip, "ema": a.ema, "device": a.device,
                            "clock": a.clock, "eval_n": a.eval_n, "init": a.init}.items() if v is not None}
    args = recipe(a.task, out=a.out, seed=a.seed, minutes=a.minutes, model=json.loads(a.model),
                  eval_every=a.eval_every, threads=a.threads, **kw)
    Trainer(args, log=lambda s: print(s, flush=True)).run(progress=not a.no_progress)


if __name__ == "__main__":
    main()
