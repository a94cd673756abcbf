"""Generator options of the shared puzzle library: Sudoku with several completions, guided
completion, mazes with S and G on any open cells."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.puzzles import maze, sudoku


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.sampled_from([4, 6, 9]), data=st.data())
def test_non_unique_puzzles_have_exactly_the_blanks_asked_and_complete_to_their_solution(seed, n, data):
    blanks = data.draw(st.integers(0, n * n))
    puzzle, solution = sudoku.make_puzzle(n, np.random.default_rng(seed), blanks=blanks, unique=False)
    assert int((puzzle == 0).sum()) == blanks
    assert sudoku.is_valid_solution(solution)
    assert np.array_equal(np.where(puzzle > 0, puzzle, solution), solution)
    assert sudoku.violations(solution, puzzle) == 0


def test_non_unique_blanks_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="blanks must be in 0..16"):
        sudoku.make_puzzle(4, np.random.default_rng(0), blanks=17, unique=False)


def _one_hot_scores(grid: np.ndarray) -> np.ndarray:
    n = grid.shape[0]
    return (grid[..., None] == np.arange(1, n + 1)).astype(np.float64)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.sampled_from([4, 6]), noise=st.integers(0, 10**6))
def test_guided_completion_is_valid_and_returns_a_valid_answer_unchanged(seed, n, noise):
    rng = np.random.default_rng(seed)
    puzzle, solution = sudoku.make_puzzle(n, rng, blanks=int(rng.integers(n * n // 2, n * n + 1)), unique=False)
    noisy = np.random.default_rng(noise).normal(size=(n, n, n))
    done = sudoku.complete_guided(puzzle, noisy)
    assert done is not None and sudoku.violations(done, puzzle) == 0
    # scores that point at a valid completion give back exactly that completion
    assert np.array_equal(sudoku.complete_guided(puzzle, _one_hot_scores(solution)), solution)


def test_guided_completion_of_an_impossible_puzzle_is_none():
    grid = np.zeros((4, 4), dtype=np.int64)
    grid[0, 0] = grid[0, 1] = 1  # two 1s in a row
    assert sudoku.complete_guided(grid, np.zeros((4, 4, 4))) is None
    grid = np.array([[1, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 3, 4]])
    grid[1, 2] = 3  # r2c3 = 3 leaves r1c3 / r1c4 no digit: no completion
    grid[1, 3] = 4
    assert sudoku.count_solutions(grid, limit=1) == 0 and sudoku.complete_guided(grid, np.zeros((4, 4, 4))) is None


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), size=st.sampled_from([7, 11, 13]),
       bucket=st.sampled_from([(1, 2), (3, 5), (6, 10), (11, 20)]))
def test_mazes_with_endpoints_anywhere_respect_the_distance_and_label_the_path(seed, size, bucket):
    x, y = maze.make_puzzle(size, np.random.default_rng(seed), anywhere=True, distance=bucket)
    d = maze.distance(x)
    assert bucket[0] <= d <= bucket[1]
    assert int((y == maze.PATH).sum()) == d + 1  # the unique path in a perfect maze, S and G included
    assert maze.violations(y, x) == 0


def test_endpoints_anywhere_include_corridors_and_neighbours():
    rng = np.random.default_rng(0)
    corridor = adjacent = 0
    for _ in range(200):
        x, _ = maze.make_puzzle(11, rng, anywhere=True)
        s, g = maze.find(x, maze.START), maze.find(x, maze.GOAL)
        corridor += any(v % 2 == 0 for v in (*s, *g))  # a corridor cell has an even coordinate
        adjacent += maze.distance(x) == 1
    assert corridor > 50 and adjacent > 0
    with pytest.raises(ValueError, match="lo <= hi"):
        maze.make_puzzle(11, rng, anywhere=True, distance=(5, 3))
