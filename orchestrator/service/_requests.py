"""Parsing and validation of request bodies: typed values out, or a RequestError naming the field.

Checks here are structural (types, sizes, ranges) so that nothing hostile reaches a plugin; the
plugin's own ``init_state`` still judges the puzzle itself (e.g. a Sudoku whose givens conflict),
and the solver turns its refusal into a 422 on ``puzzle``.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from collections.abc import Mapping
from typing import Any, Union

import attrs
import numpy as np

from ._errors import RequestError
from ._limits import Limits

#: A validated puzzle: a square grid of ints (Sudoku, 0 = blank) or a maze (equal-length strings).
Puzzle = Union[list[list[int]], list[str]]

MODES = ("irp", "bare")
MAZE_CHARS = frozenset("# SG")
_MAX_SEED = 2**63 - 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_json(body: bytes | str, limits: Limits = Limits()) -> Any:
    """Decode a JSON request body; 413 past ``limits.max_body_bytes``, 422 if it is not JSON
    (including nesting too deep for the decoder)."""
    if len(body) > limits.max_body_bytes:
        raise RequestError(f"request body is {len(body)} bytes, the limit is {limits.max_body_bytes}; "
                           "send a smaller puzzle", status=413)
    try:
        return json.loads(body)
    except RecursionError:
        raise RequestError("request body is nested too deeply to be a puzzle", field="body") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"request body is not valid JSON: {exc}", field="body") from None


def _object(body: Any, allowed: set[str], what: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise RequestError(f"{what} must be a JSON object, got {type(body).__name__}", field="body")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise RequestError(f"unknown field(s) {unknown}; {what} takes {sorted(allowed)}", field=str(unknown[0]))
    return body


def parse_int(value: Any, field: str, lo: int, hi: int) -> int:
    """``value`` as an int in ``lo..hi`` (bools and floats refused), else a 422 naming ``field``."""
    if not _is_int(value):
        raise RequestError(f"{field} must be an integer, got {type(value).__name__}", field=field)
    if not lo <= value <= hi:
        shown = str(value) if abs(value) < 10**30 else f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
        raise RequestError(f"{field} must be in {lo}..{hi}, got {shown}", field=field)
    return value


def parse_puzzle(value: Any, limits: Limits = Limits(), *, field: str = "puzzle") -> Puzzle:
    """A Sudoku grid (n lists of n ints in 0..n, 0 = blank) or a maze (rows of '#', ' ', 'S', 'G'),
    checked for shape, size and types; a :class:`RequestError` names the first bad element."""
    hint = "a Sudoku grid (n lists of n integers, 0 = blank) or a maze (a list of equal-length strings)"
    if not isinstance(value, list) or not value:
        raise RequestError(f"{field} must be {hint}, got {type(value).__name__ if value != [] else 'an empty list'}",
                           field=field)
    n = len(value)
    if n > limits.max_grid:
        raise RequestError(f"{field} has {n} rows, the limit is {limits.max_grid}", field=field)
    if all(isinstance(row, str) for row in value):
        width = len(value[0])
        for r, row in enumerate(value):
            if len(row) != width:
                raise RequestError(f"maze rows must have equal length: row 0 has {width}, row {r} has {len(row)}",
                                   field=f"{field}[{r}]")
            bad = set(row) - MAZE_CHARS
            if bad:
                raise RequestError(f"maze row {r} has symbol(s) {sorted(bad)!r:.40}; allowed are '#', ' ', 'S', 'G'",
                                   field=f"{field}[{r}]")
        if width > limits.max_grid:
            raise RequestError(f"{field} rows are {width} wide, the limit is {limits.max_grid}", field=field)
        return list(value)
    grid: list[list[int]] = []
    cells = range(n + 1)
    for r, row in enumerate(value):
        if type(row) is list and len(row) == n and all(type(cell) is int and cell in cells for cell in row):
            grid.append(list(row))  # the usual row, checked at once; the loop below names a bad cell
            continue
        if not isinstance(row, list):
            raise RequestError(f"{field} row {r} must be a list of integers, got {type(row).__name__}; "
                               f"{field} must be {hint}", field=f"{field}[{r}]")
        if len(row) != n:
            raise RequestError(f"a Sudoku grid must be square: {n} rows, but row {r} has {len(row)} cells",
                               field=f"{field}[{r}]")
        grid.append([parse_int(cell, f"{field}[{r}][{c}]", 0, n) for c, cell in enumerate(row)])
    return grid


IMAGE_FORMATS = ("PNG", "JPEG")


def parse_image(value: Any, limits: Limits = Limits(), *, field: str = "image") -> np.ndarray:
    """A base64 PNG or JPEG as an H x W uint8 gray image; its size is checked from the header
    before any pixel is decoded (no decompression bombs)."""
    if not isinstance(value, str) or not value:
        raise RequestError(f"{field} must be a base64 string of a PNG or JPEG file, got {type(value).__name__}",
                           field=field)
    try:
        raw = base64.b64decode(value.split(",", 1)[-1] if value.startswith("data:") else value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{field} is not valid base64", field=field) from None
    try:
        from PIL import Image
    except ImportError:
        raise RequestError("reading images needs Pillow on the server: pip install 'sage-irp[viz]'", field=field,
                           status=501) from None
    try:
        with Image.open(io.BytesIO(raw), formats=IMAGE_FORMATS) as image:
            width, height = image.size
            if width * height > limits.max_image_pixels:
                raise RequestError(f"{field} is {width} x {height} pixels, the limit is {limits.max_image_pixels} "
                                   "pixels; send a smaller picture", field=field)
            return np.asarray(image.convert("L"), dtype=np.uint8)
    except RequestError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for hostile files
        raise RequestError(f"{field} is not a readable PNG or JPEG image ({type(exc).__name__})", field=field) from None


@attrs.frozen(slots=True)
class SolveRequest:
    """One puzzle to solve: by ``plugin`` (default ``hrm``), in ``mode`` ``irp`` (refine, restart
    under symmetries) or ``bare`` (the model alone), at most ``max_steps`` steps (None: the
    plugin's default), with ``seed`` for the refinement's randomness. With an ``image`` instead
    of a puzzle, the ``reader`` plugin (default ``vision``) reads the puzzle off it first."""

    puzzle: Puzzle | None
    mode: str = "irp"
    max_steps: int | None = None
    plugin: str = "hrm"
    seed: int = 0
    image: np.ndarray | None = attrs.field(default=None, eq=False)
    reader: str = "vision"

    def context(self) -> dict[str, Any]:
        """The plugin context (``ctx`` of ``init_state``) of this request."""
        ctx: dict[str, Any] = {"mode": self.mode, "seed": self.seed}
        if self.max_steps is not None:
            ctx["max_steps"] = self.max_steps
        return ctx


def _plugin_name(value: Any, field: str = "plugin") -> str:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise RequestError(f"{field} must be a plugin name (a short string), got {type(value).__name__}", field=field)
    return value


def parse_solve(body: Any, limits: Limits = Limits()) -> SolveRequest:
    """``{"puzzle" | "image", "mode"?, "max_steps"?, "plugin"?, "seed"?}`` as a :class:`SolveRequest`."""
    body = _object(body, {"puzzle", "image", "mode", "max_steps", "plugin", "seed"}, "a solve request")
    if ("puzzle" in body) == ("image" in body):
        raise RequestError("give exactly one of 'puzzle' (a Sudoku grid or a maze) or 'image' (a base64 PNG or JPEG)",
                           field="puzzle")
    puzzle = parse_puzzle(body["puzzle"], limits) if "puzzle" in body else None
    image = parse_image(body["image"], limits) if "image" in body else None
    mode = body.get("mode", "irp")
    if mode not in MODES:
        raise RequestError(f"mode must be 'irp' or 'bare', got {mode!r:.40}", field="mode")
    max_steps = body.get("max_steps")
    if max_steps is not None:
        max_steps = parse_int(max_steps, "max_steps", 1, limits.max_steps)
    seed = parse_int(body.get("seed", 0), "seed", 0, _MAX_SEED)
    return SolveRequest(puzzle, mode, max_steps, _plugin_name(body.get("plugin", "hrm")), seed, image)


@attrs.frozen(slots=True)
class RunRequest:
    """A pipeline run: ``pipeline`` (a name under the pipelines folder) or ``toml`` (the text of a
    pipeline file), ``inputs`` by node name, ``budget`` in ATP (None: the pipeline's)."""

    pipeline: str | None = None
    toml: str | None = None
    inputs: dict[str, Any] = attrs.field(factory=dict)
    budget: float | None = None


def parse_run(body: Any, limits: Limits = Limits()) -> RunRequest:
    """``{"pipeline": NAME | "toml": TEXT, "inputs"?: {node: value}, "budget"?: ATP}`` as a :class:`RunRequest`."""
    body = _object(body, {"pipeline", "toml", "inputs", "budget"}, "a run request")
    pipeline, toml = body.get("pipeline"), body.get("toml")
    if (pipeline is None) == (toml is None):
        raise RequestError("give exactly one of 'pipeline' (a name, see GET /v1/pipelines) or 'toml' (pipeline text)",
                           field="pipeline")
    if pipeline is not None and (not isinstance(pipeline, str) or not pipeline.replace("_", "").replace("-", "").isalnum()
                                 or len(pipeline) > 64):
        raise RequestError(f"pipeline must be a name of letters, digits, '_' or '-', got {pipeline!r:.40}",
                           field="pipeline")
    if toml is not None and not isinstance(toml, str):
        raise RequestError(f"toml must be the text of a pipeline file, got {type(toml).__name__}", field="toml")
    inputs = body.get("inputs", {})
    if not isinstance(inputs, Mapping) or not all(isinstance(k, str) for k in inputs):
        raise RequestError("inputs must be an object mapping node names to input values", field="inputs")
    budget = body.get("budget")
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) \
                or not 0 <= budget <= limits.max_budget:
            raise RequestError(f"budget must be a number of ATP in 0..{limits.max_budget:g}, got {budget!r:.40}",
                               field="budget")
        budget = float(budget)
    return RunRequest(pipeline, toml, dict(inputs), budget)
