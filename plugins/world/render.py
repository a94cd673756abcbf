"""Pictures: planned trajectories to PNG (matplotlib) and MuJoCo frames to an animated GIF
(Pillow), headless. Needs the ``viz`` extra (and ``mujoco`` for the GIF)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .models import require_mujoco

VIZ = "pictures need the viz extra: pip install 'sage-irp[viz]'"


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(VIZ) from exc
    return plt


@contextlib.contextmanager
def figure(path: str | Path, *grid: int, **subplots: Any) -> Iterator[tuple[Any, Any]]:
    """``(fig, axes)`` of ``plt.subplots(*grid, **subplots)``, laid out and written to ``path``
    as the block ends, and closed whatever happens."""
    plt = _pyplot()
    fig, axes = plt.subplots(*grid, **subplots)
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(Path(path))
    finally:
        plt.close(fig)


def plot_trajectories(trajectories: Sequence[Any], path: str | Path, *, targets: Sequence[Any] = (),
                      labels: Sequence[str] | None = None, title: str = "", ground: bool = False) -> Path:
    """Write a PNG of 2-D trajectories (each T x 2, metres) with their targets marked; ``ground``
    draws the y = 0 line of a throw."""
    with figure(path, figsize=(7, 4.5), dpi=110) as (_, ax):
        for i, trajectory in enumerate(trajectories):
            xy = np.asarray(trajectory, dtype=np.float64).reshape(-1, 2)
            ax.plot(xy[:, 0], xy[:, 1], lw=1.6, label=labels[i] if labels else None)
            ax.plot(xy[-1, 0], xy[-1, 1], "o", ms=4, color=ax.lines[-1].get_color())
        for j, target in enumerate(targets):
            t = np.asarray(target, dtype=np.float64).reshape(-1, 2)
            ax.plot(t[:, 0], t[:, 1], "x", color="crimson", ms=9, mew=2, label="target" if j == 0 else None)
        if ground:
            ax.axhline(0.0, color="0.4", lw=1)
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(alpha=0.3)
        if title:
            ax.set_title(title)
        if labels or len(targets):
            ax.legend(loc="best", fontsize=8)
    return Path(path)


def render_frames(model: Any, physics: Sequence[np.ndarray], *, width: int = 320, height: int = 240,
                  camera: int | str = -1, distance: float | None = None) -> list[np.ndarray]:
    """RGB frames (H x W x 3 uint8) of ``model`` at each full physics state, rendered offscreen
    (``MUJOCO_GL`` egl or osmesa); RuntimeError with what to install where neither works."""
    mujoco = require_mujoco()
    data = mujoco.MjData(model)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    try:
        renderer = mujoco.Renderer(model, height, width)
    except Exception as exc:  # the GL backends raise many types
        raise RuntimeError(f"cannot render headless with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} ({exc}): "
                           "install Mesa EGL (libegl1 libegl-mesa0 libgl1-mesa-dri) or OSMesa (libosmesa6), and "
                           "set MUJOCO_GL=egl or osmesa before mujoco is imported") from exc
    try:
        cam = mujoco.MjvCamera()
        mujoco.mjv_defaultFreeCamera(model, cam)
        if distance is not None:
            cam.distance = distance
        cam.elevation = -90.0 if camera == "top" else cam.elevation
        frames = []
        for state in physics:
            mujoco.mj_setState(model, data, np.asarray(state, dtype=np.float64), spec)
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=cam if camera in (-1, "top") else camera)
            frames.append(renderer.render().copy())
    finally:
        renderer.close()
    return frames


def save_gif(frames: Sequence[np.ndarray], path: str | Path, fps: float = 25.0) -> Path:
    """Write frames as an animated, looping GIF with Pillow."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(VIZ) from exc
    if not frames:
        raise ValueError("save_gif: no frames to write")
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    out = Path(path)
    images[0].save(out, save_all=True, append_images=images[1:], duration=max(int(round(1000.0 / fps)), 20), loop=0)
    return out
