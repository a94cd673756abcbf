"""Training of the explanation model (NAT or AR decoder) from scratch on CPU, counted in CPU time.

The run directory holds ``state.safetensors`` (weights, Adam moments, msgpack-free JSON metadata:
step, CPU seconds, config, arguments), replaced atomically every ``save_every`` steps, so a
killed run resumes where it stopped; batches and masks are drawn from generators seeded by
(seed, step, worker), so a resumed run sees the data an uninterrupted one would. With
``workers`` > 1 the run is data-parallel over that many processes of one torch thread each
(gradients averaged by a gloo all-reduce); the budget counts the CPU time of all of them.
"""

from __future__ import annotations

import functools
import json
import math
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from .corpus import Corpus, ar_batch, load_or_generate, nat_batch
from .model import Explainer, ModelConfig
from .vocab import BOS_ID, MASK_ID, PAD_ID


@attrs.frozen
class TrainArgs:
    """One training run: decoder kind, output directory, CPU-minute budget and the recipe."""

    out: str
    decoder: str = "nat"
    minutes: float = 30.0
    seed: int = 0
    n6: int = 12000
    n4: int = 4000
    share6: float = 0.8
    batch: int = 32
    lr: float = 1e-3
    warmup: int = 200
    save_every: int = 50
    workers: int = 1
    model: dict = attrs.field(factory=dict)


def nat_loss(model: Explainer, batch: dict, gen: torch.Generator) -> torch.Tensor:
    """Conditional masked LM loss: mask a uniform share of each sample's slot tokens, predict them."""
    target, cells = batch["target"], batch["cells"]
    valid = (cells >= 0).unsqueeze(-1).expand_as(target)
    ratio = torch.rand(target.shape[0], 1, 1, generator=gen)
    masked = (torch.rand(target.shape, generator=gen) < ratio) & valid
    masked |= valid & ~masked.flatten(1).any(1)[:, None, None]  # at least one masked token
    tokens = torch.where(masked, torch.full_like(target, MASK_ID), target)
    mem = model.encode(batch["given"], batch["digit"])
    logits = model.nat_logits(mem, cells, tokens)
    return F.cross_entropy(logits[masked], target[masked])


def ar_loss(model: Explainer, batch: dict) -> torch.Tensor:
    """Teacher-forced next-token loss over the flat slot sequence (padding ignored)."""
    target = batch["target"]
    prev = torch.cat([torch.full_like(target[:, :1], BOS_ID), target[:, :-1]], 1)
    mem = model.encode(batch["given"], batch["digit"])
    logits = model.ar_logits(mem, batch["cells"], prev, batch["slot"], batch["pos"])
    return F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=PAD_ID)


def save_state(path: Path, model: Explainer, opt: torch.optim.Optimizer, meta: dict) -> None:
    """Weights, Adam moments and JSON metadata in one safetensors file, replaced atomically."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    for i, p in enumerate(model.parameters()):
        st = opt.state.get(p)
        if st:
            tensors[f"opt.{i}.exp_avg"], tensors[f"opt.{i}.exp_avg_sq"] = st["exp_avg"], st["exp_avg_sq"]
            tensors[f"opt.{i}.step"] = torch.as_tensor(st["step"], dtype=torch.float64).reshape(1)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta)})
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(path)


def read_state(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of a state or weights file; a clear error for anything else."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("meta", "{}"))
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except Exception as exc:
        raise ValueError(f"{path} is not a language-model safetensors file: {exc}") from None


class Trainer:
    """Runs (or resumes) one training run until its CPU-minute budget is spent."""

    def __init__(self, args: TrainArgs, log: Callable[[str], None] = print, rank: int = 0) -> None:
        self.args, self.log, self.rank = args, log, rank
        self.dir = Path(args.out)
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = ModelConfig(decoder=args.decoder, **args.model)
        torch.manual_seed(args.seed)  # the same initial weights in every worker
        self.model = Explainer(cfg)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
        self.step, self.cpu_s = 0, 0.0
        self.state = self.dir / "state.safetensors"
        if self.state.exists():
            self._resume()

    def _resume(self) -> None:
        tensors, meta = read_state(self.state)
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        for i, p in enumerate(self.model.parameters()):
            if f"opt.{i}.exp_avg" in tensors:
                self.opt.state[p] = {"exp_avg": tensors[f"opt.{i}.exp_avg"], "exp_avg_sq": tensors[f"opt.{i}.exp_avg_sq"],
                                     "step": tensors[f"opt.{i}.step"].reshape(())}
        self.step, self.cpu_s = int(meta["step"]), float(meta["cpu_s"])
        self.log(f"resumed {self.dir} at step {self.step} ({self.cpu_s / 60:.1f} CPU-min)")

    def _lr(self) -> float:
        a = self.args
        frac = min(1.0, self.cpu_s / (a.minutes * 60))
        warm = min(1.0, (self.step + 1) / a.warmup)
        return a.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    def meta(self) -> dict:
        return {"step": self.step, "cpu_s": self.cpu_s, "config": attrs.asdict(self.model.cfg),
                "args": attrs.asdict(self.args)}

    def run(self) -> None:
        a = self.args
        torch.set_num_threads(1)
        cache = self.dir.parent / "corpus"
        t0 = time.process_time()
        corpora: dict[int, Corpus] = {6: load_or_generate(6, a.n6, a.seed, cache), 4: load_or_generate(4, a.n4, a.seed, cache)}
        self.log(f"corpus: {a.n6} 6x6 + {a.n4} 4x4 puzzles ({time.process_time() - t0:.0f} CPU-s)")
        self.model.train()
        losses: list[float] = []
        mark = time.process_time()
        while self.cpu_s < a.minutes * 60:
            rng = np.random.default_rng([a.seed, self.step, self.rank])
            gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
            n = 6 if rng.random() < a.share6 else 4
            idx = rng.integers(len(corpora[n]), size=a.batch)
            if a.decoder == "nat":
                loss = nat_loss(self.model, nat_batch(corpora[n], idx, rng), gen)
            else:
                loss = ar_loss(self.model, ar_batch(corpora[n], idx, rng))
            for g in self.opt.param_groups:
                g["lr"] = self._lr()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            now = time.process_time()
            self.cpu_s += self._sync(now - mark)
            mark = now
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.step += 1
            losses.append(loss.item())
            if self.rank == 0 and (self.step % a.save_every == 0 or self.cpu_s >= a.minutes * 60):
                save_state(self.state, self.model, self.opt, self.meta())
                self.log(f"step {self.step} loss {np.mean(losses):.4f} lr {self._lr():.2e} "
                         f"cpu {self.cpu_s / 60:.1f}/{a.minutes} min")
                losses = []
        if self.rank == 0:
            save_state(self.state, self.model, self.opt, self.meta())
            self.log(f"done: {self.step} steps, {self.cpu_s / 60:.1f} CPU-min")

    def _sync(self, cpu: float) -> float:
        """Average the gradients over the workers; the CPU seconds of all workers this step."""
        if self.args.workers == 1:
            return cpu
        grads = [p.grad for p in self.model.parameters()]
        flat = torch.cat([g.reshape(-1) for g in grads] + [torch.tensor([cpu], dtype=grads[0].dtype)])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g) / self.args.workers)
            offset += g.numel()
        return float(flat[-1])


def _worker(rank: int, args: TrainArgs, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=args.workers)
    try:
        Trainer(args, log=functools.partial(print, flush=True) if rank == 0 else (lambda _: None), rank=rank).run()
    finally:
        dist.destroy_process_group()


def train(args: TrainArgs, log: Callable[[str], None] = print) -> None:
    """Run (or resume) a training run in ``args.workers`` processes of one torch thread each."""
    if args.workers < 1:
        raise ValueError(f"workers must be >= 1, got {args.workers}")
    if args.workers == 1:
        Trainer(args, log=log).run()
        return
    cache = Path(args.out).parent / "corpus"
    for n, count in ((6, args.n6), (4, args.n4)):
        load_or_generate(n, count, args.seed, cache)  # once, before the workers read it
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torch.multiprocessing.spawn(_worker, args=(args, port), nprocs=args.workers, join=True)
