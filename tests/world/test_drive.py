"""``world_pointmaze``: a solved maze driven in gymnasium-robotics' PointMaze as an IRP plugin
(plugins/world/drive.py), with real MuJoCo: the conformance kit (resume bit-identical included),
the same drive as the tracking loop, bad inputs, and a pipeline node fed by the HRM."""

import numpy as np
import pytest

import plugins.world  # noqa: F401  (sets a headless MUJOCO_GL before mujoco is imported)

pytest.importorskip("mujoco", reason="PointMaze needs the mujoco extra: pip install 'sage-irp[mujoco]'")
pytest.importorskip("gymnasium_robotics", reason="PointMaze needs the mujoco extra: pip install 'sage-irp[mujoco]'")

import sage_core  # noqa: E402
from sage_core.testing import check_plugin  # noqa: E402

from plugins.world.drive import PointMazeDriver, track_path  # noqa: E402
from plugins.world.pointmaze import PointMaze, reached  # noqa: E402

X0, CTX = PointMazeDriver.example()


def test_the_driver_passes_the_conformance_kit():
    report = check_plugin(lambda: PointMazeDriver(max_steps=60), X0, CTX, steps=8, raise_on_failure=False)
    assert report.passed, [(r.check, r.detail) for r in report.failures]


def test_a_drive_stepped_to_its_halt_reaches_the_goal_as_the_tracking_loop_does():
    driver = PointMazeDriver()
    result = sage_core.refine(driver, X0, CTX, policy=sage_core.MaxSteps(400))
    assert result.decision.policy == "reached", result.decision
    x, meta = result.state.x, result.state.meta
    assert reached(x["positions"][-1], x["goal"]) and result.history.last <= 0.45
    assert meta["contacts"] == 0 and len(x["positions"]) == len(x["log"]) == meta["steps"] + 1
    # the energy (metres to the goal) ends far below where it started
    assert result.history.energies[-1] < 0.2 * result.history.energies[0]
    # the same drive through track_path on an env built from the same map
    maze = PointMaze.build([[1 if ch == "#" else 0 for ch in line] for line in X0["puzzle"]])
    run = track_path(maze, X0["solution"], seed=CTX["seed"])
    assert run.success and run.steps == meta["steps"] and np.array_equal(run.positions, x["positions"])
    out = driver.output(result.state)
    assert out["success"] and out["steps"] == meta["steps"] and out["wall_contacts"] == 0


def test_bad_inputs_name_what_is_wrong():
    driver = PointMazeDriver()
    with pytest.raises(ValueError, match="solved maze"):
        driver.init_state([[1, 2], [3, 4]], {})
    with pytest.raises(ValueError, match="no path"):
        driver.init_state({**X0, "solution": None}, {})
    with pytest.raises(ValueError, match="neighbours"):
        driver.init_state({**X0, "solution": [[1, 1], [1, 3]]}, {})
    with pytest.raises(ValueError, match=r"cell \(0, 0\) is not an open cell"):
        driver.init_state({**X0, "solution": [[0, 0], [1, 0]]}, {})
    with pytest.raises(ValueError, match="max_steps"):
        PointMazeDriver(max_steps=0)


def test_the_episode_limit_halts_a_drive_that_runs_out_of_time():
    driver = PointMazeDriver(max_steps=10)
    result = sage_core.refine(driver, X0, CTX, policy=sage_core.MaxSteps(100))
    assert result.decision.policy == "episode_limit" and result.state.meta["steps"] == 10
    assert result.history.steps == 5  # two env steps per control step
