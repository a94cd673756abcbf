"""Finding a puzzle grid in an image, rectifying it and cutting it into cells (numpy only).

Work happens on a copy at most :data:`WORK_SIDE` pixels a side (block means: anti-aliased and
less noisy). Ink is measured as *darkness* against a local paper estimate, so uneven lighting
cancels out. The grid's outer quadrilateral is spanned by the extreme ink pixels along the two
diagonals (a square turned by up to +-15 degrees and tilted by a perspective keeps its corners
extreme there), counting only ink with ink around it (a speck of noise near the image's edge
would pull a corner off the grid); the kind (Sudoku or maze) comes from the share of ink, the size from the grid
lines (Sudoku) or the wall pattern (maze).
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from plugins.puzzles import sudoku
from plugins.puzzles.geometry import apply_homography, homography

from .image import ImageError

WORK_SIDE = 480
CELL = 24  #: cells are read as CELL x CELL darkness patches
OVERVIEW = 360  #: samples across the grid when looking for its lines
ALONG = 40  #: samples along each line
INK = 0.35  #: darkness above which a pixel is ink
SUPPORT_RADIUS = 3  #: an ink pixel spans the outline only with SUPPORT ink pixels in its 7 x 7 square
SUPPORT = 10
LINE_SHARE = 0.3  #: a grid's weakest inner line is at least this share of the strongest grid's
SOLID = 0.3  #: share of solid ink inside a grid above which it is a maze
SUDOKU_SIZES = tuple(sorted(sudoku.BOXES))
MAZE_SIZES = tuple(range(5, 42, 2))


@attrs.frozen
class Located:
    """A grid found in an image: its corners (TL, TR, BR, BL in work pixels), kind, size and the
    darkness image the cells are sampled from."""

    dark: np.ndarray
    corners: np.ndarray
    kind: str
    size: int
    scale: float  #: work pixels per input pixel


def _shrink(gray: np.ndarray) -> tuple[np.ndarray, float]:
    f = max(1, math.ceil(max(gray.shape) / WORK_SIDE))
    if f == 1:
        return gray, 1.0
    h, w = (gray.shape[0] // f) * f, (gray.shape[1] // f) * f
    return gray[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3)), 1.0 / f


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) linear interpolation weights, cell-centred, clamped at the ends."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.minimum(pos.astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    m = np.zeros((n_out, n_in), dtype=np.float32)
    np.add.at(m, (np.arange(n_out), lo), 1 - (pos - lo))
    np.add.at(m, (np.arange(n_out), hi), pos - lo)
    return m


def _upsample(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a small map to ``shape``."""
    gh, gw = coarse.shape
    rows = _interp_matrix(shape[0], gh) @ coarse.astype(np.float32)  # (H, gw): small
    cols = _interp_matrix(shape[1], gw)  # (W, gw)
    # the (H, W) product elementwise: a large BLAS call spins threads on a busy machine
    return sum(rows[:, k:k + 1] * cols[:, k] for k in range(gw))


def darkness(gray: np.ndarray) -> np.ndarray:
    """1 - gray / paper, where paper is a smooth estimate of the local background brightness:
    per tile the bright end (90th percentile) of the 3 x 3-smoothed image, and a tile much darker
    than its neighbours (all ink, e.g. a maze's walls) takes their median instead."""
    h, w = gray.shape
    blocks = 10
    bh, bw = max(1, h // blocks), max(1, w // blocks)
    gh, gw = h // bh, w // bw
    smooth = _box3(gray)
    smooth[0, :], smooth[-1, :], smooth[:, 0], smooth[:, -1] = gray[0, :], gray[-1, :], gray[:, 0], gray[:, -1]
    tiles = smooth[:gh * bh, :gw * bw].reshape(gh, bh, gw, bw).transpose(0, 2, 1, 3).reshape(gh, gw, -1)
    paper = np.quantile(tiles, 0.9, axis=-1)
    padded = np.pad(paper, 1, mode="edge")
    around = np.median([padded[i:i + gh, j:j + gw] for i in range(3) for j in range(3)], axis=0)
    paper = np.where(paper < 0.8 * around, around, paper)
    paper = np.maximum(_upsample(paper, (h, w)), 0.05)
    return np.clip(1.0 - gray / paper, 0.0, 1.0)


def _box3(a: np.ndarray) -> np.ndarray:
    """Mean of each 3 x 3 neighbourhood (zero outside)."""
    p = np.pad(a, 1)
    h, w = a.shape
    return sum(p[i:i + h, j:j + w] for i in range(3) for j in range(3)) / np.float32(9.0)


def _supported(ink: np.ndarray, r: int = SUPPORT_RADIUS, least: int = SUPPORT) -> np.ndarray:
    """The ink pixels with at least ``least`` ink pixels in their (2r + 1) square (separable
    sums of shifted slices; uint8 holds up to 255): a grid's border and lines keep theirs,
    specks of noise and stray marks do not."""
    h, w = ink.shape
    p = np.pad(ink.astype(np.uint8), r)
    rows = sum(p[i:i + h] for i in range(2 * r + 1))
    count = sum(rows[:, j:j + w] for j in range(2 * r + 1))
    return ink & (count >= least)


def find_corners(smooth: np.ndarray) -> np.ndarray:
    """The grid's outer corners (TL, TR, BR, BL; x, y) from the extreme supported ink pixels of
    the 3 x 3-smoothed darkness (noise averages out; the border is at least 2 px thick)."""
    ink = _supported(smooth > INK)
    ys, xs = np.nonzero(ink)
    h, w = smooth.shape
    if len(xs) < 0.01 * h * w:
        raise ImageError("no grid found: the image has almost no ink")
    if len(xs) > 0.9 * h * w:
        raise ImageError("no grid found: the image is almost all ink (no paper around a grid)")
    s, d = xs + ys, xs - ys
    idx = [np.argmin(s), np.argmax(d), np.argmax(s), np.argmin(d)]
    outward = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
    corners = np.stack([xs[idx], ys[idx]], axis=1).astype(np.float64) + outward
    sides = np.linalg.norm(corners - np.roll(corners, -1, axis=0), axis=1)
    if sides.min() < 0.2 * min(h, w) or sides.max() > 1.6 * sides.min():
        raise ImageError("no grid found: the ink does not outline a square grid")
    return corners


def sample(dark: np.ndarray, corners: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``dark`` at unit-square points ``uv`` (..., 2) of the grid."""
    pts = apply_homography(homography(np.array([[0, 0], [1, 0], [1, 1], [0, 1]]), corners), uv) - 0.5
    h, w = dark.shape
    x = np.clip(pts[..., 0], 0, w - 1.001).astype(np.float32)
    y = np.clip(pts[..., 1], 0, h - 1.001).astype(np.float32)
    x0, y0 = x.astype(np.int64), y.astype(np.int64)
    fx, fy = x - x0, y - y0
    flat = dark.reshape(-1)
    i = y0 * w + x0
    a, b, c, d = flat.take(i), flat.take(i + 1), flat.take(i + w), flat.take(i + w + 1)
    top = a + (b - a) * fx
    return top + ((c + (d - c) * fx) - top) * fy


def _grid_uv(k: int) -> np.ndarray:
    t = (np.arange(k) + 0.5) / k
    return np.stack(np.meshgrid(t, t), -1)


def line_strengths(dark: np.ndarray, corners: np.ndarray, sizes: range = range(2, 17)) -> dict[int, float]:
    """For each n, how surely every inner line of an n x n grid is drawn: per line, the 10th
    percentile along its length of the darkest sample within 1.4 % of the side across it; the
    weakest line of the grid counts."""
    across = (np.arange(OVERVIEW) + 0.5) / OVERVIEW
    along = (np.arange(ALONG) + 0.5) / ALONG
    w = 5
    worst = {n: 1.0 for n in sizes}
    for vertical in (True, False):
        u, v = np.meshgrid(across, along)  # (ALONG, OVERVIEW): u runs across the lines
        prof = sample(dark, corners, np.stack([u, v] if vertical else [v, u], -1))
        padded = np.pad(prof, ((0, 0), (w, w)))
        near = np.max([padded[:, i:i + OVERVIEW] for i in range(2 * w + 1)], axis=0)
        strength = np.quantile(near, 0.1, axis=0)  # (OVERVIEW,)
        for n in sizes:
            at = [strength[round(k * OVERVIEW / n - 0.5)] for k in range(1, n)]
            worst[n] = min(worst[n], min(at))
    return worst


def solid_share(smooth: np.ndarray, corners: np.ndarray) -> float:
    """Share of the grid's inner 80 % that is solid ink (dark in the 3 x 3-smoothed darkness)."""
    t = 0.1 + 0.8 * (np.arange(90) + 0.5) / 90
    return float((sample(smooth, corners, np.stack(np.meshgrid(t, t), -1)) > 0.6).mean())


def sudoku_size(strengths: dict[int, float]) -> int:
    """The largest n whose inner lines are all drawn (at least :data:`LINE_SHARE` as surely as the
    best n's: thin cell lines under noise and blur are much fainter than thick box lines)."""
    ref = max(strengths.values())
    if ref < INK:
        raise ImageError("no grid found: no grid lines inside the outline")
    return max(n for n, s in strengths.items() if s >= LINE_SHARE * ref)


def maze_size(smooth: np.ndarray, corners: np.ndarray) -> int:
    """The odd size whose cells are most cleanly all-wall or all-open and whose lattice cells
    (even row and column) are walls while the cell centres (odd, odd) are open."""
    best, best_score = 0, -np.inf
    for n in MAZE_SIZES:
        d = sample(smooth, corners, _grid_uv(n))
        mixed = np.minimum(d, 1 - d).mean()
        score = d[::2, ::2].mean() - d[1::2, 1::2].mean() - 2 * mixed
        if score > best_score:
            best, best_score = n, score
    return best


def locate(gray: np.ndarray, kind: str | None = None, size: int | None = None) -> Located:
    """Find the grid in a grayscale image (float in [0, 1]); ``kind`` / ``size`` override detection."""
    small, scale = _shrink(gray)
    dark = darkness(small)
    smooth = _box3(dark)
    corners = find_corners(smooth)
    if kind is None:  # walls fill 38-50 % of a maze; lines and digits 2-23 % of a Sudoku
        kind = "maze" if solid_share(smooth, corners) >= SOLID else "sudoku"
    if kind not in ("sudoku", "maze"):
        raise ValueError(f"kind must be 'sudoku' or 'maze', got {kind!r}")
    if size is None:
        size = sudoku_size(line_strengths(dark, corners)) if kind == "sudoku" else maze_size(smooth, corners)
    if kind == "sudoku" and size not in SUDOKU_SIZES:
        raise ImageError(f"grid of unsupported size: found {size} x {size} cells; Sudoku sizes are {SUDOKU_SIZES}")
    if kind == "maze" and (size % 2 == 0 or size < 5):
        raise ImageError(f"grid of unsupported size: {size} x {size}; mazes have an odd size >= 5")
    return Located(dark, corners, kind, int(size), scale)


def cells(found: Located, view: tuple[float, float, float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """The (n * n, CELL, CELL) float32 darkness patches of the cells, row-major, contrast-normalised
    so the grid's ink is near 1. ``view`` = (dx, dy, zoom): each patch shifted by (dx, dy) of
    its pixels and spanning ``zoom`` of its cell about the cell's centre (another look at the
    same cells; the default is the plain look)."""
    n = found.size
    dx, dy, zoom = view
    t = (np.arange(CELL) + 0.5) / CELL
    if zoom != 1.0:
        t = 0.5 + (t - 0.5) * zoom
    local = np.stack(np.meshgrid(t, t), -1)  # (CELL, CELL, 2)
    if dx or dy:
        local = local + np.array([dx, dy]) / CELL
    base = np.stack(np.meshgrid(np.arange(n), np.arange(n)), -1).reshape(n * n, 1, 1, 2)
    patches = sample(found.dark, found.corners, (base + local) / n).astype(np.float32)
    ink = float(np.quantile(patches.reshape(-1)[::7], 0.99 if found.kind == "sudoku" else 0.9))
    return np.clip(patches / max(ink, 0.25), 0.0, 1.0)
