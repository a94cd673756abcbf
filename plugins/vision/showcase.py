"""Held-out photo-like images for demos, and where each cell of a reading lies in its image.

``render_held_out`` draws a grid in an evaluation font (never used in training) with mild noise,
blur, a small turn and perspective; ``cell_centres`` maps a reading's cells back onto the image
through the located corners, so a demo can write digits into the picture.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from plugins.puzzles import render
from plugins.puzzles.fonts import EVAL_FONTS
from plugins.puzzles.geometry import apply_homography, homography

from .data import EVAL_SEED

UNIT_SQUARE = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)


#: Picture generator of held-out maze pictures (``sage demo robot``), apart from every other seed.
MAZE_PICTURE_SEED = 9016


def render_held_out(grid: Any, seed: int = 0) -> np.ndarray:
    """``grid`` as a gray H x W uint8 photo-like image in an evaluation font (by ``seed``). A Sudoku
    (n x n ints, 0 = blank): noise sigma 12, blur 0.6, up to 3 degrees turned, 4 % perspective; a
    maze (its lines of ``#``, space, ``S``, ``G``): a random style of the vision benchmark's mild level."""
    if len(grid) and isinstance(grid[0], str):
        rng = np.random.default_rng([MAZE_PICTURE_SEED, seed])
        return render.render(list(grid), render.sample_style("mild", len(grid), rng, EVAL_FONTS), rng).image
    n = len(grid)
    rng = np.random.default_rng([EVAL_SEED, 15, seed])
    style = render.Style(font=EVAL_FONTS[seed % len(EVAL_FONTS)], cell_px=420.0 / (n + 1.4), margin=0.7,
                         rotation=float(rng.uniform(-3, 3)), perspective=0.04, blur=0.6, noise=12.0,
                         glyph_jitter=1.5, ink=int(rng.integers(10, 50)), paper=int(rng.integers(220, 250)))
    return render.render(np.asarray(grid), style, rng).image


def cell_centres(corners: Any, size: int) -> tuple[np.ndarray, float]:
    """((size, size, 2) x, y pixel centres of the cells, mean cell side in pixels) of a grid whose
    outer corners (TL, TR, BR, BL; x, y) are ``corners``."""
    quad = np.asarray(corners, dtype=np.float64).reshape(4, 2)
    t = (np.arange(size) + 0.5) / size
    uv = np.stack(np.meshgrid(t, t), -1)
    side = float(np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1).mean())
    return apply_homography(homography(UNIT_SQUARE, quad), uv), side / size
