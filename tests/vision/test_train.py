"""Training data, a tiny resumable training run, and checkpoints that refuse hostile files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from plugins.vision.model import MAZE_BASE, CellConfig, CellNet, allowed, load, save
from plugins.vision.train import AUGMENT, TrainArgs, Trainer, allowed_masks

pytest.importorskip("PIL", reason="rendering training images needs Pillow (the viz extra)")


def test_training_cells_do_not_depend_on_workers() -> None:
    from plugins.vision.data import training_cells

    one = training_cells(4, seed=3, workers=1)
    assert one[0].shape[1:] == (24, 24) and len(one[1]) == len(one[2]) > 0
    assert set(np.unique(one[1])) <= set(range(14)) and one[3] > 0
    again = training_cells(4, seed=3, workers=1)
    assert all(np.array_equal(a, b) for a, b in zip(one[:3], again[:3]))


def test_allowed_masks() -> None:
    y = torch.tensor([0, 3, MAZE_BASE + 1])
    m = allowed_masks(y, torch.tensor([4, 9, 11]))
    assert m[0].tolist() == allowed("sudoku", 4).tolist()
    assert m[1].tolist() == allowed("sudoku", 9).tolist()
    assert m[2].tolist() == allowed("maze", 11).tolist()


@pytest.mark.parametrize("name", sorted(AUGMENT))
def test_augmentations_keep_shape_and_range(name: str) -> None:
    x = torch.rand(8, 24, 24)
    out = AUGMENT[name](x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    assert not torch.equal(out, x)


def test_tiny_run_trains_resumes_and_ships(tmp_path: Path) -> None:
    args = TrainArgs(out=str(tmp_path), n_grids=4, epochs=1, batch=32)
    out = Trainer(args, log=lambda s: None).run()
    model, info = load(out)
    assert info["epochs"] == 1 and info["cells"] > 0
    more = Trainer(TrainArgs(out=str(tmp_path), n_grids=4, epochs=2, batch=32), log=lambda s: None).run()
    _, info2 = load(more)
    assert info2["epochs"] == 2 and len(info2["history"]) == 2
    assert info2["history"][0] == info["history"][0]


@pytest.mark.parametrize("cfg", [CellConfig(), CellConfig(channels=(16, 32, 64), hidden=128, decoder=128,
                                                       downsample="stride", decoder_kind="mlp")])
def test_both_architectures_encode_decode_and_round_trip(cfg: CellConfig, tmp_path: Path) -> None:
    model = CellNet(cfg)
    logits, style = model.encode(torch.rand(5, 24, 24))
    assert logits.shape == (5, 14) and style.shape == (5, cfg.style)
    assert model.decode(torch.softmax(logits, 1), style).shape == (5, 24, 24)
    save(model, tmp_path / "m.safetensors", {})
    back, _ = load(tmp_path / "m.safetensors")
    assert back.cfg == cfg
    assert torch.equal(back.encode(torch.ones(1, 24, 24))[0], model.eval().encode(torch.ones(1, 24, 24))[0])


def test_checkpoint_round_trip_and_hostile_files(tmp_path: Path) -> None:
    model = CellNet()
    save(model, tmp_path / "m.safetensors", {"note": "x"})
    back, info = load(tmp_path / "m.safetensors")
    assert info == {"note": "x"}
    for a, b in zip(model.state_dict().values(), back.state_dict().values()):
        assert torch.equal(a, b)
    (tmp_path / "evil.safetensors").write_bytes(pickle.dumps({"boom": 1}))
    with pytest.raises(ValueError, match="not a valid cell model"):
        load(tmp_path / "evil.safetensors")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.safetensors")
