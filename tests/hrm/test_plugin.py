"""The HRM IRP plugin: conformance kit, input validation, batching, halting, hooks, CLI, shipped accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import sage_core
from sage_core.testing import check_plugin

from plugins.hrm import hooks
from plugins.hrm.evaluate import EVAL_SEED, evaluate_bare, task_inputs_to_puzzles
from plugins.hrm.checkpoint import load_pretrained
from plugins.hrm.plugin import HRMReasoner
from plugins.hrm.tasks import get_task


def test_conformance_kit() -> None:
    report = check_plugin(HRMReasoner)
    assert report.passed and len(report.results) >= 8


@pytest.mark.parametrize("bad, match", [
    ([[1, 2], [3, 4]], "Sudoku size 2x2 not supported"),
    ([[0, 0, 0], [0, 0, 0]], "square"),
    (np.full((4, 4), 7), r"cells must be in 0..4"),
    ([[0.5] * 4] * 4, "integers"),
    ([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], "no solution"),
    (["#####", "#S  #", "#####"], "exactly one G"),
    (["#####", "#S G#", "## #"], "equal length"),
    (["#####", "#SxG#", "#####"], "bad symbol 'x'"),
    (["####", "#SG#", "####", "####"], "maze size 4x4 not supported"),
    ("not a puzzle", "square"),
])
def test_malformed_input_names_problem(bad, match) -> None:
    with pytest.raises(ValueError, match=match):
        HRMReasoner().init_state(bad, {})


def test_step_is_pure_and_resets_carry() -> None:
    p = HRMReasoner()
    x0, ctx = HRMReasoner.example()
    s0 = p.init_state(x0, ctx)
    model = p.model_for("sudoku4")
    assert torch.equal(s0.carry["z_H"][0, 0], model.H_init)
    s1 = p.step(s0)
    assert s1.step == 1 and s0.step == 0 and s1 is not s0
    assert torch.equal(s0.carry["z_H"][0, 0], model.H_init)
    assert not torch.equal(s1.carry["z_H"], s0.carry["z_H"])
    # givens are kept by project, even if an answer is tampered with
    tampered = s1.evolve(x={**s1.x, "answer": np.zeros_like(s1.x["answer"])})
    fixed = p.project(tampered)
    given = s1.x["puzzle"] > 0
    assert np.array_equal(fixed.x["answer"][given], s1.x["puzzle"][given] - 1)


def test_step_batch_equals_step() -> None:
    p = HRMReasoner()
    task = get_task("sudoku4")
    x, _ = task.generate(6, EVAL_SEED + 7, "test")
    states = [p.init_state(g, {"seed": i, "max_steps": 12}) for i, g in enumerate(task_inputs_to_puzzles(task, x))]
    for _ in range(10):  # crosses an attempt boundary (restart under a symmetry)
        batched = p.step_batch(states)
        single = [p.step(s) for s in states]
        for b, s in zip(batched, single):
            assert b.step == s.step and b.meta == s.meta
            assert np.array_equal(b.x["answer"], s.x["answer"])
            torch.testing.assert_close(b.carry["z_H"], s.carry["z_H"], atol=1e-4, rtol=1e-4)
        states = batched
    assert max(s.meta["attempt"] for s in states) >= 1 or all(s.meta["best_violations"] == 0 for s in states)


def test_energy_and_halt() -> None:
    p = HRMReasoner()
    x0, ctx = HRMReasoner.example()
    r = sage_core.refine(p, x0, ctx, policy=sage_core.MaxSteps(40))
    assert r.decision.policy == "verified"
    assert r.energy < 1.0 and r.state.meta["best_violations"] == 0
    sol = HRMReasoner.solution(r.state)
    assert get_task("sudoku4").violations(sol.reshape(1, -1) - 1, np.asarray(x0).reshape(1, -1))[0] == 0
    # the initial (blank) answer has energy >= 1; bare mode halts by ACT or max segments
    assert p.energy(p.init_state(x0, ctx)) >= 1.0
    rb = sage_core.refine(p, x0, {**ctx, "mode": "bare"}, policy=sage_core.MaxSteps(40))
    assert rb.decision.policy in {"verified", "act", "max_segments"}
    assert rb.history.steps <= p.model_for("sudoku4").cfg.max_segments
    assert p.halt(sage_core.EnergyHistory.of([5.0])) is None


def test_hooks_register_plugin_and_commands(tmp_path) -> None:
    reg = sage_core.Registry()
    reg.add(hooks, name="hrm")
    assert reg.plugin_class("hrm") is HRMReasoner
    from sage_core.cli import build_cli

    cli = build_cli(reg)
    runner = CliRunner()
    out = tmp_path / "data"
    res = runner.invoke(cli, ["data", "make", "--task", "sudoku4", "--n", "30", "--seed", "0", "--out", str(out)])
    assert res.exit_code == 0, res.output
    x = np.load(out / "train_inputs.npy")
    assert x.shape == (30, 16) and json.loads((out / "train_meta.json").read_text())["n"] == 30
    res = runner.invoke(cli, ["eval", "hrm", "--task", "sudoku4", "--n", "40", "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    for key in ("task", "n", "exact_bare", "exact_irp", "cell_accuracy", "mean_segments", "max_segments", "puzzles_per_s"):
        assert key in r
    assert r["n"] == 40 and r["exact_irp"] >= r["exact_bare"] - 1e-9


def test_shipped_sudoku4_accuracy() -> None:
    model = load_pretrained("sudoku4")
    task = get_task("sudoku4")
    x, y = task.generate(200, EVAL_SEED + 11, "test")
    r = evaluate_bare(model, task, x, y)
    assert r["exact_bare"] >= 0.97, r


def test_train_command_runs_and_resumes(tmp_path) -> None:
    from sage_core.cli import build_cli

    reg = sage_core.Registry()
    reg.add(hooks, name="hrm")
    cli = build_cli(reg)
    out = tmp_path / "run"
    args = ["train", "hrm", "--task", "sudoku4", "--out", str(out), "--minutes", "0.01", "--n-train", "32",
            "--model", json.dumps({"hidden": 16, "heads": 2, "H_layers": 1, "L_layers": 1, "max_segments": 2}),
            "--no-progress"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert (out / "last" / "model.safetensors").is_file() and (out / "train_state.safetensors").is_file()
    res = CliRunner().invoke(cli, [*args[:7], "0.02", *args[8:]])
    assert res.exit_code == 0 and "resumed" in res.output, res.output
    assert load_pretrained(out / "last").cfg.hidden == 16


def _shipped() -> list[str]:
    from plugins.hrm.checkpoint import CHECKPOINT_DIR, MODEL_FILE

    return sorted(d.name for d in CHECKPOINT_DIR.iterdir() if (d / MODEL_FILE).is_file())


def test_expected_checkpoints_are_shipped() -> None:
    assert {"sudoku4", "sudoku6", "maze11", "maze11_trm"} <= set(_shipped())


@pytest.mark.parametrize("name", _shipped())
def test_shipped_checkpoint_matches_its_card(name: str) -> None:
    """A shipped checkpoint reproduces (within sampling error) the accuracy recorded when it was shipped."""
    from plugins.hrm.checkpoint import CHECKPOINT_DIR, read_metadata

    path = CHECKPOINT_DIR / name / "model.safetensors"
    assert path.stat().st_size <= 5 * 1024 * 1024 and (CHECKPOINT_DIR / name / "card.md").is_file()
    extra = json.loads(read_metadata(path).get("extra", "{}"))
    model = load_pretrained(name)
    task = get_task(model.cfg.task)  # a checkpoint name need not be a task name (e.g. a variant's)
    x, y = task.generate(100, EVAL_SEED + 21, "test")
    r = evaluate_bare(model, task, x, y)
    recorded = extra.get("exact_bare", 0.97 if name == "sudoku4" else 0.0)
    assert r["exact_bare"] >= recorded - 0.08, (r, recorded)


_RESUME_SCRIPT = """
import sys, msgpack, torch
from safetensors.torch import load_file, save_file
from plugins.hrm.plugin import HRMReasoner
d = sys.argv[1]
p = HRMReasoner()
s = p.import_state(load_file(d + "/state.safetensors"), msgpack.unpackb(open(d + "/meta.msgpack", "rb").read()))
for _ in range(3):
    s = p.project(p.step(s))
t, m = p.export_state(s)
save_file(t, d + "/out.safetensors")
open(d + "/out.msgpack", "wb").write(msgpack.packb(m))
"""


def test_resume_in_fresh_process_is_bit_exact(tmp_path) -> None:
    import subprocess
    import sys

    import msgpack
    from safetensors.torch import load_file, save_file

    from sage_core.testing.compare import assert_trees_equal

    p = HRMReasoner()
    task = get_task("sudoku4")
    x, _ = task.generate(1, EVAL_SEED + 3, "test")
    s = p.init_state(x[0].reshape(4, 4), {"seed": 1, "mode": "bare", "max_steps": 8})
    for _ in range(2):
        s = p.project(p.step(s))
    t, m = p.export_state(s)
    save_file(t, str(tmp_path / "state.safetensors"))
    (tmp_path / "meta.msgpack").write_bytes(msgpack.packb(m))
    for _ in range(3):
        s = p.project(p.step(s))
    expected = p.export_state(s)
    subprocess.run([sys.executable, "-c", _RESUME_SCRIPT, str(tmp_path)], check=True, timeout=120)
    got = (load_file(str(tmp_path / "out.safetensors")), msgpack.unpackb((tmp_path / "out.msgpack").read_bytes()))
    assert got[1]["step"] == 5
    def canon(tm):
        return dict(sorted(tm[0].items())), tm[1]

    assert_trees_equal(canon(expected), canon(got), "state resumed in a fresh process")
