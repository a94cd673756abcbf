"""Rendering puzzles to images: geometry, styles, fonts and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

pytest.importorskip("PIL", reason="rendering needs Pillow (the viz extra)")

from plugins.puzzles import maze, render, sudoku  # noqa: E402
from plugins.puzzles.fonts import EVAL_FONTS, TRAIN_FONTS, load_font  # noqa: E402
from plugins.puzzles.geometry import apply_homography, homography  # noqa: E402


def _cell_centres(corners: np.ndarray, n: int) -> np.ndarray:
    """Image positions of the n x n cell centres of the grid with these corners."""
    unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
    h = homography(unit, corners)
    t = (np.arange(n) + 0.5) / n
    uv = np.stack(np.meshgrid(t, t), -1)  # (row, col) -> (x = col, y = row)
    return apply_homography(h, uv)


@given(st.lists(st.floats(-50, 50), min_size=8, max_size=8), st.lists(st.floats(-3, 3), min_size=2, max_size=2))
@settings(max_examples=60, deadline=None)
def test_homography_maps_corners_and_inverts(jitter: list[float], probe: list[float]) -> None:
    src = np.array([[0, 0], [100, 0], [100, 100], [0, 100]], dtype=float)
    dst = src * 2 + 30 + np.array(jitter).reshape(4, 2) * 0.4
    h = homography(src, dst)
    assert np.allclose(apply_homography(h, src), dst, atol=1e-6)
    back = homography(dst, src)
    p = np.array(probe) * 20 + 50
    assert np.allclose(apply_homography(back, apply_homography(h, p)), p, atol=1e-6)


def test_homography_refuses_collinear_corners() -> None:
    with pytest.raises(ValueError, match="degenerate"):
        homography(np.array([[0, 0], [1, 1], [2, 2], [0, 1]]), np.eye(4, 2))


@pytest.mark.parametrize("n", [4, 6, 9])
def test_clean_sudoku_has_ink_on_digits_and_paper_on_blanks(n: int) -> None:
    rng = np.random.default_rng(n)
    puzzle, _ = sudoku.make_puzzle(n, rng)
    style = render.Style(cell_px=30, glyph=0.7)
    out = render.render(puzzle, style, rng)
    assert out.image.dtype == np.uint8 and out.image.ndim == 2
    centres = _cell_centres(out.corners, n)
    for (r, c), v in np.ndenumerate(puzzle):
        x, y = centres[r, c]
        patch = out.image[int(y) - 7:int(y) + 8, int(x) - 7:int(x) + 8]
        if v:
            assert patch.min() < 100, f"digit {v} at ({r}, {c}) left no ink"
        else:
            assert patch.min() == style.paper, f"blank at ({r}, {c}) has ink"


def test_maze_walls_are_filled_and_marks_drawn() -> None:
    rng = np.random.default_rng(3)
    grid, _ = maze.make_puzzle(11, rng)
    out = render.render(maze.render(grid), render.Style(cell_px=24), rng)
    centres = _cell_centres(out.corners, 11)
    for (r, c), v in np.ndenumerate(grid):
        x, y = centres[r, c]
        patch = out.image[int(y) - 5:int(y) + 6, int(x) - 5:int(x) + 6]
        if v == maze.WALL:
            assert patch.max() < 60
        elif v == maze.OPEN:
            assert patch.min() > 200
        else:
            assert patch.min() < 100 < patch.max(), "S/G cell must hold a letter on paper"


def test_corners_follow_rotation_and_stay_inside() -> None:
    rng = np.random.default_rng(0)
    puzzle, _ = sudoku.make_puzzle(9, rng)
    out = render.render(puzzle, render.Style(cell_px=20, rotation=10.0), rng)
    tl, tr = out.corners[0], out.corners[1]
    angle = np.degrees(np.arctan2(-(tr[1] - tl[1]), tr[0] - tl[0]))
    assert angle == pytest.approx(10.0, abs=0.01)
    assert (out.corners >= 0).all() and (out.corners < out.image.shape[0]).all()
    # the image is dark at the (outer) border just inside each corner
    inward = out.corners.mean(0) - out.corners
    for c, d in zip(out.corners, inward):
        x, y = c + d / np.linalg.norm(d) * 1.5
        assert out.image[int(round(y)), int(round(x))] < 100


@pytest.mark.parametrize("level", render.LEVELS)
def test_levels_are_deterministic_by_seed(level: str) -> None:
    def one(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        puzzle, _ = sudoku.make_puzzle(6, rng)
        return render.render(puzzle, render.sample_style(level, 6, rng), rng).image

    assert np.array_equal(one(5), one(5))
    assert not np.array_equal(one(5), one(6))


def test_level_parameters() -> None:
    rng = np.random.default_rng(1)
    mild = [render.sample_style("mild", 9, rng) for _ in range(50)]
    hard = [render.sample_style("hard", 9, rng) for _ in range(50)]
    assert all(abs(s.rotation) <= 2 and s.blur == 0.6 and s.noise == 12 and s.jpeg is None for s in mild)
    assert all(abs(s.rotation) <= 15 and s.perspective == 0.08 and s.noise == 25 and s.jpeg == 30 and s.lighting > 0
               for s in hard)
    assert max(abs(s.rotation) for s in hard) > 10
    sides = [(9 + 2 * s.margin) * s.cell_px for s in mild]
    assert min(sides) >= 160 and max(sides) <= 560


def test_hard_style_degrades_the_image() -> None:
    rng = np.random.default_rng(4)
    puzzle, _ = sudoku.make_puzzle(4, rng)
    clean = render.render(puzzle, render.Style(cell_px=30), np.random.default_rng(0)).image
    noisy = render.render(puzzle, render.Style(cell_px=30, noise=25, jpeg=30, lighting=0.5), np.random.default_rng(0)).image
    assert clean.shape == noisy.shape
    assert np.abs(clean.astype(int) - noisy.astype(int)).mean() > 10


def test_train_and_eval_fonts_are_disjoint_and_draw_distinct_digits() -> None:
    assert not set(TRAIN_FONTS) & set(EVAL_FONTS)
    from PIL import Image, ImageDraw

    for name in TRAIN_FONTS + EVAL_FONTS:
        font = load_font(name, 24)
        glyphs = []
        for ch in "123456789SG":
            img = Image.new("L", (32, 32), 255)
            ImageDraw.Draw(img).text((4, 2), ch, font=font, fill=0)
            glyphs.append(np.asarray(img).tobytes())
        assert len(set(glyphs)) == 11, f"font {name} draws two characters alike"


@pytest.mark.parametrize("bad, message", [
    (np.zeros((5, 5), dtype=int), "n x n"),
    (np.full((4, 4), 7), "0..4"),
    (["#S#", "#G"], "equal length"),
])
def test_bad_grids_are_refused(bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render.render(bad, render.Style())


def test_bad_style_arguments() -> None:
    with pytest.raises(ValueError, match="unknown level"):
        render.sample_style("foggy", 9, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown font"):
        load_font("NoSuchFont.ttf", 12)
    with pytest.raises(ValueError):
        render.Style(cell_px=1.0)
