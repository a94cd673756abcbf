"""Rendered puzzle images for training and evaluation, and the labelled cells the model learns from.

Every image comes from the shared library's renderer (:mod:`plugins.puzzles.render`); cells are
cut by the plugin's own locator, so the model sees exactly what it reads at run time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import attrs
import numpy as np

from plugins.puzzles import maze, render, sudoku
from plugins.puzzles.fonts import EVAL_FONTS, TRAIN_FONTS

from .image import to_gray
from .locate import cells, locate
from .model import MAZE_BASE

#: Seeds: training images and the benchmark's held-out images never share a generator.
TRAIN_SEED, EVAL_SEED = 1000, 9000
MAZE_SIZES = (7, 9, 11, 13, 15)


@attrs.frozen
class Sample:
    """One rendered puzzle: the image, the true grid (Sudoku ints or maze strings), kind, size, corners."""

    image: np.ndarray
    grid: object
    kind: str
    size: int
    corners: np.ndarray
    level: str


def labels(grid: object, kind: str) -> np.ndarray:
    """Flat class labels of a grid's cells (row-major)."""
    if kind == "sudoku":
        return np.asarray(grid, dtype=np.int64).reshape(-1)
    return maze.parse(list(grid)).reshape(-1) + MAZE_BASE  # type: ignore[arg-type]


def make_sample(kind: str, size: int, level: str, rng: np.random.Generator,
                fonts: Sequence[str] = TRAIN_FONTS) -> Sample:
    """A random puzzle of ``kind`` / ``size`` rendered in a random style of ``level``."""
    if kind == "sudoku":
        grid, _ = sudoku.make_puzzle(size, rng)
        drawn: object = grid
    else:
        g, _ = maze.make_puzzle(size, rng)
        drawn = maze.render(g)
    style = render.sample_style(level, size, rng, fonts)
    out = render.render(drawn, style, rng)
    return Sample(out.image, drawn, kind, size, out.corners, level)


def eval_samples(kind: str, size: int, level: str, n: int, seed: int = EVAL_SEED) -> Iterator[Sample]:
    """``n`` held-out samples (evaluation fonts, evaluation seed) of one kind, size and level."""
    code = {"sudoku": 0, "maze": 1}[kind]
    rng = np.random.default_rng([seed, code, size, render.LEVELS.index(level)])
    for _ in range(n):
        yield make_sample(kind, size, level, rng, EVAL_FONTS)


CHUNK = 100  #: training grids per generator chunk (chunk c draws from rng([seed, c]))


def _chunk(args: tuple[int, int, int, float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    import time

    t0 = time.process_time()
    seed, c, n, keep_maze_plain, keep_blank, max_corner_error = args
    rng = np.random.default_rng([seed, c])
    xs, ys, sizes = [], [], []
    levels = ("clean", "mild", "mild", "hard", "hard", "hard")
    for i in range(n):
        kind = "maze" if i % 4 == 3 else "sudoku"
        size = (4, 6, 9)[i % 4] if kind == "sudoku" else int(rng.choice(MAZE_SIZES))
        s = make_sample(kind, size, levels[int(rng.integers(len(levels)))], rng)
        try:
            found = locate(to_gray(s.image), kind=kind, size=size)
        except ValueError:
            continue
        side = float(np.linalg.norm(s.corners[0] - s.corners[1]))
        if np.abs(found.corners / found.scale - s.corners).max() > max_corner_error * side / size:
            continue
        x, y = cells(found), labels(s.grid, kind)
        plain = (y == 0) | (y == MAZE_BASE) | (y == MAZE_BASE + 1)
        keep = ~plain | (rng.random(len(y)) < np.where(y == 0, keep_blank, keep_maze_plain))
        xs.append(x[keep].astype(np.float16))
        ys.append(y[keep])
        sizes.append(np.full(int(keep.sum()), size))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(sizes), time.process_time() - t0


def training_cells(n_grids: int, seed: int = TRAIN_SEED, workers: int = 1, keep_maze_plain: float = 0.12,
                   keep_blank: float = 0.5, max_corner_error: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(cells (N, CELL, CELL) float16, labels (N,), each cell's grid size (N,), CPU seconds spent in
    all processes) cut from
    ``n_grids`` rendered training images (training fonts), a quarter each of 4x4 / 6x6 / 9x9
    Sudoku and mazes, levels clean / mild / hard in 1 : 2 : 3. Blank Sudoku cells are kept with
    probability ``keep_blank``, plain maze cells (wall, open) with ``keep_maze_plain``; images
    whose located corners are off by more than ``max_corner_error`` cells are skipped (their
    labels would not match the cut cells). The result does not depend on ``workers``."""
    jobs = [(seed, c, min(CHUNK, n_grids - c * CHUNK), keep_maze_plain, keep_blank, max_corner_error)
            for c in range(-(-n_grids // CHUNK))]
    if workers > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            parts = pool.map(_chunk, jobs)
    else:
        parts = [_chunk(j) for j in jobs]
    x, y, sizes = (np.concatenate([p[k] for p in parts]) for k in range(3))
    return x, y, sizes, float(sum(p[3] for p in parts))
