"""Rendering Sudoku and maze grids to grayscale images in a given :class:`Style` (needs Pillow).

A Sudoku is drawn as a grid (thin cell lines, thick box lines and border) with its digits; a
maze as filled wall cells with the letters S and G in the start and goal cells. The flat
drawing is then warped (rotation, perspective, corner jitter), lit unevenly, blurred, noised
and JPEG-compressed as the style says. :func:`sample_style` draws the styles of the three
benchmark levels (clean, mild, hard). Every random choice comes from the ``rng`` passed in.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import attrs
import numpy as np

from . import maze, sudoku
from .fonts import TRAIN_FONTS, load_font, require_pillow
from .geometry import homography

LEVELS = ("clean", "mild", "hard")


@attrs.frozen
class Style:
    """How a grid looks on the image. Lengths are in pixels unless named as a share of a cell."""

    font: str = "DejaVuSans.ttf"
    cell_px: float = attrs.field(default=32.0, validator=attrs.validators.gt(3.0))
    glyph: float = 0.7  #: glyph height as a share of the cell
    weight: int = 0  #: extra stroke width of the glyphs
    thin: float = 0.04  #: cell lines, share of the cell
    thick: float = 0.1  #: box lines and border, share of the cell
    margin: float = 0.7  #: page margin around the grid, in cells
    rotation: float = 0.0  #: degrees, counter-clockwise
    perspective: float = 0.0  #: each corner moved by up to this share of the grid's side
    corner_jitter: float = 0.0  #: each corner moved by up to this many pixels
    glyph_jitter: float = 0.0  #: each glyph moved by up to this many pixels
    blur: float = 0.0  #: Gaussian blur radius
    noise: float = 0.0  #: Gaussian noise sigma, grey levels
    jpeg: int | None = None  #: JPEG quality, None = no compression
    lighting: float = 0.0  #: darkest page corner's brightness is 1 - lighting
    ink: int = 25
    paper: int = 240


@attrs.frozen
class Rendered:
    """A rendered image (H x W uint8) and the grid's outer corners in it (TL, TR, BR, BL; x, y)."""

    image: np.ndarray
    corners: np.ndarray


def _glyph(draw: object, text: str, center: tuple[float, float], style: Style, size: float,
           rng: np.random.Generator, fill: int) -> None:
    font = load_font(style.font, max(4, round(style.glyph * size)))
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font, stroke_width=style.weight)  # type: ignore[attr-defined]
    dx, dy = rng.uniform(-style.glyph_jitter, style.glyph_jitter, 2) if style.glyph_jitter else (0.0, 0.0)
    draw.text((center[0] - (x0 + x1) / 2 + dx, center[1] - (y0 + y1) / 2 + dy), text, font=font,  # type: ignore[attr-defined]
              fill=fill, stroke_width=style.weight, stroke_fill=fill)


def _flat(n: int, style: Style) -> tuple[object, float, float]:
    """A blank page for an n x n grid: (PIL image, left/top offset of the grid, grid side)."""
    from PIL import Image

    cell = style.cell_px
    side = n * cell
    off = style.margin * cell
    page = math.ceil(side + 2 * off)
    return Image.new("L", (page, page), style.paper), off, side


def _draw_sudoku(grid: np.ndarray, style: Style, rng: np.random.Generator) -> tuple[object, float, float]:
    from PIL import ImageDraw

    n = grid.shape[0]
    br, bc = sudoku.box_shape(n)
    img, off, side = _flat(n, style)
    draw = ImageDraw.Draw(img)
    cell = style.cell_px
    thin, thick = max(1.0, style.thin * cell), max(2.0, style.thick * cell)
    for k in range(n + 1):
        pos = off + k * cell
        for axis, box in ((0, bc), (1, br)):
            w = thick if k % box == 0 else thin
            a, b = pos - w / 2, pos + w / 2
            rect = (a, off - thick / 2, b, off + side + thick / 2) if axis == 0 else (off - thick / 2, a, off + side + thick / 2, b)
            draw.rectangle(rect, fill=style.ink)
    for (r, c), v in np.ndenumerate(grid):
        if v:
            _glyph(draw, str(int(v)), (off + (c + 0.5) * cell, off + (r + 0.5) * cell), style, cell, rng, style.ink)
    half = thick / 2
    return img, off - half, side + thick


def _draw_maze(grid: np.ndarray, style: Style, rng: np.random.Generator) -> tuple[object, float, float]:
    from PIL import ImageDraw

    n = grid.shape[0]
    img, off, side = _flat(n, style)
    draw = ImageDraw.Draw(img)
    cell = style.cell_px
    for (r, c), v in np.ndenumerate(grid):
        x, y = off + c * cell, off + r * cell
        if v == maze.WALL:
            draw.rectangle((x, y, x + cell, y + cell), fill=style.ink)
        elif v in (maze.START, maze.GOAL):
            _glyph(draw, "S" if v == maze.START else "G", (x + cell / 2, y + cell / 2), style, cell, rng, style.ink)
    return img, off, side


def _corners(left: float, side: float, page: int, style: Style, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(flat corners, warped corners) of the grid: rotated about the page centre, each corner
    moved by the perspective share and the jitter, then fitted inside the page."""
    flat = np.array([[left, left], [left + side, left], [left + side, left + side], [left, left + side]])
    centre = page / 2
    t = math.radians(style.rotation)
    rot = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])  # y points down
    warped = (flat - centre) @ rot.T + centre
    warped += rng.uniform(-1, 1, (4, 2)) * (style.perspective * side + style.corner_jitter)
    lo, hi = warped.min(0), warped.max(0)
    room = page - 2 * max(2.0, 0.5 * style.margin * style.cell_px)
    scale = min(1.0, room / float((hi - lo).max()))
    warped = (warped - (lo + hi) / 2) * scale + centre
    return flat, warped


def _finish(img: object, style: Style, rng: np.random.Generator) -> np.ndarray:
    """Lighting, blur, noise and JPEG on a warped page."""
    from PIL import Image, ImageFilter

    if style.blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(style.blur))  # type: ignore[attr-defined]
    a = np.asarray(img, dtype=np.float32)
    if style.lighting > 0:
        h, w = a.shape
        theta = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ramp = (xx / w - 0.5) * math.cos(theta) + (yy / h - 0.5) * math.sin(theta)
        ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
        a = a * (1.0 - style.lighting * ramp)
    if style.noise > 0:
        a = a + rng.normal(0.0, style.noise, a.shape).astype(np.float32)
    a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    if style.jpeg is not None:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG", quality=int(style.jpeg))
        buf.seek(0)
        a = np.asarray(Image.open(buf).convert("L"))
    return a


def render(grid: np.ndarray | Sequence[str], style: Style, rng: np.random.Generator | None = None) -> Rendered:
    """Render a Sudoku (n x n ints, 0 = blank) or a maze (strings, or an int grid with ``kind``
    detection by type: strings are mazes) to an image in ``style``."""
    require_pillow()
    from PIL import Image

    rng = rng if rng is not None else np.random.default_rng(0)
    if isinstance(grid, (list, tuple)) and grid and isinstance(grid[0], str):
        img, left, side = _draw_maze(maze.parse(list(grid)), style, rng)
    else:
        g = np.asarray(grid)
        if g.ndim != 2 or g.shape[0] != g.shape[1] or g.shape[0] not in sudoku.BOXES:
            raise ValueError(f"Sudoku grid must be n x n with n in {sorted(sudoku.BOXES)}, got shape {g.shape}")
        if g.min() < 0 or g.max() > g.shape[0]:
            raise ValueError(f"Sudoku cells must be in 0..{g.shape[0]}, found {int(g.min())}..{int(g.max())}")
        img, left, side = _draw_sudoku(g, style, rng)
    page = img.size[0]  # type: ignore[attr-defined]
    flat, warped = _corners(left, side, page, style, rng)
    inv = homography(warped, flat)  # output pixel -> flat pixel, as PIL's PERSPECTIVE wants
    coeffs = (inv / inv[2, 2]).reshape(-1)[:8]
    img = img.transform((page, page), Image.Transform.PERSPECTIVE, tuple(coeffs),  # type: ignore[attr-defined]
                        resample=Image.Resampling.BILINEAR, fillcolor=style.paper)
    return Rendered(_finish(img, style, rng), warped)


def sample_style(level: str, n: int, rng: np.random.Generator, fonts: Sequence[str] = TRAIN_FONTS,
                 side: tuple[float, float] = (160.0, 560.0)) -> Style:
    """A random style of a benchmark level: ``clean`` (upright, sharp), ``mild`` (+-2 degrees,
    blur 0.6, noise sigma 12, +-2 px jitter) or ``hard`` (+-15 degrees, 8 % perspective,
    noise sigma 25, JPEG quality 30, uneven lighting), for an n x n grid on an image whose
    side is drawn from ``side`` (pixels)."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}: expected one of {LEVELS}")
    if not fonts:
        raise ValueError("sample_style needs at least one font")
    margin = float(rng.uniform(0.4, 1.2))
    base = dict(font=str(fonts[int(rng.integers(len(fonts)))]), cell_px=float(rng.uniform(*side)) / (n + 2 * margin),
                glyph=float(rng.uniform(0.55, 0.8)), weight=int(rng.random() < 0.15),
                thin=float(rng.uniform(0.03, 0.06)), thick=float(rng.uniform(0.08, 0.14)),
                margin=margin, ink=int(rng.integers(0, 60)),
                paper=int(rng.integers(215, 256)))
    if level == "clean":
        return Style(**base)
    if level == "mild":
        return Style(**base, rotation=float(rng.uniform(-2, 2)), blur=0.6, noise=12.0,
                     corner_jitter=2.0, glyph_jitter=2.0)
    return Style(**base, rotation=float(rng.uniform(-15, 15)), perspective=0.08, noise=25.0, jpeg=30,
                 lighting=float(rng.uniform(0.3, 0.6)), blur=float(rng.uniform(0.3, 1.0)), glyph_jitter=2.0)
