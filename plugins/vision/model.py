"""The cell model: a small conv encoder (cell -> class logits + style latent) and a decoder
(class probabilities + style -> cell) for analysis-by-synthesis refinement.

Classes: 0 blank and 1..9 digits (Sudoku), 10 wall, 11 open, 12 start, 13 goal (maze). A grid
of one kind and size only allows its own classes (:func:`allowed`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from .locate import CELL

N_CLASSES = 14
MAZE_BASE = 10  #: class of maze code c (0 wall, 1 open, 2 start, 3 goal) is MAZE_BASE + c
MAX_CHECKPOINT_BYTES = 2 * 1024 * 1024


@attrs.frozen
class CellConfig:
    """Layer widths and kinds of :class:`CellNet` (the defaults are the first shipped model's:
    a checkpoint's metadata names only what it sets)."""

    channels: tuple[int, int, int] = attrs.field(default=(8, 16, 32), converter=tuple)
    hidden: int = 64
    style: int = 8
    decoder: int = 24  #: channels of the transposed-conv decoder, or hidden units of the MLP one
    downsample: str = attrs.field(default="pool", validator=attrs.validators.in_(("pool", "stride")))
    decoder_kind: str = attrs.field(default="deconv", validator=attrs.validators.in_(("deconv", "mlp")))


def allowed(kind: str, size: int) -> torch.Tensor:
    """(N_CLASSES,) bool: the classes a cell of this grid may take."""
    mask = torch.zeros(N_CLASSES, dtype=torch.bool)
    if kind == "sudoku":
        mask[: size + 1] = True
    elif kind == "maze":
        mask[MAZE_BASE:] = True
    else:
        raise ValueError(f"kind must be 'sudoku' or 'maze', got {kind!r}")
    return mask


class _Pool2(nn.Module):
    """2 x 2 max pooling as a reshape and a max (several times faster than MaxPool2d on small
    CPU batches; the same numbers; no weights)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x.view(b, c, h // 2, 2, w // 2, 2).amax(dim=(3, 5))


def _encoder(cfg: CellConfig) -> nn.Sequential:
    """CELL x CELL -> ``hidden`` features: three 3 x 3 convs, halving the side twice, by 2 x 2
    max pooling after the first two (``pool``) or by the second and third conv's stride
    (``stride``: no pooling pass, a quarter of the work in those convs)."""
    c1, c2, c3 = cfg.channels
    if cfg.downsample == "pool":
        convs: list[nn.Module] = [nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), _Pool2(),
                                  nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), _Pool2(),
                                  nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU()]
    else:
        convs = [nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(),
                 nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
                 nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.ReLU()]
    return nn.Sequential(*convs, nn.Flatten(), nn.Linear(c3 * (CELL // 4) ** 2, cfg.hidden), nn.ReLU())


class CellNet(nn.Module):
    """Encoder to (logits, style) and class-conditional decoder, for CELL x CELL darkness patches.
    The decoder is two transposed convs (``deconv``) or a one-hidden-layer MLP (``mlp``: a few
    matrix products, much faster on a CPU for the handful of cells refinement touches)."""

    def __init__(self, cfg: CellConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or CellConfig()
        self.encoder = _encoder(cfg)
        self.head = nn.Linear(cfg.hidden, N_CLASSES + cfg.style)
        d = cfg.decoder
        if cfg.decoder_kind == "mlp":
            self.expand = nn.Linear(N_CLASSES + cfg.style, d)
            self.decoder = nn.Sequential(nn.ReLU(), nn.Linear(d, CELL * CELL))
        else:
            self.expand = nn.Linear(N_CLASSES + cfg.style, d * (CELL // 4) ** 2)
            self.decoder = nn.Sequential(
                nn.ReLU(), nn.ConvTranspose2d(d, d // 2, 4, stride=2, padding=1),
                nn.ReLU(), nn.ConvTranspose2d(d // 2, 1, 4, stride=2, padding=1),
            )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, N_CLASSES), style (B, style)) of cells (B, CELL, CELL)."""
        out = self.head(self.encoder(x.unsqueeze(1)))
        return out[:, :N_CLASSES], out[:, N_CLASSES:]

    def decode(self, probs: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Cells (B, CELL, CELL) rendered from class probabilities and style."""
        h = self.expand(torch.cat([probs, style], dim=1))
        if self.cfg.decoder_kind == "deconv":
            h = h.view(-1, self.cfg.decoder, CELL // 4, CELL // 4)
        return torch.sigmoid(self.decoder(h)).view(-1, CELL, CELL)


def save(model: CellNet, path: str | Path, info: dict[str, Any]) -> None:
    """Weights as safetensors, with the config and ``info`` as JSON in its metadata."""
    from safetensors.torch import save_file

    meta = {"config": json.dumps(attrs.asdict(model.cfg)), "info": json.dumps(info)}
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path), metadata=meta)


def load(path: str | Path) -> tuple[CellNet, dict[str, Any]]:
    """A CellNet and its info from a safetensors file written by :func:`save` (no pickle)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no vision checkpoint at {path}")
    if path.stat().st_size > 8 * MAX_CHECKPOINT_BYTES:
        raise ValueError(f"vision checkpoint {path} is {path.stat().st_size} bytes: not a cell model")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        cfg = CellConfig(**json.loads(meta["config"]))
        info = json.loads(meta.get("info", "{}"))
    except (SafetensorError, KeyError, TypeError, ValueError, OSError) as exc:
        raise ValueError(f"vision checkpoint {path} is not a valid cell model: {exc}") from None
    model = CellNet(cfg)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise ValueError(f"vision checkpoint {path} does not match its config: {exc}") from None
    return model.eval(), info
