"""Checkpoints without pickle: safetensors for tensors, JSON/msgpack for metadata.

``model.safetensors`` holds the weights and the fixed H_init/L_init buffers; the config is
stored in the safetensors metadata (key ``hrm_config``, JSON), so one file is self-contained.
A training run's resumable state (weights, EMA weights, optimizer moments, RNG, ACT slots, and
the msgpack metadata as a uint8 tensor) is one ``train_state.safetensors``, replaced atomically,
so a run killed at any point resumes from one consistent iteration. Runs written before that
(tensors beside ``train_state.msgpack``, weights in ``last/`` and ``ema/``) still load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgpack
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file, safe_open

from .config import HRMConfig
from .model import HRM

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
MODEL_FILE = "model.safetensors"


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def save_model(model: HRM, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    if path.suffix != ".safetensors":
        path.mkdir(parents=True, exist_ok=True)
        path = path / MODEL_FILE
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    meta = {"format": "hrm/1", "hrm_config": json.dumps(model.cfg.to_dict(), sort_keys=True)}
    if extra:
        meta["extra"] = json.dumps(extra, sort_keys=True)
    _atomic(path, lambda p: save_file(tensors, str(p), metadata=meta))
    return path


#: The shipped checkpoint a task's puzzles get when none is named (the best one for every input
#: a user gives; see the README's status table); a task not listed uses the checkpoint of its name.
DEFAULT_FOR_TASK: dict[str, str] = {"sudoku4": "sudoku4_any", "sudoku6": "sudoku6_any", "maze11": "maze11_any"}


def default_checkpoint(task: str) -> str:
    """The shipped checkpoint used for ``task`` when no checkpoint is named."""
    return DEFAULT_FOR_TASK.get(task, task)


def resolve(name_or_path: str | Path) -> Path:
    """A shipped checkpoint name (``sudoku4``), a directory, or a .safetensors file."""
    p = Path(name_or_path)
    if p.suffix == ".safetensors" and p.is_file():
        return p
    if (p / MODEL_FILE).is_file():
        return p / MODEL_FILE
    shipped = CHECKPOINT_DIR / str(name_or_path) / MODEL_FILE
    if shipped.is_file():
        return shipped
    avail = sorted(d.name for d in CHECKPOINT_DIR.iterdir() if (d / MODEL_FILE).is_file()) if CHECKPOINT_DIR.is_dir() else []
    raise FileNotFoundError(f"no HRM checkpoint {str(name_or_path)!r}: not a file/directory; shipped: {avail}")


def read_metadata(path: str | Path) -> dict[str, str]:
    with safe_open(str(resolve(path)), framework="pt") as f:
        return dict(f.metadata() or {})


def load_pretrained(name_or_path: str | Path = "sudoku4") -> HRM:
    """Load an HRM from a shipped checkpoint name or a path; eval mode, float32, CPU."""
    path = resolve(name_or_path)
    meta = read_metadata(path)
    if "hrm_config" not in meta:
        raise ValueError(f"{path}: not an HRM checkpoint (no 'hrm_config' metadata)")
    cfg = HRMConfig.from_dict(json.loads(meta["hrm_config"]))
    model = HRM(cfg)
    state = load_file(str(path))
    model.load_state_dict(state, strict=True)
    model.eval()
    return model


# --- training state -------------------------------------------------------------------

TRAIN_STATE = "train_state.safetensors"
_META_KEY = "meta.msgpack"  # the metadata, msgpack bytes as a uint8 tensor inside the same file
_LEGACY_META = "train_state.msgpack"


def save_train_state(out: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write the whole training state as one atomically replaced safetensors file."""
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    tensors[_META_KEY] = torch.frombuffer(bytearray(msgpack.packb(meta, use_bin_type=True)), dtype=torch.uint8)
    _atomic(out / TRAIN_STATE, lambda p: save_file(tensors, str(p)))
    (out / _LEGACY_META).unlink(missing_ok=True)  # superseded by the metadata inside the file


def load_train_state(out: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """(tensors, metadata) of the run in ``out``, or None if it has none. Tensors of the model
    weights are under ``model.`` (and ``ema.``); a run in the older two-file layout is read
    with its weights taken from ``last/`` and ``ema/``."""
    t = out / TRAIN_STATE
    if not t.is_file():
        return None
    try:
        tensors = load_file(str(t))
        if _META_KEY in tensors:
            raw = tensors.pop(_META_KEY).numpy().tobytes()
        else:
            raw = (out / _LEGACY_META).read_bytes()
            for prefix, sub in (("model.", "last"), ("ema.", "ema")):
                if (out / sub / MODEL_FILE).is_file():
                    tensors.update({prefix + k: v for k, v in load_file(str(out / sub / MODEL_FILE)).items()})
        meta = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except FileNotFoundError:
        raise ValueError(f"{out}: {TRAIN_STATE} has no metadata and there is no {_LEGACY_META}; "
                         "the training state is incomplete (delete it to start the run afresh)") from None
    except (OSError, ValueError, RuntimeError, SafetensorError, msgpack.UnpackException) as exc:
        raise ValueError(f"{t}: corrupt training state ({exc}); delete it to start the run afresh") from None
    if not isinstance(meta, dict) or "it" not in meta:
        raise ValueError(f"{t}: training state metadata is not a training state (no 'it')")
    return tensors, meta


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"opt.{idx}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups}


def optimizer_from_flat(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        if not key.startswith("opt."):
            continue
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = v
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})
