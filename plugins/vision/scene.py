"""SceneReader (``vision_scene``): locates a red target marker disc on the ground of a ``scene``
(an image plus its camera) and outputs its centre as a ``target`` (x, y, 0.0) in metres.

Camera model (MuJoCo's): a pinhole at ``pos`` whose rotation ``xmat`` (row-major camera-to-world,
columns = the camera's x right, y up, z axes) looks along its -z; ``fovy`` is the vertical field
of view in degrees, so the focal length is ``f = (height / 2) / tan(fovy / 2)`` pixels and a
camera-frame point (x, y, z) lands at ``u = width / 2 + f x / -z``, ``v = height / 2 - f y / -z``,
pixel (row i, column j) covering [j, j + 1) x [i, i + 1) (checked against MuJoCo renders).

``init_state``: the marker pixels are segmented by redness (R - max(G, B)), each window pixel
becomes a marker coverage in [0, 1] between the ground's and the marker's redness, and the pixels
are back-projected onto the marker's plane (the ground z = 0, or ``marker_height`` above it for a
marker of known thickness): the coverage-weighted centroid and area of their footprints give the
first centre and radius. One IRP step is one Levenberg-Marquardt
iteration of analysis by synthesis on (centre x, centre y, radius): the disc is projected through
the camera (each pixel sampled 4 x 4 on the ground, a smooth edge) and compared with the observed
coverage; energy = the sum of squared differences. ``halt_state``: ``converged`` once an accepted
step moves the estimate by less than 0.01 mm, ``plateau`` once no step lowers the error.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

import sage_core
from sage_core import HaltDecision, IRPPlugin, IRPState

from .image import ImageError, _from_file

#: Redness (R - max(G, B), 0-255) above which a pixel belongs to the marker.
MARKER_REDNESS = 60.0
MIN_PIXELS = 3
MARGIN = 4  #: pixels around the marker's bounding box in the compared window
SUBSAMPLES = 4  #: ground samples per pixel side
EDGE = 0.3  #: width of the disc's smooth edge, in sample footprints
DAMPING, MAX_DAMPING = 1e-3, 1e8
CONVERGED = 1e-5  #: metres: an accepted step shorter than this has converged
CAMERA_FIELDS = "fovy, width, height, pos, xmat"


# -- the scene value ------------------------------------------------------------------------------
def _numbers(camera: Mapping[str, Any], key: str, n: int) -> list[float]:
    value = camera[key]
    try:
        numbers = [float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1)]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != n or not all(map(math.isfinite, numbers)):
        raise ValueError(f"vision_scene: camera {key!r} must be {n} finite numbers, got {value!r}")
    return numbers


def check_camera(camera: Any, image_shape: Sequence[int]) -> dict[str, Any]:
    """The camera as plain floats and ints; ValueError naming a missing or bad field."""
    if not isinstance(camera, Mapping):
        raise ValueError(f"vision_scene: the scene's 'camera' must be a dict with {CAMERA_FIELDS}, got {type(camera).__name__}")
    for key in ("fovy", "width", "height", "pos", "xmat"):
        if key not in camera:
            raise ValueError(f"vision_scene: the scene's camera has no {key!r} (needs {CAMERA_FIELDS})")
    (fovy,) = _numbers(camera, "fovy", 1)
    if not 0.0 < fovy < 180.0:
        raise ValueError(f"vision_scene: camera 'fovy' must be in (0, 180) degrees, got {fovy}")
    height, width = image_shape[:2]
    for key, size in (("width", width), ("height", height)):
        value = camera[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value != size:
            raise ValueError(f"vision_scene: camera {key!r} must be the image's {key} {size} px, got {value!r}")
    xmat = np.array(_numbers(camera, "xmat", 9)).reshape(3, 3)
    if not np.allclose(xmat @ xmat.T, np.eye(3), atol=1e-6) or np.linalg.det(xmat) < 0:
        raise ValueError("vision_scene: camera 'xmat' must be a rotation (row-major 3 x 3, orthonormal, det +1)")
    pos = _numbers(camera, "pos", 3)
    if pos[2] <= 0.0:
        raise ValueError(f"vision_scene: camera 'pos' must be above the ground (z > 0), got {pos}")
    return {"fovy": fovy, "width": int(width), "height": int(height), "pos": pos, "xmat": xmat.reshape(-1).tolist()}


def scene_image(value: Any) -> np.ndarray:
    """The scene's RGB image as H x W x 3 uint8, from an array or a PNG/JPEG path."""
    if isinstance(value, (str, os.PathLike)):
        try:
            value = _from_file(value, "RGB")
        except ImageError as exc:
            raise ImageError(f"vision_scene: {exc}") from None
    if not isinstance(value, np.ndarray) or value.dtype != np.uint8 or value.ndim != 3 or value.shape[2] not in (3, 4):
        what = f"{value.dtype} array of shape {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
        raise ImageError(f"vision_scene: the scene's 'image' must be an H x W x 3 uint8 array or an image path, got {what}")
    return value[..., :3]


def check_scene(scene: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """(RGB image, camera) of a ``scene`` dict; errors name the missing or bad field."""
    if not isinstance(scene, Mapping):
        raise ValueError(f"vision_scene: the input must be a scene dict {{'image', 'camera'}}, got {type(scene).__name__}")
    for key in ("image", "camera"):
        if key not in scene:
            raise ValueError(f"vision_scene: the scene has no {key!r} (a scene is {{'image', 'camera'}})")
    image = scene_image(scene["image"])
    return image, check_camera(scene["camera"], image.shape)


# -- the camera model -----------------------------------------------------------------------------
def _focal(camera: Mapping[str, Any]) -> float:
    return 0.5 * camera["height"] / math.tan(math.radians(camera["fovy"]) / 2.0)


def to_pixels(camera: Mapping[str, Any], points: Any) -> np.ndarray:
    """Pixel coordinates (N x 2: u right, v down; pixel (i, j) spans [j, j + 1) x [i, i + 1)) of
    world points (N x 3) in front of the camera."""
    rotation = np.asarray(camera["xmat"], dtype=np.float64).reshape(3, 3)
    local = (np.asarray(points, dtype=np.float64).reshape(-1, 3) - np.asarray(camera["pos"])) @ rotation
    f, depth = _focal(camera), -local[:, 2]
    return np.column_stack([camera["width"] / 2 + f * local[:, 0] / depth, camera["height"] / 2 - f * local[:, 1] / depth])


def ground_points(camera: Mapping[str, Any], uv: torch.Tensor, height: float = 0.0) -> torch.Tensor:
    """Where the rays through pixel coordinates ``uv`` (N x 2) meet the plane z = ``height`` (N x 2);
    ValueError if one looks at or above the horizon."""
    rotation = torch.tensor(camera["xmat"], dtype=torch.float64).reshape(3, 3)
    f = _focal(camera)
    local = torch.stack([(uv[:, 0] - camera["width"] / 2) / f, -(uv[:, 1] - camera["height"] / 2) / f,
                         -torch.ones(len(uv), dtype=torch.float64)], dim=1)
    rays = local @ rotation.T
    if bool((rays[:, 2] >= -1e-9).any()):
        raise ValueError("vision_scene: the marker lies at or above the horizon: it is not on the ground z = 0 in view")
    pos = torch.tensor(camera["pos"], dtype=torch.float64)
    return pos[:2] + ((height - pos[2]) / rays[:, 2])[:, None] * rays[:, :2]


@functools.lru_cache(maxsize=8)
def _samples(camera_key: str, window: tuple[int, int, int, int], height: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Points on the marker plane z = ``height`` of every window pixel's S x S samples (P x S^2 x 2)
    and each sample's footprint length there (P x 1); cached, never modified."""
    camera = json.loads(camera_key)
    u0, v0, u1, v1 = window

    def grid(us: torch.Tensor, vs: torch.Tensor) -> torch.Tensor:
        v, u = torch.meshgrid(vs, us, indexing="ij")
        return torch.stack([u, v], -1)

    offsets = (torch.arange(SUBSAMPLES, dtype=torch.float64) + 0.5) / SUBSAMPLES
    pixels = grid(torch.arange(u0, u1, dtype=torch.float64), torch.arange(v0, v1, dtype=torch.float64)).reshape(-1, 1, 2)
    uv = pixels + grid(offsets, offsets).reshape(1, -1, 2)
    points = ground_points(camera, uv.reshape(-1, 2), height).reshape(uv.shape)
    corners = grid(torch.arange(u0, u1 + 1, dtype=torch.float64), torch.arange(v0, v1 + 1, dtype=torch.float64))
    g = ground_points(camera, corners.reshape(-1, 2), height).reshape(corners.shape)
    right, down = g[:-1, 1:] - g[:-1, :-1], g[1:, :-1] - g[:-1, :-1]
    area = (right[..., 0] * down[..., 1] - right[..., 1] * down[..., 0]).abs().reshape(-1, 1)
    return points, area.sqrt() / SUBSAMPLES


def _camera_key(camera: Mapping[str, Any]) -> str:
    return json.dumps(camera, sort_keys=True)


def coverage(camera: Mapping[str, Any], window: Sequence[int], params: torch.Tensor, height: float = 0.0) -> torch.Tensor:
    """The rendered marker: the share of each window pixel (rows x columns) covered by the disc
    ``params`` = (centre x, centre y, radius) lying ``height`` m above the ground, with a smooth edge."""
    points, scale = _samples(_camera_key(camera), tuple(window), float(height))
    distance = ((points - params[:2]) ** 2).sum(-1).add(1e-18).sqrt()
    inside = torch.sigmoid((params[2] - distance) / (EDGE * scale)).mean(-1)
    u0, v0, u1, v1 = window
    return inside.reshape(v1 - v0, u1 - u0)


# -- segmentation and the first estimate ------------------------------------------------------------
def marker_window(image: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The window (u0, v0, u1, v1) around the marker pixels and its observed coverage in [0, 1];
    ImageError if the image shows no marker."""
    rgb = image.astype(np.float32)
    redness = rgb[..., 0] - rgb[..., 1:].max(-1)
    rows, cols = np.nonzero(redness > MARKER_REDNESS)
    if len(rows) < MIN_PIXELS:
        raise ImageError(f"vision_scene: no target marker in the image (fewer than {MIN_PIXELS} red pixels "
                         f"with R - max(G, B) > {MARKER_REDNESS:.0f})")
    h, w = redness.shape
    u0, v0 = max(int(cols.min()) - MARGIN, 0), max(int(rows.min()) - MARGIN, 0)
    u1, v1 = min(int(cols.max()) + MARGIN + 1, w), min(int(rows.max()) + MARGIN + 1, h)
    patch = redness[v0:v1, u0:u1]
    ring = np.concatenate([patch[0], patch[-1], patch[:, 0], patch[:, -1]])
    background, marker = float(np.median(ring)), float(np.percentile(redness[rows, cols], 90))
    observed = np.clip((patch - background) / max(marker - background, 1.0), 0.0, 1.0)
    return (u0, v0, u1, v1), observed.astype(np.float64)


def first_estimate(camera: Mapping[str, Any], window: Sequence[int], observed: np.ndarray, height: float = 0.0) -> torch.Tensor:
    """(x, y, radius) from the coverage-weighted centroid and area of the pixels' footprints on the marker plane."""
    points, scale = _samples(_camera_key(camera), tuple(window), float(height))
    weight = torch.from_numpy(observed).reshape(-1) * (scale[:, 0] * SUBSAMPLES) ** 2
    centre = (weight[:, None] * points.mean(1)).sum(0) / weight.sum()
    return torch.cat([centre, (weight.sum() / math.pi).sqrt()[None]])


# -- the plugin -------------------------------------------------------------------------------------
def _residual(camera: Mapping[str, Any], window: Sequence[int], observed: torch.Tensor, height: float) -> Any:
    return lambda params: (coverage(camera, window, params, height) - observed).reshape(-1)


class SceneReader(IRPPlugin):
    """Locates the target marker of a scene on the ground by analysis by synthesis through the known camera."""

    name: ClassVar[str] = "vision_scene"
    version: ClassVar[str] = "1.0.0"
    api_version: ClassVar[int] = sage_core.API_VERSION
    input_kind: ClassVar[str] = "scene"
    output_kind: ClassVar[str] = "target"

    def __init__(self, marker_height: float = 0.0) -> None:
        if isinstance(marker_height, bool) or not isinstance(marker_height, (int, float)) or not 0.0 <= marker_height < 1.0:
            raise ValueError(f"vision_scene: marker_height must be a number of metres in [0, 1), got {marker_height!r}")
        self.marker_height = float(marker_height)

    @classmethod
    def example(cls) -> tuple[Any, dict[str, Any]]:
        """A small synthetic scene drawn with numpy (no MuJoCo) for the conformance kit."""
        return example_scene(), {"seed": 0}

    def init_state(self, x0: Any, ctx: Mapping[str, Any]) -> IRPState:
        image, camera = check_scene(x0)
        window, observed = marker_window(image)
        params = first_estimate(camera, window, observed, self.marker_height)
        obs = torch.from_numpy(observed)
        error = float((_residual(camera, window, obs, self.marker_height)(params) ** 2).sum())
        x = {"params": params, "observed": obs, "damping": torch.tensor(DAMPING, dtype=torch.float64),
             "error": torch.tensor(error, dtype=torch.float64)}
        meta = {"camera": camera, "window": list(window), "marker_height": self.marker_height,
                "seed": int(ctx.get("seed", 0)), "moved": None}
        return IRPState(x=x, energy=error, meta=meta)

    def energy(self, state: IRPState) -> float:
        return float(state.x["error"])

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        x, camera, window = state.x, state.meta["camera"], state.meta["window"]
        residual = _residual(camera, window, x["observed"], self.marker_height)
        params, damping = x["params"], x["damping"]
        res = residual(params)
        jac = torch.func.jacfwd(residual)(params)
        normal = jac.T @ jac
        delta = torch.linalg.solve(normal + damping * torch.diag(torch.diagonal(normal).clamp(min=1e-12)),
                                   -(jac.T @ res))
        proposal = torch.cat([params[:2] + delta[:2], (params[2:] + delta[2:]).clamp(min=1e-3)])
        error = (residual(proposal) ** 2).sum()
        better = bool(error < x["error"])
        new_x = {**x, "params": proposal if better else params,
                 "damping": (damping / 3.0 if better else damping * 4.0).clamp(1e-9, 1e12),
                 "error": error if better else x["error"]}
        moved = float((proposal - params).norm()) if better else None
        return IRPState(x=new_x, step=state.step + 1, energy=float(new_x["error"]), meta={**state.meta, "moved": moved})

    def halt_state(self, state: IRPState) -> HaltDecision | None:
        moved = state.meta["moved"]
        if moved is not None and moved < CONVERGED:
            return HaltDecision("converged", f"converged: the last step moved the marker {moved * 1000:.4f} mm")
        if float(state.x["damping"]) > MAX_DAMPING:
            return HaltDecision("plateau", f"plateau: no step lowers the reconstruction error {float(state.x['error']):.4g}")
        return None

    # -- what the next node and the demos read ------------------------------------------------------
    def output(self, state: IRPState) -> list[float]:
        """The marker's centre on the ground, (x, y, 0.0) metres in the world frame (``target``)."""
        x, y = (float(v) for v in state.x["params"][:2])
        return [x, y, 0.0]

    @staticmethod
    def radius(state: IRPState) -> float:
        """The marker's estimated radius in metres."""
        return float(state.x["params"][2])

    @staticmethod
    def outline(state: IRPState, n: int = 64) -> np.ndarray:
        """Pixel coordinates (n x 2) of the estimated marker's rim in the scene image."""
        cx, cy, r = (float(v) for v in state.x["params"])
        theta = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
        rim = np.column_stack([cx + r * np.cos(theta), cy + r * np.sin(theta), np.full(n, state.meta["marker_height"])])
        return to_pixels(state.meta["camera"], rim)

    to_pixels = staticmethod(to_pixels)


# -- a numpy-drawn scene for the conformance kit and the unit tests ---------------------------------
EXAMPLE_CAMERA = {"fovy": 50.0, "width": 160, "height": 120, "pos": [-6.0, 0.0, 12.0],
                  "xmat": [0.0, 0.6, -0.8, -1.0, 0.0, 0.0, 0.0, 0.8, 0.6]}


def example_scene(centre: Sequence[float] = (9.3, -1.2), radius: float = 0.6,
                  camera: Mapping[str, Any] = EXAMPLE_CAMERA) -> dict[str, Any]:
    """A scene drawn with this module's own camera model: a red disc on plain grass."""
    window = (0, 0, camera["width"], camera["height"])
    cover = coverage(dict(camera), window, torch.tensor([*centre, radius], dtype=torch.float64)).numpy()[..., None]
    grass, red = np.array([80.0, 130.0, 75.0]), np.array([230.0, 20.0, 20.0])
    image = np.rint(grass * (1.0 - cover) + red * cover).astype(np.uint8)
    return {"image": image, "camera": dict(camera)}
