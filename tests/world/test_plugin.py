"""The ``world`` IRP plugin: tasks, refinement, limits, halting, conformance and resume."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from sage_core import IRPState, MaxSteps, refine
from sage_core.testing import check_plugin
from plugins.world import (MPCPlanner, PointMazeDriver, WorldPlanner, cells_to_waypoints, parse_task, path_to_waypoints,
                           solve_throws)
from plugins.world.hooks import sage_register_bridges, sage_register_plugins

THROW = {"task": "throw", "target": [20.0, 0.0], "mass": 0.15, "radius": 0.025, "drag_coeff": 0.47, "max_speed": 30.0}
REACH = {"task": "reach", "target": [0.1, 0.1], "horizon": 50}
TRACK = {"task": "track", "waypoints": [[1.0, 0.0], [1.0, 1.0]]}


@pytest.mark.parametrize("x0", [THROW, {**TRACK, "steps_per_waypoint": 10}, None])
def test_conformance_kit_passes(x0):
    report = check_plugin(WorldPlanner, x0, {"seed": 1} if x0 else None, raise_on_failure=False)
    assert report.passed, [(f.check, f.detail) for f in report.failures]


@pytest.mark.parametrize("task", [THROW, {**THROW, "angle": 30.0}, {**THROW, "bounces": 1, "target": [30.0, 0.0]}])
def test_throw_lands_within_five_centimetres_and_energy_falls(task):
    result = refine(WorldPlanner(), task, {"seed": 0}, policy=MaxSteps(30))
    assert result.decision.policy == "tolerance", result.decision
    assert abs(float(result.state.x["landing"][0]) - task["target"][0]) <= 0.05
    energies = result.history.energies
    assert energies[-1] < energies[0] and all(b <= a for a, b in zip(energies, energies[1:]))
    speed, angle = result.state.x["action"].tolist()
    assert 0 < speed <= 30.0 and (task.get("angle") is None or math.isclose(math.degrees(angle), task["angle"]))


def test_arm_reaches_and_controls_stay_inside_the_limits():
    result = refine(WorldPlanner(), REACH, {"seed": 0}, policy=MaxSteps(200))
    assert result.decision.policy == "tolerance", result.decision
    assert float(result.state.x["error"]) <= 0.01
    assert result.history.energies[-1] < 0.1 * result.history.energies[0]
    assert float(result.state.x["action"].abs().max()) <= 1.0


def test_track_passes_its_waypoints():
    result = refine(WorldPlanner(), TRACK, {"seed": 0}, policy=MaxSteps(300))
    assert result.decision.policy == "tolerance" and float(result.state.x["error"]) <= 0.05


def test_project_clips_actions_to_the_actuator_limits():
    plugin = WorldPlanner()
    state = plugin.init_state(REACH, {})
    wild = state.evolve(x={**state.x, "action": state.x["action"] + 3.0})
    projected = plugin.project(wild)
    assert float(projected.x["action"].abs().max()) == 1.0 and float(projected.x["action"].min()) == 1.0
    assert not torch.equal(projected.x["trajectory"], wild.x["trajectory"])
    throw_state = plugin.init_state(THROW, {})
    fast = throw_state.evolve(x={**throw_state.x, "action": torch.tensor([80.0, 2.5], dtype=torch.float64)})
    speed, angle = plugin.project(fast).x["action"].tolist()
    assert speed == 30.0 and angle <= math.radians(89.0)
    assert plugin.project(throw_state) is throw_state


def test_out_of_reach_throw_halts_infeasible_with_the_farthest_throw():
    for task, steps in (({**THROW, "target": [90.0, 0.0], "angle": 40.0}, 5), ({**THROW, "target": [90.0, 0.0]}, 80)):
        result = refine(WorldPlanner(), task, {}, policy=MaxSteps(steps))
        assert result.decision.policy == "infeasible", result.decision
        assert "infeasible" in result.decision.reason
        assert float(result.state.x["action"][0]) == 30.0
    farthest = float(result.state.x["landing"][0])
    solved = solve_throws([parse_task({**THROW, "target": [farthest - 1.0, 0.0]})])
    assert abs(float(solved.miss[0])) <= 0.05 and not bool(solved.infeasible[0])


def test_out_of_reach_arm_target_halts_infeasible_near_the_workspace_edge():
    result = refine(WorldPlanner(), {**REACH, "target": [0.3, 0.1]}, {}, policy=MaxSteps(200))
    assert result.decision.policy == "infeasible", result.decision
    assert float(result.state.x["error"]) <= math.hypot(0.3, 0.1) - 0.21 + 0.01


@pytest.mark.parametrize("task, field", [
    ({**THROW, "mass": -1.0}, "mass"), ({**THROW, "target": [float("nan"), 0.0]}, "target"),
    ({"task": "juggle"}, "task"), ({"task": "throw"}, "target"), ({**REACH, "horizon": 0}, "horizon"),
    ({**TRACK, "waypoints": []}, "waypoints"), ({**TRACK, "waypoints": [[0.0, 1.0], "ab"]}, "waypoints[1]"),
    ({**THROW, "max_speed": "fast"}, "max_speed"), ({**THROW, "target": [20.0, 3.0]}, "target"),
])
def test_bad_tasks_get_an_error_naming_the_field(task, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        WorldPlanner().init_state(task, {})


_value = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=3),
                   st.lists(st.floats(-50, 50), max_size=3))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["task", "target", "mass", "radius", "angle", "horizon", "waypoints",
                                        "max_speed", "bounces", "tolerance"]), _value),
       st.sampled_from(["throw", "reach", "track", None]))
def test_parser_accepts_or_names_a_field(raw, name):
    task = {**raw, "task": name} if name else raw
    try:
        parsed = parse_task(task)
    except ValueError as exc:
        assert "world task" in str(exc)
    else:
        assert parsed.kind == task["task"]


def test_bare_target_fills_the_configured_task_and_kinds_are_declared():
    plugin = WorldPlanner(task={"task": "throw", "angle": 35.0})
    state = plugin.init_state([25.0, 0.0], {})
    assert state.meta["task"]["target"] == [25.0, 0.0] and plugin.input_kind == "target"
    assert WorldPlanner(task={"task": "track"}).input_kind == "waypoints" and plugin.output_kind == "plan"
    with pytest.raises(ValueError, match="task dict"):
        WorldPlanner().init_state([25.0, 0.0], {})


def test_hooks_register_the_plugin_and_the_path_bridge():
    plugins, bridges = [], []
    sage_register_plugins(plugins.append)
    sage_register_bridges(lambda b, name=None: bridges.append((name, b)))
    assert plugins == [WorldPlanner, MPCPlanner, PointMazeDriver]
    assert bridges[0][0] == "path_to_waypoints" and bridges[0][1].target_kind == "waypoints"
    assert path_to_waypoints.source_kind == "path"
    assert cells_to_waypoints([(3, 1), (2, 1), (2, 2)], 0.5) == [[0.0, 0.0], [0.0, 0.5], [0.5, 0.5]]
    with pytest.raises(ValueError, match="row, col"):
        cells_to_waypoints([(1.5, 2)])
    assert path_to_waypoints(IRPState(x={"path": [(1, 1), (1, 2)]})) == [[0.0, 0.0], [1.0, 0.0]]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(-50, 50), st.integers(-50, 50)), min_size=1, max_size=20),
       st.floats(0.01, 10.0))
def test_waypoints_keep_the_cells_offsets_in_metres(cells, size):
    points = cells_to_waypoints(cells, size)
    (r0, c0) = cells[0]
    for (r, c), (x, y) in zip(cells, points):
        assert math.isclose(x, (c - c0) * size, abs_tol=1e-9) and math.isclose(y, (r0 - r) * size, abs_tol=1e-9)


_RESUME = """
import json, sys, torch
from safetensors.torch import load_file
from plugins.world import WorldPlanner
meta = json.load(open(sys.argv[1] + "/meta.json"))
plugin = WorldPlanner()
state = plugin.import_state(load_file(sys.argv[1] + "/state.safetensors"), meta)
for _ in range(4):
    state = plugin.project(plugin.step(state))
tensors, _ = plugin.export_state(state)
from safetensors.torch import save_file
save_file(tensors, sys.argv[1] + "/resumed.safetensors")
"""


@pytest.mark.parametrize("task", [REACH, {**THROW, "target": [33.0, 0.0]}])
def test_stopped_session_resumes_bit_identically_in_a_fresh_process(tmp_path, task):
    from safetensors.torch import load_file, save_file

    plugin = WorldPlanner()
    state = plugin.init_state(task, {"seed": 0})
    for _ in range(3):
        state = plugin.project(plugin.step(state))
    tensors, meta = plugin.export_state(state)
    save_file(tensors, tmp_path / "state.safetensors")
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    for _ in range(4):
        state = plugin.project(plugin.step(state))
    subprocess.run([sys.executable, "-c", _RESUME, str(tmp_path)], check=True, timeout=300)
    resumed = load_file(tmp_path / "resumed.safetensors")
    expected, _ = plugin.export_state(state)
    assert expected.keys() == resumed.keys()
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)


def test_mujoco_backend_without_its_extra_says_which_pip_install(monkeypatch):
    from plugins.world.models import require_mujoco

    monkeypatch.setitem(sys.modules, "mujoco", None)
    with pytest.raises(ImportError, match=r"pip install 'sage-irp\[mujoco\]'"):
        require_mujoco()


def test_throw_command_prints_the_launch_and_writes_a_png(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from plugins.world.cli import world_group

    png = tmp_path / "throw.png"
    result = CliRunner().invoke(world_group, ["throw", "25", "--angle", "30", "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert "angle 30.00 deg, lands at 25.0" in result.output and "within tolerance" in result.output
    with Image.open(png) as image:
        assert image.size[0] > 400 and len(np.unique(np.asarray(image.convert("L")))) > 10
    bad = CliRunner().invoke(world_group, ["throw", "25", "--task", '{"mass": -1}'])
    assert bad.exit_code == 2 and "'mass' must be > 0.0" in bad.output
