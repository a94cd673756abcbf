"""Task dicts a user writes (``{"task": "throw", "target": [20, 0], ...}``) parsed into checked
attrs values; a bad field raises ValueError naming it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from .physics import ArmParams


def number_field(task: Mapping[str, Any], key: str, default: float | None = None, *, low: float | None = None,
                 high: float | None = None, strict_low: bool = False) -> float:
    """``task[key]`` as a finite float inside [low, high] (``> low`` if strict_low)."""
    if key not in task:
        if default is None:
            raise ValueError(f"world task: missing key {key!r}")
        return float(default)
    value = task[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"world task: {key!r} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"world task: {key!r} must be finite, got {value}")
    if low is not None and (value <= low if strict_low else value < low):
        raise ValueError(f"world task: {key!r} must be {'>' if strict_low else '>='} {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"world task: {key!r} must be <= {high}, got {value}")
    return value


def _point(value: Any, key: str) -> tuple[float, float]:
    """A finite 2-D point."""
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"world task: {key!r} must be a point [x, y] in metres, got {value!r}") from None
    if isinstance(value, (str, bytes)) or not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"world task: {key!r} must be a finite point [x, y] in metres, got {value!r}")
    return x, y


def int_field(task: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    """``task[key]`` as an int inside [low, high]."""
    value = task.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"world task: {key!r} must be an int in [{low}, {high}], got {value!r}")
    return value


@attrs.frozen
class ThrowTask:
    """Throw a body so its ``bounces + 1``-th ground contact lands on ``target`` (x, 0), thrown
    along ``azimuth`` (rad, from the world x axis toward y; set by a 3-D ground target)."""

    target: tuple[float, float]
    mass: float = 0.15
    radius: float = 0.025
    drag_coeff: float = 0.47
    max_speed: float = 30.0
    angle: float | None = None  # degrees; None = free
    height: float = 0.0
    restitution: float = 0.5
    friction: float = 0.3
    bounces: int = 0
    tolerance: float = 0.05
    azimuth: float = 0.0
    kind = "throw"


@attrs.frozen
class ReachTask:
    """Drive the 2-link arm's tip to ``target`` within ``horizon`` control steps."""

    target: tuple[float, float]
    horizon: int = 50
    q0: tuple[float, float] = (0.0, 0.0)
    effort: float = 1e-3
    tolerance: float = 0.01
    arm: ArmParams = ArmParams()
    kind = "reach"


@attrs.frozen
class TrackTask:
    """Push a point mass through ``waypoints`` in order, ``steps_per_waypoint`` steps apart."""

    waypoints: tuple[tuple[float, float], ...]
    start: tuple[float, float] = (0.0, 0.0)
    steps_per_waypoint: int = 20
    mass: float = 1.0
    max_force: float = 5.0
    dt: float = 0.05
    effort: float = 1e-3
    tolerance: float = 0.05
    kind = "track"


Task = ThrowTask | ReachTask | TrackTask


def _ground_target(value: Any) -> tuple[tuple[float, float], float]:
    """A throw's target: [x, 0.0] in the throw plane, or a world-frame ground point [x, y, 0.0]
    (z up) as (distance, 0.0) along the azimuth atan2(y, x)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 3:
        return _point(value, "target"), 0.0
    try:
        x, y, z = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"world task: 'target' must be [x, 0.0] or a ground point [x, y, 0.0] in metres, got {value!r}") from None
    if not all(math.isfinite(v) for v in (x, y, z)):
        raise ValueError(f"world task: 'target' must be finite, got {value!r}")
    if z != 0.0:
        raise ValueError(f"world task: a throw's 3-D 'target' must lie on the ground [x, y, 0.0], got {list(value)}")
    return (math.hypot(x, y), 0.0), math.atan2(y, x)


def _throw(t: Mapping[str, Any]) -> ThrowTask:
    target, azimuth = _ground_target(t["target"])
    if target[1] != 0.0:
        raise ValueError(f"world task: a throw's 'target' must lie on the ground [x, 0.0], got {list(target)}")
    angle = None if t.get("angle") is None else number_field(t, "angle", low=0.0, high=90.0, strict_low=True)
    if angle is not None and angle >= 90.0:
        raise ValueError(f"world task: 'angle' must be below 90 degrees, got {angle}")
    return ThrowTask(
        target=target, mass=number_field(t, "mass", 0.15, low=0.0, strict_low=True),
        radius=number_field(t, "radius", 0.025, low=0.0), drag_coeff=number_field(t, "drag_coeff", 0.47, low=0.0),
        max_speed=number_field(t, "max_speed", 30.0, low=0.0, strict_low=True), angle=angle,
        height=number_field(t, "height", 0.0, low=0.0), restitution=number_field(t, "restitution", 0.5, low=0.0, high=1.0),
        friction=number_field(t, "friction", 0.3, low=0.0), bounces=int_field(t, "bounces", 0, 0, 5),
        tolerance=number_field(t, "tolerance", 0.05, low=0.0, strict_low=True), azimuth=azimuth)


def _reach(t: Mapping[str, Any]) -> ReachTask:
    q0 = _point(t.get("q0", (0.0, 0.0)), "q0")
    return ReachTask(target=_point(t["target"], "target"), horizon=int_field(t, "horizon", 50, 1, 1000), q0=q0,
                     effort=number_field(t, "effort", 1e-3, low=0.0),
                     tolerance=number_field(t, "tolerance", 0.01, low=0.0, strict_low=True))


def _track(t: Mapping[str, Any]) -> TrackTask:
    raw = t["waypoints"]
    if isinstance(raw, (str, bytes)) or not hasattr(raw, "__len__") or len(raw) == 0:
        raise ValueError(f"world task: 'waypoints' must be a non-empty list of [x, y] points, got {raw!r}")
    waypoints = tuple(_point(w, f"waypoints[{i}]") for i, w in enumerate(raw))
    return TrackTask(waypoints=waypoints, start=_point(t.get("start", (0.0, 0.0)), "start"),
                     steps_per_waypoint=int_field(t, "steps_per_waypoint", 20, 1, 500),
                     mass=number_field(t, "mass", 1.0, low=0.0, strict_low=True),
                     max_force=number_field(t, "max_force", 5.0, low=0.0, strict_low=True),
                     dt=number_field(t, "dt", 0.05, low=0.0, strict_low=True), effort=number_field(t, "effort", 1e-3, low=0.0),
                     tolerance=number_field(t, "tolerance", 0.05, low=0.0, strict_low=True))


_PARSERS = {"throw": _throw, "reach": _reach, "track": _track}
_REQUIRED = {"throw": ("target",), "reach": ("target",), "track": ("waypoints",)}


def parse_task(task: Any) -> Task:
    """Check a task dict and return its value class; ValueError names the bad field."""
    if not isinstance(task, Mapping):
        raise ValueError(f"world task must be a dict such as {{'task': 'throw', 'target': [20.0, 0.0]}}, got {type(task).__name__}")
    name = task.get("task")
    if not isinstance(name, str) or name not in _PARSERS:
        raise ValueError(f"world task: unknown 'task' {name!r}; expected one of {sorted(_PARSERS)}")
    for key in _REQUIRED[name]:
        if key not in task:
            raise ValueError(f"world task: missing key {key!r} for a {name!r} task")
    return _PARSERS[name](task)
