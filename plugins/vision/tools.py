"""The vision plugin's LLM tool ``read_puzzle_image``, declared through ``sage_register_tools``.

The calling model sends a PNG or JPEG file as base64; ``prepare`` decodes it with Pillow into a
uint8 gray array (its size checked from the header before any pixel is decoded), and one
VisionReader session reads it; the answer is the grid read, in the HRM's input format.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from sage_core import ToolSpec

from .image import VIZ_HINT
from .plugin import KINDS

#: Largest picture decoded (width x height), checked before decoding: no decompression bombs.
MAX_PIXELS = 4_000_000
FORMATS = ("PNG", "JPEG")

READ_SCHEMA = {
    "type": "object",
    "properties": {
        "image": {"type": "string", "contentEncoding": "base64",
                  "description": "a PNG or JPEG file of a Sudoku (4x4, 6x6, 9x9) or maze, base64-encoded "
                                 "(a 'data:image/png;base64,' prefix is allowed)"},
        "kind": {"type": "string", "enum": sorted(KINDS),
                 "description": "what the picture shows (default: told from the picture)"},
        "size": {"type": "integer", "minimum": 4, "maximum": 31,
                 "description": "cells per side: 4, 6 or 9 for a Sudoku, odd for a maze (default: counted)"},
    },
    "required": ["image"],
    "additionalProperties": False,
}

READ_ANSWER = {
    "description": "the grid read: rows of integers (0 = blank) for a Sudoku, or one string per row for a "
                   "maze ('#' wall, ' ' open, 'S' start, 'G' goal)",
    "anyOf": [{"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
              {"type": "array", "items": {"type": "string"}}],
}


def decode_image(value: Any) -> np.ndarray:
    """An H x W uint8 gray array from a base64 PNG or JPEG; ValueError naming ``image``."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"image: expected a base64 string of a PNG or JPEG file, got {type(value).__name__}")
    payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        raw = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("image: not valid base64 (letters, digits, '+', '/', '=' padding)") from None
    try:
        from PIL import Image
    except ImportError:
        raise ValueError(f"image: decoding PNG/JPEG needs Pillow on the server: {VIZ_HINT}") from None
    try:
        with Image.open(io.BytesIO(raw), formats=FORMATS) as img:
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise ValueError(f"image: {width} x {height} pixels is over the {MAX_PIXELS} pixel limit; "
                                 "send a smaller picture")
            return np.asarray(img.convert("L"), dtype=np.uint8)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds of error for broken or hostile files
        raise ValueError(f"image: not a readable PNG or JPEG file ({type(exc).__name__})") from None


def prepare_read(arguments: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """(gray image, context) of a ``read_puzzle_image`` call."""
    ctx: dict[str, Any] = {}
    kind = arguments.get("kind")
    if kind is not None:
        if kind not in KINDS:
            raise ValueError(f"kind: must be one of {sorted(KINDS)}, got {kind!r}")
        ctx["kind"] = kind
    size = arguments.get("size")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or not 4 <= size <= 31:
            raise ValueError(f"size: must be an integer in 4..31 (4, 6, 9 for a Sudoku, odd for a maze), got {size!r}")
        ctx["size"] = size
    return decode_image(arguments.get("image")), ctx


READ_PUZZLE_IMAGE = ToolSpec(
    name="read_puzzle_image",
    description="Read a picture (PNG or JPEG, base64) of a Sudoku (4x4, 6x6, 9x9) or a maze into its grid with "
                "sage's vision reader (a small trained cell model refined by analysis by synthesis); pass the "
                "grid to solve_sudoku or solve_maze.",
    plugin="vision", input_schema=READ_SCHEMA, prepare=prepare_read, answer_schema=READ_ANSWER,
)

TOOLS = (READ_PUZZLE_IMAGE,)
