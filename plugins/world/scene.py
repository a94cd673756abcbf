"""The stone-throw scene in MuJoCo: a target marker on the ground seen by a known camera, and a
planned throw replayed in it.

:func:`render_throw_scene` builds the model (ground, a red marker disc at a seeded ground point
5-40 m away inside the camera's view, a thrower at the origin holding a 0.15 kg, 2.5 cm stone,
a fixed camera behind and above the thrower) and renders it headless into a ``scene`` value:

``{"image": H x W x 3 uint8, "camera": {"fovy": deg, "width": px, "height": px, "pos": [x, y, z],
"xmat": [9 floats]}}``; ``xmat`` is MuJoCo's ``cam_xmat``, the camera-to-world rotation row-major
(its columns are the camera's x right, y up and z axes in the world; the camera looks along -z).

:func:`replay_throw` flies the stone in that model from the planned launch velocity under
MuJoCo's own ellipsoid fluid model, whose blunt drag is ``-rho C A |v| v`` with ``A = pi r^2``,
so ``C = drag_coeff / 2`` gives the planner's ``-0.5 rho drag_coeff A |v| v`` exactly (slender,
angular, Kutta and Magnus coefficients 0; the stone does not spin). The planner's point is the
stone's lowest point: it is released at the task's ``height`` and lands at the first MuJoCo
contact of stone and ground, the crossing interpolated inside the step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from .models import require_mujoco
from .mpc import physics_state
from .physics import AIR_DENSITY
from .render import figure, render_frames
from .tasks import parse_task

#: The stone and how it is thrown (the world plugin's throw task, without its target).
STONE_TASK = {"task": "throw", "mass": 0.15, "radius": 0.025, "drag_coeff": 0.47, "max_speed": 30.0, "height": 1.5}
#: Camera behind and above the thrower, looking down the throwing range.
CAMERA_POS = (-12.0, 0.0, 30.0)
CAMERA_LOOK_AT = (22.0, 0.0, 0.0)
CAMERA_FOVY = 55.0
WIDTH, HEIGHT = 640, 480
MARKER_RADIUS = 0.5
#: Height of the marker disc's top face above the ground (m): the reader's ``marker_height``.
MARKER_TOP = 0.003
#: Target ground distance from the thrower (m) and azimuth half-range (deg).
DISTANCE = (5.0, 40.0)
AZIMUTH = 25.0
TIMESTEP = 0.002


def _xyaxes(pos: Sequence[float], look_at: Sequence[float]) -> list[float]:
    """MJCF ``xyaxes`` of a camera at ``pos`` looking at ``look_at`` with the world z up."""
    forward = np.subtract(look_at, pos, dtype=np.float64)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return [*right, *np.cross(right, forward)]


def throw_scene_xml(target: Sequence[float], marker_radius: float = MARKER_RADIUS,
                    task: Mapping[str, Any] = STONE_TASK, width: int = WIDTH, height: int = HEIGHT) -> str:
    """MJCF of the scene: ground, the marker disc centred on ``target`` (x, y), the thrower and
    the stone of the throw ``task`` (its fields, the world task's defaults where it has none: a
    free body released at ``height``, fluid drag matching the planner's), the camera ``scene``."""
    x, y = (float(v) for v in target[:2])
    stone = parse_task({**task, "task": "throw", "target": [1.0, 0.0]})
    r, mass, blunt = stone.radius, stone.mass, 0.5 * stone.drag_coeff
    axes = " ".join(f"{v:.9f}" for v in _xyaxes(CAMERA_POS, CAMERA_LOOK_AT))
    release = stone.height + r
    return f"""
<mujoco model="stone_throw">
  <option timestep="{TIMESTEP}" integrator="RK4" density="{AIR_DENSITY}" viscosity="0"/>
  <visual><global offwidth="{width}" offheight="{height}"/><quality offsamples="4"/></visual>
  <asset>
    <texture name="sky" type="skybox" builtin="gradient" rgb1=".55 .7 .9" rgb2=".9 .94 1" width="64" height="64"/>
    <texture name="grass" type="2d" builtin="checker" rgb1=".33 .52 .3" rgb2=".3 .48 .28" width="64" height="64"/>
    <material name="grass" texture="grass" texrepeat="30 30"/>
  </asset>
  <worldbody>
    <light directional="true" pos="0 0 50" dir="-.2 .1 -1" diffuse=".8 .8 .8" ambient=".35 .35 .35" castshadow="false"/>
    <geom name="ground" type="plane" size="80 80 .1" material="grass"/>
    <geom name="marker" type="cylinder" size="{marker_radius} {MARKER_TOP / 2}" pos="{x} {y} {MARKER_TOP / 2}" rgba=".9 .08 .08 1"
          contype="0" conaffinity="0"/>
    <body name="thrower" pos="0 0 0">
      <geom type="capsule" fromto="0 -.12 .9 0 -.12 1.55" size=".17" rgba=".2 .3 .8 1" contype="0" conaffinity="0"/>
      <geom type="sphere" pos="0 -.12 1.8" size=".13" rgba=".9 .75 .6 1" contype="0" conaffinity="0"/>
      <geom type="capsule" fromto="0 -.1 0 0 -.1 .9" size=".08" rgba=".25 .25 .3 1" contype="0" conaffinity="0"/>
    </body>
    <body name="stone" pos="0 0 {release}">
      <freejoint/>
      <geom name="stone" type="sphere" size="{r}" mass="{mass}" rgba=".45 .42 .4 1"
            fluidshape="ellipsoid" fluidcoef="{blunt} 0 0 0 0"/>
    </body>
    <camera name="scene" pos="{' '.join(map(str, CAMERA_POS))}" xyaxes="{axes}" fovy="{CAMERA_FOVY}"/>
  </worldbody>
</mujoco>"""


@attrs.frozen
class ThrowScene:
    """A rendered scene (the ``scene`` value), its true target (x, y, 0) and marker radius, and its MJCF."""

    scene: dict[str, Any]
    target: tuple[float, float, float]
    marker_radius: float
    xml: str


def random_target(seed: int) -> tuple[float, float, float]:
    """A seeded ground point 5-40 m from the thrower, within +-25 degrees of the camera's axis."""
    rng = np.random.default_rng([seed, 15])
    distance = rng.uniform(*DISTANCE)
    azimuth = math.radians(rng.uniform(-AZIMUTH, AZIMUTH))
    return (round(distance * math.cos(azimuth), 3), round(distance * math.sin(azimuth), 3), 0.0)


def render_throw_scene(seed: int = 0, target: Sequence[float] | None = None, task: Mapping[str, Any] | None = None,
                       width: int = WIDTH, height: int = HEIGHT) -> ThrowScene:
    """Render the scene for ``seed`` (or at ``target`` (x, y)) headless into a ``scene`` value;
    ``task`` (a world throw task) sets the stone (default :data:`STONE_TASK`)."""
    mujoco = require_mujoco()
    point = random_target(seed) if target is None else (float(target[0]), float(target[1]), 0.0)
    xml = throw_scene_xml(point, task=STONE_TASK if task is None else task, width=width, height=height)
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    (image,) = render_frames(model, [physics_state(model, data)], width=width, height=height, camera="scene")
    cam = model.camera("scene").id
    camera = {"fovy": float(model.cam_fovy[cam]), "width": width, "height": height,
              "pos": [float(v) for v in data.cam_xpos[cam]], "xmat": [float(v) for v in data.cam_xmat[cam]]}
    return ThrowScene({"image": image, "camera": camera}, point, MARKER_RADIUS, xml)


@attrs.frozen
class Replay:
    """A throw flown in MuJoCo: the stone's lowest point over time (T x 3, metres, world frame,
    ending at the landing point), the landing point (x, y, 0) and the flight time (s)."""

    trajectory: np.ndarray
    landing: np.ndarray
    flight_time: float


def launch_velocity(speed: float, angle: float, azimuth: float) -> np.ndarray:
    """World-frame launch velocity of a throw at ``speed`` m/s, elevation ``angle`` and ``azimuth`` (rad)."""
    horizontal = speed * math.cos(angle)
    return np.array([horizontal * math.cos(azimuth), horizontal * math.sin(azimuth), speed * math.sin(angle)])


def replay_throw(xml: str, speed: float, angle: float, azimuth: float, max_time: float = 20.0) -> Replay:
    """Fly the scene's stone from its release point at the given launch until its first MuJoCo
    contact with the ground; ValueError if it has not landed within ``max_time`` seconds."""
    mujoco = require_mujoco()
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    stone = model.body("stone")
    radius = float(model.geom("stone").size[0])
    joint = model.jnt_qposadr[stone.jntadr[0]], model.jnt_dofadr[stone.jntadr[0]]
    data.qvel[joint[1]:joint[1] + 3] = launch_velocity(speed, angle, azimuth)
    points = [data.qpos[joint[0]:joint[0] + 3].copy()]
    for _ in range(int(math.ceil(max_time / model.opt.timestep))):
        mujoco.mj_step(model, data)
        if data.ncon:  # the collision pass at the start of this step found the stone on the ground
            break
        points.append(data.qpos[joint[0]:joint[0] + 3].copy())
    else:
        raise ValueError(f"replay_throw: the stone has not landed after {max_time} s")
    centres = np.asarray(points)
    centres[:, 2] -= radius
    above, below = centres[-2], centres[-1]
    fraction = above[2] / (above[2] - below[2])
    landing = above + fraction * (below - above)
    landing[2] = 0.0
    trajectory = np.vstack([centres[:-1], landing])
    return Replay(trajectory, landing, (len(centres) - 2 + fraction) * model.opt.timestep)


def plot_throw(path: str | Path, planned: np.ndarray, flown: np.ndarray, target: Sequence[float],
               marker_radius: float, goal: float = 0.10, title: str = "") -> Path:
    """Write a PNG: side view (distance along the throw, height) and top view near the target of
    the planned (torch) and MuJoCo flights (T x 3 world points), the target and the landing."""
    target = np.asarray(target, dtype=np.float64)
    direction = target[:2] / np.linalg.norm(target[:2])
    with figure(path, 1, 2, figsize=(11, 4.2), dpi=110, gridspec_kw={"width_ratios": [2.2, 1]}) as (fig, (side, top)):
        lines = ((flown, "MuJoCo replay", {"ls": "-", "lw": 3.5, "alpha": 0.5, "color": "C1"},
                  {"ms": 7, "color": "C1"}),
                 (planned, "planned (torch, drag)", {"ls": "--", "lw": 1.4, "color": "C0"},
                  {"ms": 11, "color": "C0", "mfc": "none", "mew": 1.5}))
        for points, label, line, dot in lines:
            side.plot(points[:, :2] @ direction, points[:, 2], label=label, **line)
            top.plot(points[:, 0], points[:, 1], **line)
            top.plot(*points[-1, :2], "o", label=f"{label.split(' ')[0]} landing", **dot)
        side.plot(np.linalg.norm(target[:2]), 0.0, "x", color="crimson", ms=10, mew=2, label="target")
        side.axhline(0.0, color="0.4", lw=1)
        side.set_xlabel("distance along the throw (m)")
        side.set_ylabel("height (m)")
        side.set_aspect("equal", adjustable="datalim")
        side.grid(alpha=0.3)
        side.legend(loc="upper left", fontsize=8)
        theta = np.linspace(0.0, 2.0 * np.pi, 128)
        top.fill(target[0] + marker_radius * np.cos(theta), target[1] + marker_radius * np.sin(theta),
                 color="crimson", alpha=0.15, label="marker")
        top.plot(target[0] + goal * np.cos(theta), target[1] + goal * np.sin(theta), ":", color="crimson",
                 label=f"{goal * 100:.0f} cm goal")
        top.plot(*target[:2], "x", color="crimson", ms=10, mew=2)
        span = max(1.5 * marker_radius, 1.5 * float(np.linalg.norm(flown[-1, :2] - target[:2])))
        top.set_xlim(target[0] - span, target[0] + span)
        top.set_ylim(target[1] - span, target[1] + span)
        top.set_aspect("equal")
        top.set_xlabel("x (m)")
        top.set_ylabel("y (m)")
        top.set_title("top view at the target", fontsize=9)
        top.grid(alpha=0.3)
        top.legend(loc="lower left", fontsize=7)
        if title:
            fig.suptitle(title, fontsize=10)
    return Path(path)


def plan_in_world(trajectory: Any, azimuth: float) -> np.ndarray:
    """A throw plan's trajectory (T x 2: distance along the throw, height) as world points (T x 3)."""
    points = np.asarray(trajectory, dtype=np.float64).reshape(-1, 2)
    return np.column_stack([points[:, 0] * math.cos(azimuth), points[:, 0] * math.sin(azimuth), points[:, 1]])
