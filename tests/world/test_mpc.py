"""The MuJoCo backend ``world_mpc``: models, the sampling planner, the receding-horizon loop,
determinism, resume in a fresh process, and a headless GIF."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mujoco", reason="the MuJoCo backend needs the mujoco extra: pip install 'sage-irp[mujoco]'")

from plugins.world.models import compile_model  # noqa: E402  (sets a headless MUJOCO_GL first)
from plugins.world.mpc import MPCPlanner, RecedingHorizon, parse_mpc_task, physics_state  # noqa: E402
from sage_core.testing import check_plugin  # noqa: E402

import mujoco  # noqa: E402

ARM = {"model": "two_link_arm", "track": "fingertip", "goal": "target", "horizon": 15, "samples": 32,
       "noise": 0.1, "knots": 3}


def _closed_loop(task, seed, steps, planner=None, controller=None):
    """Run the controller on the true model for ``steps`` control steps; final distance and actions."""
    planner = planner or MPCPlanner(nthread=1)
    model = planner.model(parse_mpc_task(task))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    controller = controller or RecedingHorizon(planner, task, seed=seed, warmup=10)
    actions = []
    for _ in range(steps):
        action = controller.act(physics_state(model, data))
        actions.append(action)
        data.ctrl[:] = action
        mujoco.mj_step(model, data, nstep=task.get("frame_skip", 2))
    tip, target = data.xipos[model.body("fingertip").id], data.xipos[model.body("target").id]
    return float(np.linalg.norm(tip - target)), np.array(actions)


def test_receding_horizon_reaches_the_target_of_an_inline_arm():
    distance, actions = _closed_loop(ARM, seed=0, steps=35)
    assert distance < 0.01, distance
    assert np.abs(actions).max() <= 1.0


def test_planner_iterations_lower_the_plans_cost_and_respect_the_control_range():
    planner = MPCPlanner(nthread=1)
    state = planner.init_state(ARM, {"seed": 0})
    costs = [planner.energy(state)]
    for _ in range(8):
        state = planner.project(planner.step(state))
        costs.append(planner.energy(state))
    assert costs[-1] < 0.8 * costs[0], costs
    assert np.abs(state.x["action"]).max() <= 1.0
    best = planner.init_state({**ARM, "method": "ps"}, {"seed": 0})
    ps = [planner.energy(best)]
    for _ in range(8):
        best = planner.step(best)
        ps.append(planner.energy(best))
    assert all(b <= a for a, b in zip(ps, ps[1:])) and ps[-1] < ps[0]


def test_same_seed_same_actions_other_seed_other_actions():
    _, a = _closed_loop(ARM, seed=3, steps=6)
    _, b = _closed_loop(ARM, seed=3, steps=6)
    _, c = _closed_loop(ARM, seed=4, steps=6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_conformance_kit_passes():
    report = check_plugin(lambda: MPCPlanner(nthread=1), *MPCPlanner.example(), raise_on_failure=False)
    assert report.passed, [(f.check, f.detail) for f in report.failures]


_RESUME = """
import json, sys
import numpy as np
from safetensors.numpy import load_file
from plugins.world.mpc import MPCPlanner, RecedingHorizon
planner = MPCPlanner(nthread=1)
controller = RecedingHorizon.resume(planner, load_file(sys.argv[1] + "/plan.safetensors"),
                                    json.load(open(sys.argv[1] + "/plan.json")))
physics = np.load(sys.argv[1] + "/physics.npy")
print(json.dumps(controller.act(physics).tolist()))
"""


def test_controller_stopped_mid_run_resumes_bit_identically_in_a_fresh_process(tmp_path):
    from safetensors.numpy import save_file

    planner = MPCPlanner(nthread=1)
    controller = RecedingHorizon(planner, ARM, seed=5, warmup=3)
    model = planner.model(parse_mpc_task(ARM))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    for _ in range(4):
        data.ctrl[:] = controller.act(physics_state(model, data))
        mujoco.mj_step(model, data, nstep=2)
    tensors, meta = controller.export()
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, tmp_path / "plan.safetensors")
    (tmp_path / "plan.json").write_text(json.dumps(meta))
    physics = physics_state(model, data)
    np.save(tmp_path / "physics.npy", physics)
    expected = controller.act(physics)
    out = subprocess.run([sys.executable, "-c", _RESUME, str(tmp_path)], capture_output=True, text=True,
                         timeout=300, cwd=os.getcwd())
    assert out.returncode == 0, out.stderr
    assert np.array_equal(np.array(json.loads(out.stdout.strip().splitlines()[-1])), expected)


def test_gymnasium_models_load_from_the_installed_packages():
    reacher = compile_model("reacher", ("fingertip", "target"))
    assert reacher.nu == 2 and reacher.nsensordata == 6
    maze = compile_model("point_maze", ("particle",))
    assert maze.nu == 2 and maze.site("target") is not None and maze.ngeom > 10
    with pytest.raises(ValueError, match="unknown PointMaze map"):
        compile_model("point_maze:NOPE", ("particle",))
    with pytest.raises(ValueError, match="no body or site named 'hand'"):
        compile_model("two_link_arm", ("hand",))


@pytest.mark.parametrize("task, field", [
    ({"track": "fingertip", "goal": "target"}, "model"), ({**ARM, "goal": [1.0, float("nan"), 0.0]}, "goal"),
    ({**ARM, "method": "ilqg"}, "method"), ({**ARM, "samples": 1}, "samples"), ({**ARM, "model": "nope"}, "model"),
])
def test_bad_planning_tasks_name_the_field(task, field):
    with pytest.raises(ValueError, match=field):
        MPCPlanner(nthread=1).init_state(task, {})


_RENDER = """
import sys
import numpy as np
from plugins.world.models import compile_model
from plugins.world.render import render_frames, save_gif
import mujoco
model = compile_model("two_link_arm", ("fingertip",))
data = mujoco.MjData(model)
states = []
for k in range(3):
    data.qpos[:] = [0.5 * k, 0.3 * k]
    mujoco.mj_forward(model, data)
    from plugins.world.mpc import physics_state
    states.append(physics_state(model, data))
frames = render_frames(model, states, width=64, height=48, camera="top", distance=0.6)
save_gif(frames, sys.argv[1])
print(float(np.std(frames[0])), float(np.abs(frames[0].astype(int) - frames[2].astype(int)).mean()))
"""


def test_frames_render_headless_to_an_animated_gif(tmp_path):
    from PIL import Image

    errors = {}
    for backend in ("egl", "osmesa"):
        out = tmp_path / f"{backend}.gif"
        run = subprocess.run([sys.executable, "-c", _RENDER, str(out)], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}, cwd=os.getcwd())
        if run.returncode == 0:
            spread, change = (float(v) for v in run.stdout.split())
            with Image.open(out) as gif:
                assert gif.n_frames == 3 and gif.size == (64, 48)
            assert spread > 5.0 and change > 0.5  # a lit scene, and the arm moved between frames
            return
        errors[backend] = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit {run.returncode}"
    pytest.skip(f"neither MUJOCO_GL=egl nor osmesa renders here: {errors}")
