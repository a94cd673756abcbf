"""Shipped weights: ``checkpoints/<name>.safetensors`` (model tensors in float16, config in JSON
metadata), loaded without pickle as float32; ``ship`` writes one from a training run's state."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from .model import Explainer, ModelConfig
from .train import read_state

CHECKPOINTS = Path(__file__).parent / "checkpoints"
DEFAULT = "nat"


def resolve(name_or_path: str | Path | None) -> Path:
    """A shipped name (``nat``, ``ar``), a run directory or a ``.safetensors`` file."""
    p = Path(name_or_path or DEFAULT)
    if p.is_dir():
        p = p / "state.safetensors"
    elif not p.suffix and (CHECKPOINTS / f"{p}.safetensors").exists():
        p = CHECKPOINTS / f"{p}.safetensors"
    if not p.exists():
        shipped = sorted(x.stem for x in CHECKPOINTS.glob("*.safetensors"))
        raise FileNotFoundError(f"no language checkpoint {name_or_path!r}: shipped are {shipped}; "
                                "train one with `sage train language --out DIR`")
    return p


_CACHE: dict[Path, Explainer] = {}


def load_model(name_or_path: str | Path | None = None) -> Explainer:
    """The model of a checkpoint in eval mode (cached per file)."""
    path = resolve(name_or_path).resolve()
    if path not in _CACHE:
        tensors, meta = read_state(path)
        if "config" not in meta:
            raise ValueError(f"{path} has no model config in its metadata")
        model = Explainer(ModelConfig(**meta["config"]))
        model.load_state_dict({k[6:]: v.float() for k, v in tensors.items() if k.startswith("model.")})
        _CACHE[path] = model.eval()
    return _CACHE[path]


def ship(run: str | Path, name: str, extra: dict | None = None) -> Path:
    """Write the weights of a run's state as ``checkpoints/<name>.safetensors`` (float16)."""
    tensors, meta = read_state(resolve(run))
    weights = {k: v.to(torch.float16).contiguous() for k, v in tensors.items() if k.startswith("model.")}
    CHECKPOINTS.mkdir(exist_ok=True)
    out = CHECKPOINTS / f"{name}.safetensors"
    keep = {k: meta[k] for k in ("config", "args", "step", "cpu_s")}
    save_file(weights, str(out), metadata={"meta": json.dumps({**keep, **(extra or {})})})
    return out
