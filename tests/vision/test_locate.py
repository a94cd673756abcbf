"""Locating, sizing and cutting grids from rendered images; bad inputs get their documented errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("PIL", reason="rendering test images needs Pillow (the viz extra)")

from plugins.puzzles import render  # noqa: E402
from plugins.vision import data  # noqa: E402
from plugins.vision.image import ImageError, to_gray  # noqa: E402
from plugins.vision.locate import CELL, cells, locate  # noqa: E402

CASES = [("sudoku", 4), ("sudoku", 6), ("sudoku", 9), ("maze", 7), ("maze", 11), ("maze", 13)]


def _corner_error_in_cells(s: data.Sample, found: object) -> float:
    side = float(np.linalg.norm(s.corners[0] - s.corners[1]))
    return float(np.abs(found.corners / found.scale - s.corners).max() / side * s.size)  # type: ignore[attr-defined]


@pytest.mark.parametrize("level", ["clean", "mild"])
@pytest.mark.parametrize("kind, size", CASES)
def test_kind_size_and_corners_found(kind: str, size: int, level: str) -> None:
    for s in data.eval_samples(kind, size, level, 3, seed=123):
        found = locate(to_gray(s.image))
        assert (found.kind, found.size) == (kind, size)
        assert _corner_error_in_cells(s, found) < 0.2
        patches = cells(found)
        assert patches.shape == (size * size, CELL, CELL) and patches.dtype == np.float32
        assert 0.0 <= patches.min() and patches.max() <= 1.0


def test_rotated_tilted_grid_found() -> None:
    rng = np.random.default_rng(0)
    grid = np.zeros((9, 9), dtype=int)
    grid[0, 0] = 5
    for rotation in (-15.0, 15.0):
        out = render.render(grid, render.Style(cell_px=30, rotation=rotation, perspective=0.08), rng)
        found = locate(to_gray(out.image))
        assert (found.kind, found.size) == ("sudoku", 9)
        side = float(np.linalg.norm(out.corners[0] - out.corners[1]))
        assert np.abs(found.corners / found.scale - out.corners).max() < 0.2 * side / 9


@pytest.mark.parametrize("kind, size", [("sudoku", 4), ("sudoku", 9), ("maze", 11)])
def test_hard_images_found_and_sized(kind: str, size: int) -> None:
    """Noise, JPEG, uneven light, +-15 degrees, 8 % perspective: every image of a fixed set is
    sized right with its corners within a fifth of a cell (before, noise specks near the edge
    pulled corners off and faint thin lines lost the size on about one image in eight)."""
    for s in data.eval_samples(kind, size, "hard", 20, seed=77):
        found = locate(to_gray(s.image))
        assert (found.kind, found.size) == (kind, size)
        assert _corner_error_in_cells(s, found) < 0.2


def test_a_speck_near_the_edge_does_not_move_a_corner() -> None:
    image = _lined(4)
    clean = locate(to_gray(image)).corners
    image[3:5, 3:5] = 0  # a 2 x 2 speck of ink far outside the grid's top-left corner
    assert np.abs(locate(to_gray(image)).corners - clean).max() < 1.0


@pytest.mark.parametrize("side", [150, 2000])
def test_extreme_image_sides(side: int) -> None:
    rng = np.random.default_rng(1)
    grid = np.array([[1, 0, 0, 2], [0, 0, 3, 0], [0, 4, 0, 0], [2, 0, 0, 1]])
    out = render.render(grid, render.Style(cell_px=side / 5.4), rng)
    assert abs(out.image.shape[0] - side) <= 3
    found = locate(to_gray(np.stack([out.image] * 3, -1)))
    assert (found.kind, found.size) == ("sudoku", 4)


def test_kind_and_size_can_be_given() -> None:
    s = next(data.eval_samples("sudoku", 6, "clean", 1, seed=5))
    assert locate(to_gray(s.image), kind="sudoku", size=6).size == 6
    with pytest.raises(ValueError, match="kind must be"):
        locate(to_gray(s.image), kind="crossword")


def _lined(n: int, side: int = 300) -> np.ndarray:
    img = np.full((side, side), 240, dtype=np.uint8)
    lo, hi = 30, side - 30
    for k in range(n + 1):
        p = lo + round(k * (hi - lo) / n)
        w = 3 if k in (0, n) else 1
        img[lo:hi + 1, p - w // 2:p + w // 2 + 1] = 20
        img[p - w // 2:p + w // 2 + 1, lo:hi + 1] = 20
    return img


@pytest.mark.parametrize("image, error, message", [
    ([[1, 2], [3, 4]], ImageError, "not an image"),
    (np.zeros((200, 200), dtype=np.float64), ImageError, "must be uint8"),
    (np.zeros((200, 200, 2), dtype=np.uint8), ImageError, "H x W x 3"),
    (np.zeros((60, 300), dtype=np.uint8), ImageError, "image too small"),
    (np.full((300, 300), 240, dtype=np.uint8), ImageError, "no grid found"),
    (np.zeros((300, 300, 3), dtype=np.uint8), ImageError, "almost all ink"),
    ("/no/such/picture.png", ImageError, "unreadable image file"),
])
def test_bad_inputs(image: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        locate(to_gray(image))


def test_unsupported_sudoku_size() -> None:
    with pytest.raises(ImageError, match="unsupported size: found 5 x 5"):
        locate(to_gray(_lined(5)))
    assert locate(to_gray(_lined(6))).size == 6


def test_corrupt_file(tmp_path: object) -> None:
    bad = tmp_path / "broken.png"  # type: ignore[operator]
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageError, match="unreadable image file"):
        to_gray(bad)


def test_arrays_need_no_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    image = _lined(4)
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    assert locate(to_gray(image)).size == 4
    with pytest.raises(ImportError, match=r"pip install 'sage-irp\[viz\]'"):
        to_gray("picture.png")
