"""MuJoCo models for the sampling planner: gymnasium's Reacher, gymnasium-robotics' PointMaze,
an MJCF file or an XML string, compiled with position sensors for the planner's cost.

Everything loads from the installed packages (nothing is downloaded). Without the ``mujoco``
extra, using this module raises one line saying which ``pip install`` to run.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

MISSING = "the MuJoCo backend needs the mujoco extra: pip install 'sage-irp[mujoco]'"

#: A small planar 2-link arm (the tests' and the torch-vs-MuJoCo bench's reach): Reacher-sized
#: links, joint armature and damping as in Reacher, a fingertip body and a fixed target body.
TWO_LINK_ARM = """
<mujoco model="two_link_arm">
  <compiler angle="radian" inertiafromgeom="true"/>
  <option timestep="0.01" gravity="0 0 0" integrator="RK4"/>
  <default><joint armature="1" damping="1" limited="true"/><geom contype="0" conaffinity="0" density="1000"/></default>
  <worldbody>
    <light pos="0 0 1" dir="0 0 -1" diffuse=".8 .8 .8"/>
    <geom name="floor" type="plane" size=".3 .3 .01" rgba=".85 .88 .9 1"/>
    <body name="body0" pos="0 0 .01">
      <geom fromto="0 0 0 0.1 0 0" size=".01" type="capsule"/>
      <joint axis="0 0 1" limited="false" name="joint0" type="hinge"/>
      <body name="body1" pos="0.1 0 0">
        <joint axis="0 0 1" name="joint1" range="-3.0 3.0" type="hinge"/>
        <geom fromto="0 0 0 0.1 0 0" size=".01" type="capsule"/>
        <body name="fingertip" pos="0.11 0 0"><geom size=".01" type="sphere" rgba="0 .8 .6 1"/></body>
      </body>
    </body>
    <body name="target" pos="0.12 0.08 .01"><geom size=".009" type="sphere" rgba=".9 .2 .2 1"/></body>
  </worldbody>
  <actuator>
    <motor ctrllimited="true" ctrlrange="-1 1" gear="200" joint="joint0"/>
    <motor ctrllimited="true" ctrlrange="-1 1" gear="200" joint="joint1"/>
  </actuator>
</mujoco>
"""


def headless_gl() -> str:
    """The MuJoCo GL backend for rendering without a display: EGL where its library is
    installed, else OSMesa (Debian: libegl1 libegl-mesa0 libgl1-mesa-dri, or libosmesa6)."""
    return "egl" if ctypes.util.find_library("EGL") or not ctypes.util.find_library("OSMesa") else "osmesa"


def require_mujoco() -> Any:
    """The ``mujoco`` module, or ImportError with the pip line."""
    try:
        import mujoco
    except ImportError as exc:
        raise ImportError(MISSING) from exc
    return mujoco


# MuJoCo picks its GL backend when it is first imported: default it to a headless one here.
if "mujoco" not in sys.modules:
    os.environ.setdefault("MUJOCO_GL", headless_gl())


def _reacher_xml() -> str:
    try:
        import gymnasium.envs.mujoco as gym_mujoco
    except ImportError as exc:
        raise ImportError(MISSING) from exc
    return (Path(gym_mujoco.__file__).parent / "assets" / "reacher.xml").read_text()


def _point_maze_xml(map_name: str) -> str:
    """gymnasium-robotics' PointMaze with one of its maze maps (``U_MAZE`` by default)."""
    try:
        import gymnasium_robotics.envs.maze as maze_pkg
        from gymnasium_robotics.envs.maze import maps
        from gymnasium_robotics.envs.maze.maze_v4 import Maze
    except ImportError as exc:
        raise ImportError(MISSING) from exc
    maze_map = getattr(maps, map_name, None)
    if not isinstance(maze_map, list):
        names = sorted(n for n in dir(maps) if n.isupper() and isinstance(getattr(maps, n), list))
        raise ValueError(f"world_mpc: unknown PointMaze map {map_name!r}; expected one of {names}")
    agent = Path(maze_pkg.__file__).parent.parent / "assets" / "point" / "point.xml"
    _, tmp_path = Maze.make_maze(str(agent), maze_map, 1.0, 0.4)
    try:
        return Path(tmp_path).read_text()
    finally:
        os.unlink(tmp_path)


def model_xml(model: str) -> str:
    """MJCF text of a model name (``reacher``, ``two_link_arm``, ``point_maze[:MAP]``), a path
    to an ``.xml`` file, or an XML string."""
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"world_mpc: 'model' must be a model name, an MJCF path or an XML string, got {model!r}")
    text = model.strip()
    if text.startswith("<"):
        return text
    if text == "reacher":
        return _reacher_xml()
    if text == "two_link_arm":
        return TWO_LINK_ARM
    if text == "point_maze" or text.startswith("point_maze:"):
        return _point_maze_xml(text.partition(":")[2] or "U_MAZE")
    path = Path(text)
    if path.suffix == ".xml" and path.is_file():
        return path.read_text()
    raise ValueError(f"world_mpc: 'model' {model!r} is neither a known model (reacher, two_link_arm, point_maze[:MAP]), "
                     "an existing .xml file nor an XML string")


def _object_type(mujoco: Any, spec: Any, name: str) -> Any:
    """The sensor object type of a body (its centre of mass, as gymnasium's get_body_com) or a site."""
    if spec.body(name) is not None:
        return mujoco.mjtObj.mjOBJ_BODY
    if spec.site(name) is not None:
        return mujoco.mjtObj.mjOBJ_SITE
    raise ValueError(f"world_mpc: the model has no body or site named {name!r}")


INTEGRATORS = ("euler", "implicitfast", "rk4")


@lru_cache(maxsize=16)
def compile_model(model: str, tracked: tuple[str, ...], integrator: str | None = None,
                  timestep: float | None = None) -> Any:
    """The compiled MjModel of ``model`` with one ``framepos`` sensor per tracked body/site name
    appended after the model's own sensors, optionally with another integrator and timestep
    (a cheaper planning model); cached, models are not modified after compiling."""
    mujoco = require_mujoco()
    try:
        spec = mujoco.MjSpec.from_string(model_xml(model))
    except ValueError as exc:
        raise ValueError(f"world_mpc: the MJCF does not parse: {exc}") from None
    if integrator is not None:
        if integrator not in INTEGRATORS:
            raise ValueError(f"world_mpc: 'integrator' must be one of {INTEGRATORS}, got {integrator!r}")
        spec.option.integrator = getattr(mujoco.mjtIntegrator, f"mjINT_{integrator.upper()}")
    if timestep is not None:
        spec.option.timestep = timestep
    for name in tracked:
        spec.add_sensor(name=f"sage_pos_{name}", type=mujoco.mjtSensor.mjSENS_FRAMEPOS,
                        objtype=_object_type(mujoco, spec, name), objname=name)
    return spec.compile()
