"""The inference ACT margin: the rule, its search on validation puzzles, the plugin and ``ship``."""

from __future__ import annotations

import json

import attrs
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from plugins.hrm import checkpoint as ckpt
from plugins.hrm import ship
from plugins.hrm.evaluate import act_segments, evaluate_bare, slice_distribution, tune_halt_margin
from plugins.hrm.plugin import HRMReasoner
from plugins.hrm.tasks import get_task
from plugins.hrm.train import generate_mixture

from .test_model import _train, tiny

margins = hnp.arrays(np.float32, st.tuples(st.integers(1, 8), st.integers(1, 6)),
                     elements=st.floats(-10, 10, width=32))


@settings(max_examples=200, deadline=None)
@given(q=margins, a=st.floats(-12, 12), b=st.floats(-12, 12))
def test_act_segments_is_the_first_segment_over_the_margin(q: np.ndarray, a: float, b: float) -> None:
    S = q.shape[0]
    seg = act_segments(q, a)
    for n in range(q.shape[1]):
        over = [s for s in range(S - 1) if q[s, n] > np.float32(a)]
        assert seg[n] == (over[0] + 1 if over else S)
    lo, hi = sorted((a, b))
    assert (act_segments(q, lo) <= act_segments(q, hi)).all()  # a larger margin never halts sooner


def test_model_rule_matches_the_evaluation_rule() -> None:
    model = tiny(halt_margin=0.5)
    qh, qc = torch.tensor([0.0, 1.0, 2.0, 0.6]), torch.tensor([0.0, 0.0, 1.5, 0.0])
    assert model.act_halt(qh, qc).tolist() == [False, True, False, True]
    q = (qh - qc).numpy()[None].repeat(2, 0)
    assert (act_segments(q, 0.5) == np.where(model.act_halt(qh, qc).numpy(), 1, 2)).all()


def test_tuned_margin_is_the_best_row_and_evaluates_as_tabled() -> None:
    model = ckpt.load_pretrained("sudoku4")
    task = get_task("sudoku4")
    x, y = task.generate(64, 77, "test")
    margin, table = tune_halt_margin(model, task, x, margins=(-100.0, -2.0, 0.0, 2.0, 100.0))
    pick = next(row for row in table if row["margin"] == margin)
    assert all((pick["exact"], -pick["mean_segments"]) >= (row["exact"], -row["mean_segments"]) for row in table)
    # every row is what evaluate_bare reports for a model that carries that margin
    for row in table:
        model.cfg = attrs.evolve(model.cfg, halt_margin=row["margin"])
        r = evaluate_bare(model, task, x, y)
        assert (r["exact_bare"], r["mean_segments"]) == pytest.approx((row["exact"], row["mean_segments"]))
    assert (table[0]["mean_segments"], table[-1]["mean_segments"]) == (1.0, model.cfg.max_segments)  # -100 halts at once, 100 never early


@pytest.mark.parametrize("margin,halted", [(-1e9, True), (1e9, False)])
def test_plugin_bare_mode_halts_by_the_checkpoint_margin(tmp_path, margin: float, halted: bool) -> None:
    model = ckpt.load_pretrained("sudoku4")
    model.cfg = attrs.evolve(model.cfg, halt_margin=margin)
    path = ckpt.save_model(model, tmp_path / "m")
    assert ckpt.load_pretrained(path).cfg.halt_margin == margin
    plugin = HRMReasoner(checkpoint=str(path))
    puzzle = get_task("sudoku4").generate(1, 5, "test")[0][0].reshape(4, 4)
    state = plugin.step(plugin.init_state(puzzle, {"mode": "bare"}))
    assert state.meta["act_halted"] is halted
    assert (plugin.halt_state(state) is not None) is (halted or state.meta["violations"] == 0)


def test_ship_auto_margin_and_segment_ceiling_go_to_config_and_card(tmp_path, monkeypatch) -> None:
    _train(tmp_path / "run", 4)  # trained with max_segments 3
    monkeypatch.setattr(ship, "CHECKPOINT_DIR", tmp_path / "shipped")
    ship.main(["--run", str(tmp_path / "run"), "--name", "tiny4", "--n", "16", "--halt-margin", "auto",
               "--max-segments", "5", "--slice-n", "8"])
    shipped = ckpt.load_pretrained(tmp_path / "shipped" / "tiny4")
    trained = ckpt.load_pretrained(tmp_path / "run" / "best")
    assert (trained.cfg.max_segments, shipped.cfg.max_segments) == (3, 5)
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in shipped.state_dict().items())  # same weights
    task = get_task("sudoku4")
    trained.cfg = attrs.evolve(trained.cfg, max_segments=5)  # the margin is searched under the new ceiling
    dists = [None, *(slice_distribution(task, **kw) for kw in ship.INPUT_SLICES["sudoku4"])]  # own set + slices
    expect, _ = tune_halt_margin(trained, task, generate_mixture(task, 16, 9002, "test", dists)[0])
    assert shipped.cfg.halt_margin == expect
    card = (tmp_path / "shipped" / "tiny4" / "card.md").read_text()
    assert f"halts when q_halt - q_continue > {expect:g}" in card
    assert "--max-segments 5 --halt-margin auto" in card and "up to 5 ACT segments; training ran up to 3" in card
    meta = json.loads(ckpt.read_metadata(tmp_path / "shipped" / "tiny4" / "model.safetensors")["extra"])
    assert meta["eval_n"] == 16
    ship.main(["--name", "tiny4", "--slices-only", "--slice-n", "4"])  # re-measured: the section is replaced
    card = (tmp_path / "shipped" / "tiny4" / "card.md").read_text()
    assert card.count("## Every input (slices)") == 1 and "--blanks LO-HI --n 4`" in card
    assert card.index("## Every input (slices)") < card.index("## Training")
