"""`sage demo visual-sudoku` reduced for CI: one held-out picture read, solved and explained
through examples/pipelines/visual_sudoku.toml; and its feedback cycle on a picture that shows
two equal digits in one row, checkpointed mid-cycle and resumed in a fresh process."""

import copy
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from orchestrator import Pipeline, PipelineError
from orchestrator.demo import demo_command, read_spec, run_resumed
from plugins.vision.feedback import sudoku_conflicts
from sage_core import get_registry

PIL = pytest.importorskip("PIL.Image")
LANGUAGE_SHIPPED = any((Path(__file__).parents[2] / "plugins" / "language" / "checkpoints").glob("*.safetensors"))


def test_the_demo_reads_solves_and_resumes_one_picture_and_writes_its_pngs(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(demo_command, ["visual-sudoku", "--out", str(out), "--store", str(tmp_path / "s")])
    text = result.output
    assert result.exit_code == 0, text
    assert "resumed session is bit-identical to the uninterrupted run (states and energies of 3 nodes)" in text
    assert "reading: 36/36 cells as drawn" in text and "solution: verified" in text
    if LANGUAGE_SHIPPED:
        assert "explanation (verified)" in text and "[FALSE]" not in text
    else:  # one line saying why, no made-up text
        assert "explanation: none (error: step 1 raised FileNotFoundError: no language checkpoint" in text
    pictures = {name: PIL.open(out / name) for name in ("puzzle.png", "solved.png", "energy.png")}
    for picture in pictures.values():
        picture.load()  # decodes
    assert pictures["solved.png"].size == pictures["puzzle.png"].size and pictures["solved.png"].mode == "RGB"
    assert min(pictures["puzzle.png"].size) >= 300 and pictures["energy.png"].size == (700, 450)
    # the solution digits are drawn in blue into the blanks, nowhere else in that colour
    solved = np.asarray(pictures["solved.png"]).astype(int)
    assert ((solved[..., 2] - solved[..., 0]) > 100).sum() > 500


def clashing_picture(path: Path, seed: int) -> list[list[int]]:
    """A held-out puzzle drawn with a blank of its first row filled by a digit that row has."""
    registry = get_registry()
    grid = copy.deepcopy(registry.plugin_class("hrm").held_out_puzzles("sudoku6", 1, seed=9001 + seed)[0])
    row = grid[0]
    row[row.index(0)] = next(v for v in row if v)
    PIL.fromarray(registry.plugin_class("vision").render_held_out(grid, seed)).save(path)
    return grid


def test_the_solver_feeds_the_clash_back_and_the_reader_resolves_it_resumed_mid_cycle(tmp_path):
    drawn = clashing_picture(tmp_path / "clash.png", seed=0)
    spec = read_spec("visual_sudoku.toml")
    spec["nodes"]["reader"]["input"] = str(tmp_path / "clash.png")
    spec["nodes"].pop("explainer")  # the cycle alone
    spec["edges"] = [edge for edge in spec["edges"] if edge["to"] != "explainer"]
    reference, snapshot = run_resumed(spec, tmp_path / "store", lambda *args: None)
    reader, solver = reference["reader"], reference["solver"]
    assert solver.reason == "verified" and solver.fault is None and reader.fault is None
    assert reader.state.meta["feedback"] >= 1  # the conflicts reached the reader
    final = np.asarray(solver.state.x["puzzle"]).reshape(6, 6)
    clash = sudoku_conflicts(np.asarray(drawn))
    assert clash.any() and not sudoku_conflicts(final).any()
    assert (final[~clash] == np.asarray(drawn)[~clash]).all()  # only the clashing cells were re-read
    assert snapshot.orchestrator["nodes"]["solver"]["energies"] == list(solver.energies)
    assert len(solver.energies) > 4  # the checkpoint fell inside the cycle, not after it


def test_the_pipeline_builds_from_its_toml_with_the_kinds_checked():
    pipeline = Pipeline.from_dict(read_spec("visual_sudoku.toml"))
    assert [node.name for node in pipeline.nodes] == ["reader", "solver", "explainer"]
    edges = {(e.source, e.target, e.feedback, e.to) for name in ("solver", "explainer") for e in pipeline.in_edges(name)}
    assert edges == {("reader", "solver", False, "input"), ("solver", "explainer", False, "input")}
    assert [(e.target, e.feedback, e.to) for e in pipeline.in_edges("reader")] == [("reader", True, "cell_conflicts")]
    assert pipeline.cycles() == [frozenset({"reader", "solver"})]


def test_a_feedback_edge_carrying_another_kind_into_the_reader_is_refused_when_built():
    spec = read_spec("visual_sudoku.toml")
    spec["edges"][1] = {**spec["edges"][1], "bridge": "solution_path"}  # solved_puzzle -> path
    with pytest.raises(PipelineError, match="edge 'solver'->'reader'.*'path'.*'cell_conflicts'"):
        Pipeline.from_dict(spec)
