"""The HRM on inputs outside the shipped training distributions: eval slices (--blanks,
--sg-distance) and the training options that learn them (mixtures, init, guided labels)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from plugins.hrm.evaluate import run_eval, slice_distribution
from plugins.hrm.tasks import Distribution, get_task
from plugins.hrm.train import Trainer, recipe
from plugins.puzzles import maze, sudoku
from sage_core.cli import build_cli


def test_slices_are_checked_against_the_task():
    with pytest.raises(ValueError, match="--blanks applies to Sudoku"):
        slice_distribution(get_task("maze11"), blanks=(3, 4))
    with pytest.raises(ValueError, match="--sg-distance applies to maze"):
        slice_distribution(get_task("sudoku4"), sg_distance=(1, 2))
    with pytest.raises(ValueError, match="HI <= 16"):
        slice_distribution(get_task("sudoku4"), blanks=(13, 17))
    assert slice_distribution(get_task("sudoku4")) is None
    assert slice_distribution(get_task("sudoku6"), blanks=(27, 30)) == Distribution(blanks=(27, 30), unique=False)


def test_slice_puzzles_are_what_they_say():
    x, _ = get_task("sudoku6").generate(30, 1, "test", slice_distribution(get_task("sudoku6"), blanks=(27, 30)))
    blanks = (x == 0).sum(1)
    assert blanks.min() >= 27 and blanks.max() <= 30
    assert any(sudoku.count_solutions(g.reshape(6, 6), limit=2) > 1 for g in x)  # several completions occur
    x, _ = get_task("maze11").generate(20, 1, "test", slice_distribution(get_task("maze11"), sg_distance=(1, 2)))
    assert all(1 <= maze.distance(g.reshape(11, 11)) <= 2 for g in x)


def test_default_distribution_draws_the_shipped_test_set():
    a = get_task("sudoku4").generate(20, 5, "test")
    b = get_task("sudoku4").generate(20, 5, "test", Distribution())
    c = get_task("sudoku4").generate(20, 5, "test", Distribution(blanks=(6, 12), unique=False))
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])


def test_eval_cli_slices():
    runner = CliRunner()
    cli = build_cli()
    res = runner.invoke(cli, ["eval", "hrm", "--task", "sudoku4", "--n", "40", "--blanks", "13-15", "--no-irp", "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    assert r["blanks"] == [13, 15] and r["n"] == 40 and 0.0 <= r["exact_bare"] <= 1.0
    res = runner.invoke(cli, ["eval", "hrm", "--task", "sudoku4", "--blanks", "15"])
    assert res.exit_code == 2 and "expected LO-HI" in res.output
    res = runner.invoke(cli, ["eval", "hrm", "--task", "sudoku4", "--sg-distance", "1-2"])
    assert res.exit_code == 2 and "--sg-distance applies to maze" in res.output


def test_run_eval_maze_slice_reports_it():
    r = run_eval("maze11", n=8, irp=False, sg_distance=(21, 10**6))
    assert r["sg_distance"] == [21, 10**6] and r["n"] == 8


def test_recipe_names_its_task_and_rejects_unknown_ones(tmp_path):
    args = recipe("sudoku4-any", out=str(tmp_path))
    assert args.task == "sudoku4" and args.init == "sudoku4" and args.relabel and len(args.data) == 2
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe("sudoku5", out=str(tmp_path))


def test_fine_tune_with_guided_labels(tmp_path):
    """A fine-tune starts from the shipped weights, and every slot whose puzzle has several
    completions is labelled with a valid completion (the one nearest the model's answer)."""
    args = recipe("sudoku4-any", out=str(tmp_path / "run"), n_train=64, batch_size=16, eval_n=8, max_iters=3,
                  eval_every=10**9, ckpt_every_s=10**9, data=[{"blanks": [12, 16], "unique": False}])
    t = Trainer(args, log=lambda s: None)
    shipped = __import__("plugins.hrm.checkpoint", fromlist=["x"]).load_pretrained("sudoku4")
    for k, v in shipped.state_dict().items():
        assert np.array_equal(v.numpy(), t.model.state_dict()[k].numpy()), k
    assert t.multi_train.mean() > 0.5
    t.run(progress=False)
    assert t.it == 3
    multi = np.nonzero(t.slot_multi)[0]
    assert len(multi) > 0
    x, y = t.inputs.numpy()[multi], t.labels.numpy()[multi]
    assert (get_task("sudoku4").violations(y, x) == 0).all()


def test_plugin_defaults_to_the_best_checkpoint_for_every_input():
    from plugins.hrm.checkpoint import CHECKPOINT_DIR, DEFAULT_FOR_TASK, default_checkpoint
    from plugins.hrm.plugin import HRMReasoner

    for task, name in DEFAULT_FOR_TASK.items():
        assert (CHECKPOINT_DIR / name / "model.safetensors").is_file(), name
        assert default_checkpoint(task) == name
    assert default_checkpoint("maze13") == "maze13"  # unlisted: the checkpoint of its name
    p = HRMReasoner()
    assert p.model_for("sudoku6") is p._model_cache[DEFAULT_FOR_TASK["sudoku6"]]
    # a 6x6 with several completions (29 blanks) is solved by default
    puzzle, _ = sudoku.make_puzzle(6, np.random.default_rng(4), blanks=29, unique=False)
    from sage_core import MaxSteps, refine

    r = refine(p, puzzle, {"seed": 0}, policy=MaxSteps(32))
    assert sudoku.violations(HRMReasoner.solution(r.state), puzzle) == 0
