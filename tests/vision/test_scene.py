"""The ``vision_scene`` reader: conformance kit, the camera model against MuJoCo, localisation
accuracy on rendered MuJoCo scenes, and one clear error per bad input."""

import numpy as np
import pytest
import torch

from plugins.vision import ImageError, SceneReader
from plugins.vision.scene import EXAMPLE_CAMERA, example_scene, ground_points, to_pixels
from sage_core import MaxSteps, refine
from sage_core.testing import check_plugin


def test_conformance_kit_passes():
    report = check_plugin(SceneReader, raise_on_failure=False)
    assert report.passed, [(f.check, f.detail) for f in report.failures]


def test_pixels_and_ground_points_invert_each_other():
    points = np.array([[9.0, -1.0, 0.0], [14.0, 3.0, 0.0], [6.5, 0.2, 0.0]])
    uv = to_pixels(EXAMPLE_CAMERA, points)
    back = ground_points(EXAMPLE_CAMERA, torch.from_numpy(uv)).numpy()
    np.testing.assert_allclose(back, points[:, :2], atol=1e-9)


def test_the_drawn_example_is_located_to_a_millimetre_and_the_error_falls():
    result = refine(SceneReader(), example_scene(), {"seed": 0}, policy=MaxSteps(30))
    assert result.decision.policy == "converged", result.decision
    x, y, z = SceneReader().output(result.state)
    assert abs(x - 9.3) < 1e-3 and abs(y + 1.2) < 1e-3 and z == 0.0
    assert abs(SceneReader.radius(result.state) - 0.6) < 1e-3
    energies = result.history.energies
    assert energies[-1] < energies[0] and all(b <= a for a, b in zip(energies, energies[1:]))


def test_rendered_scenes_are_located_within_two_centimetres():
    scene_module = pytest.importorskip("plugins.world.scene")
    pytest.importorskip("mujoco")
    reader = SceneReader(marker_height=scene_module.MARKER_TOP)
    rendered = scene_module.render_throw_scene(0)
    # the camera model matches MuJoCo's: the true centre projects onto the red blob's centroid
    image = rendered.scene["image"].astype(float)
    rows, cols = np.nonzero(image[..., 0] - image[..., 1:].max(-1) > 60)
    (u, v), = to_pixels(rendered.scene["camera"], [rendered.target])
    assert abs(cols.mean() + 0.5 - u) < 0.5 and abs(rows.mean() + 0.5 - v) < 0.5
    for seed, target in [(0, None), (1, None), (None, (5.5, -2.0)), (None, (39.0, 16.0))]:
        scene = rendered if seed == 0 else scene_module.render_throw_scene(seed or 0, target=target)
        result = refine(reader, scene.scene, {}, policy=MaxSteps(30))
        assert result.decision.policy in ("converged", "plateau"), result.decision
        located = np.array(reader.output(result.state))
        assert np.linalg.norm(located[:2] - np.array(scene.target[:2])) < 0.02, (scene.target, located)
        assert abs(SceneReader.radius(result.state) - scene.marker_radius) < 0.02


def _scene(**camera):
    scene = example_scene()
    return {**scene, "camera": {**scene["camera"], **camera}}


@pytest.mark.parametrize("scene, message", [
    ("scene.png", "the input must be a scene dict"),
    ({"image": example_scene()["image"]}, "the scene has no 'camera'"),
    ({"camera": EXAMPLE_CAMERA}, "the scene has no 'image'"),
    ({**example_scene(), "camera": {k: v for k, v in EXAMPLE_CAMERA.items() if k != "fovy"}}, "camera has no 'fovy'"),
    (_scene(fovy=190.0), "camera 'fovy' must be in (0, 180)"),
    (_scene(width=200), "camera 'width' must be the image's width 160 px"),
    (_scene(pos=[1.0, 2.0]), "camera 'pos' must be 3 finite numbers"),
    (_scene(pos=[1.0, 2.0, -3.0]), "camera 'pos' must be above the ground (z > 0)"),
    (_scene(xmat=[1.0] * 9), "camera 'xmat' must be a rotation"),
    ({**example_scene(), "image": np.zeros((120, 160, 3), np.float32)}, "'image' must be an H x W x 3 uint8 array"),
    ({**example_scene(), "image": "/no/such/scene.png"}, "unreadable image file"),
    ({**example_scene(), "image": np.full((120, 160, 3), 90, np.uint8)}, "no target marker in the image"),
])
def test_bad_inputs_name_the_field(scene, message):
    with pytest.raises(ValueError) as info:
        SceneReader().init_state(scene, {})
    assert message in str(info.value) and str(info.value).startswith("vision_scene:")


def test_a_marker_above_the_horizon_and_a_bad_marker_height_are_refused():
    looking_up = [0.0, -0.6, -0.8, -1.0, 0.0, 0.0, 0.0, 0.8, -0.6]  # the camera's -z points 37 degrees up
    with pytest.raises(ValueError, match="at or above the horizon"):
        SceneReader().init_state(_scene(xmat=looking_up), {})
    with pytest.raises(ValueError, match="marker_height must be"):
        SceneReader(marker_height=-1.0)
    assert issubclass(ImageError, ValueError)
