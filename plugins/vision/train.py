"""Training the cell model from scratch on CPU (one torch thread), resumable from its run folder.

Run folder: ``cells.npz`` (the rendered training cells, made once), ``state.safetensors`` (weights
and optimizer moments after the last finished epoch, with JSON metadata: epoch, CPU seconds,
history) and ``model.safetensors`` (the weights to ship). CPU time counts data generation too.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from plugins.puzzles.fonts import TRAIN_FONTS

from .data import TRAIN_SEED, training_cells
from .model import MAZE_BASE, N_CLASSES, CellConfig, CellNet, save

MARGIN = 0.01  #: the true class must reconstruct a cell better than another class by this much (MSE)
STYLE_PRIOR = 1e-3


@attrs.frozen
class TrainArgs:
    """What a training run does (defaults: the shipped model's recipe)."""

    out: str
    seed: int = 0
    n_grids: int = 10000
    epochs: int = 11
    batch: int = 128
    lr: float = 3e-3
    minutes: float = 30.0  #: CPU-time limit, data generation included
    workers: int = 1  #: processes rendering the training images (the cells do not depend on it)
    channels: tuple[int, int, int] = (16, 32, 64)
    hidden: int = 128
    downsample: str = "stride"  #: "pool" or "stride" (see :class:`~plugins.vision.model.CellConfig`)
    decoder_kind: str = "mlp"  #: "deconv" or "mlp"
    decoder: int = 128
    augment: str = "font"  #: "light" (contrast, shift, noise), "affine" (also zoom, shear, turn, stroke
    #: width) or "font" (wider affine maps, aspect, blur and coarse sampling too)


def allowed_masks(y: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """(B, N_CLASSES) bool: each cell's allowed classes (digits up to its grid's size, or maze classes)."""
    idx = torch.arange(N_CLASSES)
    maze = (y >= MAZE_BASE).unsqueeze(1)
    return torch.where(maze, idx >= MAZE_BASE, idx <= sizes.unsqueeze(1))


def losses(model: CellNet, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Classification, reconstruction (true class), contrast (the allowed class the encoder
    ranks highest after the true one must reconstruct worse by MARGIN: the decoder learns to
    tell apart what the encoder confuses, which is what refinement's reconstruction term has to
    judge) and style prior terms for a batch."""
    logits, style = model.encode(x)
    logits = logits.masked_fill(~mask, -1e4)
    ce = F.cross_entropy(logits, y)
    onehot = F.one_hot(y, N_CLASSES).float()
    recon = ((model.decode(onehot, style) - x) ** 2).mean(dim=(1, 2))
    other = logits.detach().masked_fill(onehot.bool(), -1e9).argmax(1)
    wrong = ((model.decode(F.one_hot(other, N_CLASSES).float(), style) - x) ** 2).mean(dim=(1, 2))
    return {"ce": ce, "recon": recon.mean(), "contrast": F.relu(MARGIN + recon - wrong).mean(),
            "prior": STYLE_PRIOR * (style ** 2).sum(1).mean(), "acc": (logits.argmax(1) == y).float().mean()}


def _light(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Contrast in [0.75, 1], one 1 px shift for half of the batches, faint noise."""
    b = x.shape[0]
    x = x * (0.75 + 0.25 * torch.rand(b, 1, 1, generator=gen))
    dy, dx = (int(v) for v in torch.randint(-1, 2, (2,), generator=gen))
    if torch.rand(1, generator=gen).item() < 0.5:
        x = torch.roll(x, (dy, dx), dims=(1, 2))
    return (x + 0.03 * torch.randn(x.shape, generator=gen)).clamp(0, 1)


def _affine(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per cell: a random affine map (zoom 0.85-1.15, shear +-0.25, turn +-6 degrees, shift
    +-1.5 px), thicker or thinner strokes (a fifth each), then :func:`_light`: fonts differ in
    exactly these ways, so the model sees more of them than the training fonts draw."""
    b = x.shape[0]
    u = torch.rand(b, 6, generator=gen)
    zoom, shear, turn = 0.85 + 0.3 * u[:, 0], 0.5 * u[:, 1] - 0.25, (u[:, 2] - 0.5) * 0.21
    cos, sin = torch.cos(turn) / zoom, torch.sin(turn) / zoom
    theta = torch.stack([torch.stack([cos, -sin + shear, (u[:, 3] - 0.5) * 0.25], 1),
                         torch.stack([sin, cos, (u[:, 4] - 0.5) * 0.25], 1)], 1)
    grid = F.affine_grid(theta, [b, 1, x.shape[1], x.shape[2]], align_corners=False)
    x = F.grid_sample(x.unsqueeze(1), grid, align_corners=False)
    thick = F.max_pool2d(x, 3, stride=1, padding=1)
    thin = -F.max_pool2d(-x, 3, stride=1, padding=1)
    w = u[:, 5].view(b, 1, 1, 1)
    return _light(torch.where(w < 0.2, thick, torch.where(w > 0.8, 0.5 * (x + thin), x)).squeeze(1), gen)


def _font(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per cell: a wider random affine map than :func:`_affine` (zoom 0.7-1.2 with aspect
    +-15 %, shear +-0.35, turn +-8 degrees, shift +-2 px), thicker or thinner strokes (a fifth
    each), a blur or a 2x coarser sampling (a sixth each: small glyphs on small images), then
    :func:`_light`: unseen fonts differ from the training fonts in these ways."""
    b, h, w = x.shape
    u = torch.rand(b, 8, generator=gen)
    zoom, aspect = 0.7 + 0.5 * u[:, 0], 0.85 + 0.3 * u[:, 6]
    shear, turn = 0.7 * u[:, 1] - 0.35, (u[:, 2] - 0.5) * 0.28
    cos, sin = torch.cos(turn), torch.sin(turn)
    theta = torch.stack([torch.stack([cos / (zoom * aspect), -sin / zoom + shear, (u[:, 3] - 0.5) * 0.33], 1),
                         torch.stack([sin / (zoom * aspect), cos / zoom, (u[:, 4] - 0.5) * 0.33], 1)], 1)
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
    x = F.grid_sample(x.unsqueeze(1), grid, align_corners=False)
    thick = F.max_pool2d(x, 3, stride=1, padding=1)
    thin = -F.max_pool2d(-x, 3, stride=1, padding=1)
    s = u[:, 5].view(b, 1, 1, 1)
    x = torch.where(s < 0.2, thick, torch.where(s > 0.8, 0.5 * (x + thin), x))
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    coarse = F.interpolate(F.avg_pool2d(x, 2), size=(h, w), mode="bilinear", align_corners=False)
    r = u[:, 7].view(b, 1, 1, 1)
    x = torch.where(r < 1 / 6, blurred, torch.where(r > 5 / 6, coarse, x))
    return _light(x.squeeze(1), gen)


AUGMENT = {"light": _light, "affine": _affine, "font": _font}


class Trainer:
    """One resumable training run."""

    def __init__(self, args: TrainArgs, log: Callable[[str], None] = print) -> None:
        self.args, self.log = args, log
        self.dir = Path(args.out)
        self.dir.mkdir(parents=True, exist_ok=True)

    def data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(cells, labels, grid sizes, CPU seconds spent making them), made once per run folder."""
        path = self.dir / "cells.npz"
        if not path.exists():
            x, y, sizes, cpu = training_cells(self.args.n_grids, TRAIN_SEED + self.args.seed, self.args.workers)
            np.savez(path, x=x, y=y, sizes=sizes, cpu=np.float64(cpu))
        with np.load(path, allow_pickle=False) as z:
            return z["x"], z["y"], z["sizes"], float(z["cpu"])

    def run(self) -> Path:
        torch.set_num_threads(1)
        a = self.args
        x_all, y_all, s_all, data_cpu = self.data()
        self.log(f"{len(y_all)} training cells ({data_cpu / 60:.1f} CPU-min to render and cut)")
        torch.manual_seed(a.seed)
        model = CellNet(CellConfig(channels=a.channels, hidden=a.hidden, decoder=a.decoder,
                                   downsample=a.downsample, decoder_kind=a.decoder_kind))
        opt = torch.optim.Adam(model.parameters(), lr=a.lr)
        state_path = self.dir / "state.safetensors"
        epoch, cpu, history = 0, data_cpu, []
        if state_path.exists():
            epoch, cpu, history = self._resume(state_path, model, opt)
            self.log(f"resumed after epoch {epoch}, {cpu / 60:.1f} CPU-min")
        x = torch.from_numpy(x_all.astype(np.float32))
        y, sizes = torch.from_numpy(y_all), torch.from_numpy(s_all)
        steps_per_epoch = math.ceil(len(y) / a.batch)
        total = steps_per_epoch * a.epochs
        while epoch < a.epochs and cpu < a.minutes * 60:
            t0 = time.process_time()
            gen = torch.Generator().manual_seed(a.seed * 1000 + epoch)
            order = torch.randperm(len(y), generator=gen)
            sums: dict[str, float] = {}
            model.train()
            for k in range(steps_per_epoch):
                step = epoch * steps_per_epoch + k
                for g in opt.param_groups:
                    g["lr"] = a.lr * 0.5 * (1 + math.cos(math.pi * step / total))
                idx = order[k * a.batch:(k + 1) * a.batch]
                parts = losses(model, AUGMENT[a.augment](x[idx], gen), y[idx], allowed_masks(y[idx], sizes[idx]))
                loss = parts["ce"] + parts["recon"] * 10 + parts["contrast"] * 10 + parts["prior"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                for name, v in parts.items():
                    sums[name] = sums.get(name, 0.0) + float(v.detach())
            epoch += 1
            cpu += time.process_time() - t0
            row = {"epoch": epoch, "cpu_min": round(cpu / 60, 2), **{k: round(v / steps_per_epoch, 5) for k, v in sums.items()}}
            history.append(row)
            self.log(json.dumps(row))
            self._checkpoint(state_path, model, opt, epoch, cpu, history)
        info = {"epochs": epoch, "cpu_minutes": round(cpu / 60, 2), "data_cpu_minutes": round(data_cpu / 60, 2),
                "cells": int(len(y)), "seed": a.seed, "args": attrs.asdict(a), "train_fonts": list(TRAIN_FONTS),
                "history": history, "threads": 1}
        out = self.dir / "model.safetensors"
        save(model, out, info)
        self.log(f"wrote {out} ({out.stat().st_size} bytes) after {epoch} epochs, {cpu / 60:.1f} CPU-min")
        return out

    @staticmethod
    def _checkpoint(path: Path, model: CellNet, opt: torch.optim.Optimizer, epoch: int, cpu: float,
                    history: list[dict[str, Any]]) -> None:
        from safetensors.torch import save_file

        tensors = {f"model.{k}": v.detach().clone() for k, v in model.state_dict().items()}
        for i, p in enumerate(model.parameters()):
            st = opt.state.get(p, {})
            for name in ("exp_avg", "exp_avg_sq", "step"):
                if name in st:
                    tensors[f"opt.{i}.{name}"] = torch.as_tensor(st[name]).detach().clone().reshape(-1) if name == "step" else st[name].detach().clone()
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata={"epoch": str(epoch), "cpu": repr(cpu), "history": json.dumps(history)})
        tmp.replace(path)

    @staticmethod
    def _resume(path: Path, model: CellNet, opt: torch.optim.Optimizer) -> tuple[int, float, list[dict[str, Any]]]:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        for i, p in enumerate(model.parameters()):
            if f"opt.{i}.exp_avg" in tensors:
                opt.state[p] = {"exp_avg": tensors[f"opt.{i}.exp_avg"], "exp_avg_sq": tensors[f"opt.{i}.exp_avg_sq"],
                                "step": tensors[f"opt.{i}.step"].reshape(())}
        return int(meta["epoch"]), float(meta["cpu"]), json.loads(meta["history"])
