"""Throws at ground points in the world frame, replayed in MuJoCo: the replay (MuJoCo's ellipsoid
fluid drag, RK4) agrees with the torch planner's prediction, and the drag matters."""

import math

import numpy as np
import pytest

from plugins.world import WorldPlanner, parse_task
from sage_core import MaxSteps, refine

mujoco = pytest.importorskip("mujoco")
from plugins.world.scene import STONE_TASK, plan_in_world, random_target, replay_throw, throw_scene_xml  # noqa: E402


def test_a_ground_point_target_is_thrown_along_its_azimuth():
    task = parse_task({**STONE_TASK, "target": [3.0, 4.0, 0.0]})
    assert task.target == (5.0, 0.0) and math.isclose(task.azimuth, math.atan2(4.0, 3.0))
    assert parse_task({**STONE_TASK, "target": [5.0, 0.0]}).azimuth == 0.0
    with pytest.raises(ValueError, match=r"3-D 'target' must lie on the ground \[x, y, 0.0\]"):
        parse_task({**STONE_TASK, "target": [3.0, 4.0, 1.0]})
    with pytest.raises(ValueError, match="'target' must be finite"):
        parse_task({**STONE_TASK, "target": [3.0, float("nan"), 0.0]})


@pytest.mark.parametrize("target", [(20.0, 5.0, 0.0), (5.0, -2.0, 0.0), (38.0, 12.0, 0.0)])
def test_the_mujoco_replay_lands_within_two_centimetres_of_the_torch_prediction(target):
    result = refine(WorldPlanner(), {**STONE_TASK, "target": list(target)}, {"seed": 0}, policy=MaxSteps(50))
    assert result.decision.policy == "tolerance", result.decision
    plan = result.state.x
    speed, angle = plan["action"].tolist()
    azimuth = float(plan["azimuth"])
    planned = plan_in_world(plan["trajectory"], azimuth)
    replay = replay_throw(throw_scene_xml(target), speed, angle, azimuth)
    assert np.linalg.norm(replay.landing[:2] - planned[-1, :2]) < 0.02
    assert np.linalg.norm(replay.landing[:2] - np.array(target[:2])) < 0.05
    # the whole flight agrees, not just its end: the planner's 0.1 s samples against MuJoCo's at the same times
    flown = replay.trajectory[:: int(round(0.1 / 0.002))]
    n = min(len(flown), len(planned)) - 1
    assert np.abs(flown[:n] - planned[:n]).max() < 0.02
    assert replay.trajectory[0][2] == pytest.approx(STONE_TASK["height"]) and replay.landing[2] == 0.0


def test_without_drag_the_same_throw_flies_metres_further():
    result = refine(WorldPlanner(), {**STONE_TASK, "target": [30.0, 0.0, 0.0]}, {"seed": 0}, policy=MaxSteps(50))
    speed, angle = result.state.x["action"].tolist()
    with_drag = replay_throw(throw_scene_xml((30.0, 0.0)), speed, angle, 0.0)
    vacuum = replay_throw(throw_scene_xml((30.0, 0.0), task={**STONE_TASK, "drag_coeff": 0.0}), speed, angle, 0.0)
    assert abs(with_drag.landing[0] - 30.0) < 0.05 and vacuum.landing[0] - with_drag.landing[0] > 1.0


def test_scene_targets_are_seeded_and_inside_the_range():
    targets = [random_target(seed) for seed in range(50)]
    assert targets == [random_target(seed) for seed in range(50)] and len(set(targets)) == 50
    for x, y, z in targets:
        assert 5.0 <= math.hypot(x, y) <= 40.0 and abs(math.degrees(math.atan2(y, x))) <= 25.0 and z == 0.0
