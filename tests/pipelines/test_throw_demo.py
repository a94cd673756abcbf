"""`sage demo throw` reduced for CI: examples/pipelines/stone_throw.toml builds (kind-checked),
one scene is located, thrown and replayed in MuJoCo within the goal, its PNGs decode at their
sizes, and a missing MuJoCo is one line naming the extra."""

import importlib.util
import math
import re

import pytest
from click.testing import CliRunner

import plugins.world  # noqa: F401  (picks a headless MUJOCO_GL before mujoco is first imported)
from orchestrator import Pipeline, PipelineError
from orchestrator.demo import demo_command, read_spec

PIL = pytest.importorskip("PIL.Image")
pytest.importorskip("mujoco")
pytest.importorskip("matplotlib")


def test_the_pipeline_builds_from_its_toml_and_is_kind_checked():
    spec = read_spec("stone_throw.toml")
    pipeline = Pipeline.from_dict(spec)
    reader, planner = pipeline.node("reader"), pipeline.node("planner")
    assert (reader.input_kind, reader.output_kind) == ("scene", "target")
    assert (planner.input_kind, planner.output_kind) == ("target", "plan")
    wrong = {**spec, "edges": [{**spec["edges"][0], "bridge": "path_to_waypoints"}]}
    with pytest.raises(PipelineError, match="reads 'path' but node 'reader' \\(vision_scene\\) outputs 'target'"):
        Pipeline.from_dict(wrong)


def _number(pattern, text):
    return float(re.search(pattern, text).group(1))


def test_one_throw_end_to_end_lands_within_ten_centimetres_and_writes_its_pngs(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(demo_command, ["throw", "--out", str(out), "--seed", "4"])
    text = result.output
    assert result.exit_code == 0, text
    assert _number(r"located: .* error ([\d.]+) cm", text) < 2.0
    assert _number(r"lands at .*: ([\d.]+) cm from the target \(within the 10 cm goal\)", text) < 10.0
    assert _number(r"([\d.]+) cm from the plan's landing", text) < 2.0
    assert re.search(r"plan: [\d.]+ m/s at [\d.]+ deg, azimuth -?[\d.]+ deg", text)
    for name, size in (("scene.png", (640, 480)), ("throw.png", (1210, 462))):
        assert f"{out / name}" in text
        with PIL.open(out / name) as image:
            image.load()
            assert image.size == size and image.mode in ("RGB", "RGBA")


def test_throw_once_measures_the_errors(tmp_path):
    from orchestrator.demo_throw import GOAL, throw_once

    outcome = throw_once(read_spec("stone_throw.toml"), 7)
    assert outcome.localisation_error < 0.02 and outcome.landing_error < GOAL and outcome.plan_gap < 0.02
    x, y, _ = outcome.target
    assert math.isclose(outcome.azimuth, math.atan2(outcome.located[1], outcome.located[0]))
    assert 5.0 <= math.hypot(x, y) <= 40.0 and outcome.reader.startswith(("converged", "plateau"))


def test_without_mujoco_the_demo_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mujoco" else real(name, *a))
    result = CliRunner().invoke(demo_command, ["throw", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == "Error: sage demo throw needs mujoco: pip install 'sage-irp[mujoco]'"


def test_a_negative_seed_is_one_line(tmp_path):
    result = CliRunner().invoke(demo_command, ["throw", "--out", str(tmp_path / "o"), "--seed", "-1"])
    assert result.exit_code == 1 and "--seed must be >= 0" in result.output and "Traceback" not in result.output
