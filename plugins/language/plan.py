"""World plans (a throw: speed, angle, flight time, landing point; a tracked path) in one or two
sentences filled with the plan's figures, and the check of such text against the plan."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from plugins.puzzles.claims import CheckResult, Claim

_NUM = r"(-?\d+(?:\.\d+)?)"
_PATTERNS = {
    "speed": re.compile(rf"at {_NUM} m/s"),
    "angle": re.compile(rf"{_NUM} degrees"),
    "flight_time": re.compile(rf"after {_NUM} s"),
    "landing": re.compile(rf"lands at x = {_NUM} m"),
    "points": re.compile(r"tracked path of (\d+) points"),
    "end": re.compile(rf"ends at \({_NUM}, {_NUM}\) m"),
}


def plan_figures(plan: Mapping[str, Any]) -> dict[str, Any]:
    """The figures a plan text states, from a world plan dict (``action`` = [speed, angle rad],
    ``landing``, optional ``flight_time`` and ``trajectory`` / ``path``) or a plain one
    (``speed``, ``angle`` in degrees, ``flight_time``, ``landing``)."""
    if not isinstance(plan, Mapping):
        raise ValueError(f"a plan must be a dict, got {type(plan).__name__}")
    figures: dict[str, Any] = {}
    if "action" in plan and np.asarray(plan["action"]).shape == (2,):
        speed, angle = (float(v) for v in np.asarray(plan["action"], dtype=np.float64))
        figures["speed"], figures["angle"] = speed, math.degrees(angle)
    elif "speed" in plan and "angle" in plan:
        figures["speed"], figures["angle"] = float(plan["speed"]), float(plan["angle"])
    if "flight_time" in plan:
        figures["flight_time"] = float(plan["flight_time"])
    if "landing" in plan:
        landing = np.asarray(plan["landing"], dtype=np.float64).reshape(-1)
        figures["landing"] = float(landing[0])
    path = plan.get("path", plan.get("trajectory") if "speed" not in figures else None)
    if path is not None:
        pts = np.asarray(path, dtype=np.float64).reshape(-1, 2)
        figures["points"], figures["end"] = len(pts), (float(pts[-1, 0]), float(pts[-1, 1]))
    if not figures:
        raise ValueError("a plan needs a throw (action or speed and angle, landing) or a path: "
                         f"got keys {sorted(plan)}")
    return figures


def plan_text(plan: Mapping[str, Any]) -> str:
    """One or two sentences stating the plan's figures."""
    f = plan_figures(plan)
    sentences = []
    if "speed" in f:
        s = f"Throw at {f['speed']:.2f} m/s, {f['angle']:.1f} degrees up"
        if "landing" in f:
            s += (f"; it lands at x = {f['landing']:.2f} m" +
                  (f" after {f['flight_time']:.2f} s" if "flight_time" in f else ""))
        sentences.append(s + ".")
    if "points" in f:
        sentences.append(f"It follows a tracked path of {f['points']} points that ends at "
                         f"({f['end'][0]:.2f}, {f['end'][1]:.2f}) m.")
    return " ".join(sentences)


def check_plan(plan: Mapping[str, Any], text: str) -> CheckResult:
    """Each figure the text states, true when it equals the plan's to the text's rounding; a
    figure of the plan that the text does not state is a false claim."""
    f = plan_figures(plan)
    claims = []
    for key, want in f.items():
        m = _PATTERNS[key].search(text)
        if not m:
            claims.append(Claim(key, False, f"the text does not state the {key.replace('_', ' ')}"))
            continue
        got = [float(g) for g in m.groups()]
        ref = [float(v) for v in (want if isinstance(want, tuple) else (want,))]
        ok = all(abs(g - r) <= 0.5 * 10 ** -_decimals(s) + 1e-9 for g, r, s in zip(got, ref, m.groups()))
        claims.append(Claim(m.group(0), ok, f"{key} {'matches' if ok else 'differs from'} the plan's {want}"))
    return CheckResult(tuple(claims))


def _decimals(number: str) -> int:
    return len(number.split(".")[1]) if "." in number else 0
