"""`sage demo robot` for CI: examples/pipelines/robot.toml builds with its kinds checked; one short
held-out maze picture is read, solved and driven to the goal by the MuJoCo ball (the env's own
success test), and its pictures decode at their sizes; a missing extra or a path that does not fit
the maze is one clear line."""

import importlib.util

import click
import pytest
from click.testing import CliRunner

from orchestrator import Pipeline
from orchestrator.demo import DEMOS, demo_command, read_spec
from orchestrator.demo_robot import held_out_maze, maze_picture

import plugins.world  # noqa: F401  (sets a headless MUJOCO_GL before mujoco is imported)

PIL = pytest.importorskip("PIL.Image")
pytest.importorskip("mujoco", reason="the robot demo needs the mujoco extra: pip install 'sage-irp[mujoco]'")
pytest.importorskip("gymnasium_robotics", reason="the robot demo needs the mujoco extra: pip install 'sage-irp[mujoco]'")


def test_the_pipeline_builds_from_its_toml_with_the_kinds_checked():
    pipeline = Pipeline.from_dict(read_spec("robot.toml"))
    assert [node.name for node in pipeline.nodes] == ["reader", "solver", "driver"]
    reader, solver, driver = pipeline.node("reader"), pipeline.node("solver"), pipeline.node("driver")
    assert (reader.input_kind, reader.output_kind) == ("image", "maze_grid")
    assert "maze_grid" in solver.input_kind and solver.output_kind == "solved_puzzle"
    assert (driver.plugin_name, driver.input_kind, driver.output_kind) == ("world_pointmaze", "solved_puzzle", "plan")
    assert DEMOS["robot"].pipeline == "robot.toml"


def test_one_held_out_maze_is_read_solved_and_driven_to_the_goal(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(demo_command, ["robot", "--out", str(out), "--seed", "0"])
    text = result.output
    assert result.exit_code == 0, text
    assert "reading (confident): matches the maze as drawn" in text
    assert "HRM path (verified): 14 moves, verified shortest S -> G" in text
    assert "reached the goal in" in text and "0 wall contact(s)" in text and "ms per control step" in text
    pictures = {name: PIL.open(out / name) for name in ("maze.png", "path.png", "robot.gif")}
    for picture in pictures.values():
        picture.load()  # decodes
    assert pictures["maze.png"].size == maze_picture(held_out_maze(0), 0).shape[::-1]
    assert pictures["path.png"].size == (660, 660)
    gif = pictures["robot.gif"]
    assert gif.size == (320, 320) and gif.n_frames > 20 and gif.is_animated
    gif.seek(gif.n_frames - 1)
    gif.load()  # the last frame decodes too


def test_a_missing_mujoco_is_one_line_naming_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mujoco" else real(name, *a))
    result = CliRunner().invoke(demo_command, ["robot", "--out", "unused"])
    assert result.exit_code != 0
    assert result.output.strip() == "Error: sage demo robot needs mujoco: pip install 'sage-irp[mujoco]'"


def test_a_negative_seed_is_a_clear_error():
    with pytest.raises(click.ClickException, match="--seed must be >= 0"):
        held_out_maze(-1)


def test_the_pipeline_checkpointed_mid_drive_resumes_bit_identically_in_a_fresh_process(tmp_path):
    from orchestrator.demo import run_resumed, with_input, write_image

    picture = write_image(maze_picture(held_out_maze(1), 1), tmp_path / "maze.png")
    spec = with_input(read_spec("robot.toml"), "reader", str(picture))
    spec["nodes"]["driver"] = {**spec["nodes"]["driver"], "seed": 1}
    shown = {}
    reference, snapshot = run_resumed(spec, tmp_path / "store", lambda name, node, state, plugin: shown.update({name: state}))
    driver = reference["driver"]
    assert driver.reason == "reached"
    # run_resumed checkpoints after half of all steps: inside the drive when it has most of them
    assert reference["reader"].steps + reference["solver"].steps < driver.steps
    assert snapshot.orchestrator["nodes"]["driver"]["energies"][-1] <= 0.45
    assert shown["driver"].meta["steps"] == driver.state.meta["steps"]
