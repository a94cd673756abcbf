"""The vision plugin: reading rendered images, refinement, feedback, errors, conformance, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from sage_core import get_registry
from sage_core.testing import check_plugin
from plugins.vision import VisionReader
from plugins.vision.examples import example_image
from plugins.vision.feedback import reread, sudoku_conflicts
from plugins.vision.image import ImageError
from plugins.vision.model import load
from plugins.vision.plugin import CHECKPOINT

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reader() -> VisionReader:
    return VisionReader()


def test_shipped_checkpoint_is_small_safetensors_with_a_card() -> None:
    assert CHECKPOINT.stat().st_size <= 2 * 1024 * 1024
    model, info = load(CHECKPOINT)
    assert info["cpu_minutes"] <= 30
    assert (CHECKPOINT.parent / "card.md").is_file()


def test_registered_with_kinds() -> None:
    cls = get_registry().plugin_class("vision")
    assert cls is VisionReader
    assert VisionReader.input_kind == "image"
    assert VisionReader().output_kind == "sudoku_grid"
    assert VisionReader(kind="maze").output_kind == "maze_grid"
    with pytest.raises(ValueError, match="kind must be"):
        VisionReader(kind="crossword")


@pytest.mark.parametrize("kind, size", [("sudoku", 4), ("sudoku", 6), ("sudoku", 9), ("maze", 11), ("maze", 13)])
def test_reads_each_kind_and_size(reader: VisionReader, kind: str, size: int) -> None:
    pytest.importorskip("PIL", reason="rendering test images needs Pillow (the viz extra)")
    from plugins.vision import data

    right = total = 0
    for s in data.eval_samples(kind, size, "clean", 2, seed=31):
        state = reader.init_state(s.image, {})
        assert (state.meta["kind"], state.meta["size"]) == (kind, size)
        got = data.labels(VisionReader.reading(state), kind)
        truth = data.labels(s.grid, kind)
        right += int((got == truth).sum())
        total += truth.size
        beliefs = VisionReader.beliefs(state)
        assert beliefs.shape == (size, size, size + 1 if kind == "sudoku" else 4)
        assert np.allclose(beliefs.sum(-1), 1.0, atol=1e-5)
    assert right / total >= 0.97


def test_output_is_the_hrm_input_format(reader: VisionReader) -> None:
    state = reader.init_state(example_image(), {})
    grid = VisionReader.reading(state)
    assert isinstance(grid, list) and len(grid) == 4 and all(isinstance(v, int) for row in grid for v in row)
    from plugins.hrm.plugin import parse_puzzle  # the test (not the plugin) checks against the HRM

    task, tokens = parse_puzzle(grid)
    assert task.name == "sudoku4" and tokens.shape == (16,)


def test_numpy_input_needs_no_pillow(reader: VisionReader, monkeypatch: pytest.MonkeyPatch) -> None:
    image = example_image()
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    assert reader.init_state(image, {}).meta["size"] == 4
    with pytest.raises(ImportError, match=r"pip install 'sage-irp\[viz\]'"):
        reader.init_state("grid.png", {})


def test_reads_png_and_pil_image(reader: VisionReader, tmp_path: Path) -> None:
    image_mod = pytest.importorskip("PIL.Image", reason="files and PIL images need Pillow")
    img = image_mod.fromarray(example_image())
    img.save(tmp_path / "grid.png")
    want = VisionReader.reading(reader.init_state(example_image(), {}))
    assert VisionReader.reading(reader.init_state(str(tmp_path / "grid.png"), {})) == want
    assert VisionReader.reading(reader.init_state(img, {})) == want


@pytest.mark.parametrize("image, ctx, message", [
    (42, {}, "not an image"),
    (np.zeros((50, 50), dtype=np.uint8), {}, "image too small"),
    (np.full((200, 200), 235, dtype=np.uint8), {}, "no grid found"),
    ("/nope/missing.jpg", {}, "unreadable image file"),
    (None, {"size": 5}, "unsupported size"),
    (None, {"size": "9"}, "size must be an int"),
])
def test_bad_inputs(reader: VisionReader, image: object, ctx: dict, message: str) -> None:
    if image is None:
        image = example_image()
    with pytest.raises(ValueError, match=message):
        reader.init_state(image, ctx)


def test_digit_outside_range(reader: VisionReader) -> None:
    pytest.importorskip("PIL", reason="drawing the test image needs Pillow")
    from plugins.puzzles import render

    grid = np.array([[9, 0, 0, 0], [0, 8, 0, 0], [0, 0, 7, 0], [0, 0, 0, 0]])
    img, _, _ = render._draw_sudoku(grid, render.Style(cell_px=40), np.random.default_rng(0))
    with pytest.raises(ImageError, match="digit outside 1..4"):
        reader.init_state(np.asarray(img), {})


def test_refinement_steps_and_halts(reader: VisionReader) -> None:
    state = reader.init_state(example_image(), {"max_steps": 3})
    e0 = reader.energy(state)
    assert np.isfinite(e0)
    for _ in range(3):
        state = reader.step(state)
    assert state.step == 3
    assert reader.halt_state(state) is not None
    assert torch.equal(state.x["cells"], reader.init_state(example_image(), {}).x["cells"])


def test_settled_cells_do_not_move(reader: VisionReader) -> None:
    state = reader.init_state(example_image(), {})
    nxt = reader.step(state)
    settled = state.x["settled"]
    assert torch.equal(nxt.x["logits"][settled], state.x["logits"][settled])
    assert torch.equal(nxt.x["style"][settled], state.x["style"][settled])


def test_each_step_adds_the_next_look_to_the_prior_of_unsettled_cells(reader: VisionReader) -> None:
    from plugins.vision import data
    from plugins.vision.model import allowed
    from plugins.vision.plugin import VIEWS

    states = (reader.init_state(s.image, {}) for s in data.eval_samples("sudoku", 9, "hard", 20))
    state = next(s for s in states if not s.x["settled"].all())  # a grid with doubtful cells
    active = torch.nonzero(~state.x["settled"]).squeeze(1)
    assert len(active) and state.x["views"].shape[:2] == (len(VIEWS), len(active))
    seen, _ = reader.model.encode(state.x["views"][0, state.x["view_of"][active]])
    seen = torch.log_softmax(seen.masked_fill(~allowed("sudoku", 9), -1e4), -1)
    nxt = reader.step(state)
    assert torch.allclose(nxt.x["prior"][active], (state.x["prior"][active] + seen) / 2)
    assert torch.equal(nxt.x["prior"][state.x["settled"]], state.x["prior"][state.x["settled"]])


def test_the_readers_own_step_limit_leaves_it_open_to_feedback_on_a_cycle(reader: VisionReader) -> None:
    from orchestrator._orchestrator import FINAL_POLICIES
    from plugins.vision import data

    states = (reader.init_state(s.image, {"max_steps": 1}) for s in data.eval_samples("sudoku", 9, "hard", 20))
    state = reader.step(next(s for s in states if not s.x["settled"].all()))
    decision = reader.halt_state(state)
    assert decision is not None and decision.policy == "refined"
    assert decision.policy not in FINAL_POLICIES  # a pipeline's feedback edge can still wake it


def test_refinement_reads_held_out_hard_grids_better_than_the_encoder(reader: VisionReader) -> None:
    from plugins.vision import data
    from plugins.vision.evaluate import read_stages

    wrong = {"encoder": 0, "refined": 0}
    for sample in data.eval_samples("sudoku", 9, "hard", 12):
        got = read_stages(reader, sample.image)[0]
        for stage in wrong:
            wrong[stage] += int((got[stage] != data.labels(sample.grid, "sudoku")).sum())
    assert wrong["refined"] < wrong["encoder"], wrong


def test_feedback_rereads_an_ambiguous_cell_under_the_constraints(reader: VisionReader) -> None:
    state = reader.init_state(example_image(), {})
    truth = np.array([[4, 3, 0, 0], [0, 0, 0, 0], [0, 0, 2, 1], [2, 0, 3, 0]])
    assert VisionReader.reading(state) == truth.tolist()
    # make cell (0, 0) ambiguous: a 3 (which repeats the 3 beside it) at 0.55, the true 4 at 0.45
    logits = state.x["logits"].clone()
    logits[0, :5] = torch.log(torch.tensor([1e-6, 1e-6, 1e-6, 0.55, 0.45]))
    ambiguous = state.evolve(x={**state.x, "logits": logits},
                             meta={**state.meta, "reading": [[3, 3, 0, 0]] + truth.tolist()[1:]})
    flagged = sudoku_conflicts(np.array(VisionReader.reading(ambiguous)))
    assert flagged[0, 0] and flagged[0, 1] and flagged.sum() == 2
    fixed = reader.receive(ambiguous, "cell_conflicts", flagged)
    assert VisionReader.reading(fixed) == truth.tolist()
    assert fixed.meta["feedback"] == 1
    assert not sudoku_conflicts(np.array(VisionReader.reading(fixed))).any()


def test_feedback_bad_arguments(reader: VisionReader) -> None:
    state = reader.init_state(example_image(), {})
    with pytest.raises(ValueError, match="cell_conflicts"):
        reader.receive(state, "hints", np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="4 x 4"):
        reader.receive(state, "cell_conflicts", np.zeros((9, 9), bool))
    assert reader.receive(state, "cell_conflicts", np.zeros((4, 4), bool)) is state


@given(st.integers(0, 10_000), st.sampled_from([4, 6, 9]), st.integers(1, 6))
@settings(max_examples=40, deadline=None)
def test_reread_gives_a_valid_reading_and_keeps_other_cells(seed: int, n: int, k: int) -> None:
    from plugins.puzzles import sudoku

    rng = np.random.default_rng(seed)
    puzzle, _ = sudoku.make_puzzle(n, rng)
    flat = puzzle.reshape(-1)
    probs = np.full((n * n, n + 1), 1e-3)
    probs[np.arange(n * n), flat] = 1.0
    flagged = np.zeros(n * n, bool)
    flagged[rng.choice(n * n, size=k, replace=False)] = True
    for i in np.flatnonzero(flagged):  # misread: a random wrong class leads, the true one second
        wrong = (flat[i] + 1 + rng.integers(n)) % (n + 1)
        probs[i] = 1e-3
        probs[i, wrong], probs[i, flat[i]] = 0.6, 0.3
    probs /= probs.sum(1, keepdims=True)
    out = reread(probs, flagged, "sudoku", n)
    assert out is not None  # the true reading is among the candidates
    grid = out.reshape(n, n)
    assert not sudoku_conflicts(grid).any() and sudoku.has_solution(grid)
    assert np.array_equal(out[~flagged], flat[~flagged])


def test_conformance() -> None:
    report = check_plugin(VisionReader, raise_on_failure=False)
    assert report.passed, [f"{r.check}: {r.detail}" for r in report.failures]


RESUME_SCRIPT = """
import hashlib, json, sys, msgpack
from safetensors.torch import load_file
from plugins.vision import VisionReader
from plugins.vision.examples import example_image
tensors = load_file(sys.argv[1]); meta = msgpack.unpackb(open(sys.argv[2], 'rb').read(), raw=False)
r = VisionReader(); s = r.import_state(tensors, meta)
for _ in range(int(sys.argv[3])):
    s = r.step(s)
t, m = r.export_state(s)
print(json.dumps({"reading": VisionReader.reading(s), "energy": r.energy(s),
                  "digest": hashlib.sha256(b"".join(t[k].numpy().tobytes() for k in sorted(t))).hexdigest()}))
"""


def test_resume_mid_refinement_in_a_fresh_process(reader: VisionReader, tmp_path: Path) -> None:
    import hashlib

    import msgpack
    from safetensors.torch import save_file

    state = reader.init_state(example_image(), {"max_steps": 8})
    assert not bool(state.x["settled"].all()), "the example must leave cells to refine"
    mid = reader.step(reader.step(state))
    tensors, meta = reader.export_state(mid)
    save_file(tensors, str(tmp_path / "state.safetensors"))
    (tmp_path / "meta.msgpack").write_bytes(msgpack.packb(meta, use_bin_type=True))
    full = mid
    for _ in range(3):
        full = reader.step(full)
    t, _ = reader.export_state(full)
    want = hashlib.sha256(b"".join(t[k].numpy().tobytes() for k in sorted(t))).hexdigest()
    out = subprocess.run([sys.executable, "-c", RESUME_SCRIPT, str(tmp_path / "state.safetensors"),
                          str(tmp_path / "meta.msgpack"), "3"], capture_output=True, text=True, cwd=ROOT, check=True)
    got = json.loads(out.stdout)
    assert got["digest"] == want
    assert got["energy"] == reader.energy(full)
    assert got["reading"] == VisionReader.reading(full)
