"""Task generators, verifiers, augmentation and split disjointness."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.hrm.tasks import TEST_BUCKETS, get_task, is_test_puzzle, puzzle_key
from plugins.puzzles import maze, sudoku

SEEDS = st.integers(0, 2**31 - 1)


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS, n=st.sampled_from([4, 6]))
def test_sudoku_unique_and_valid(seed: int, n: int) -> None:
    puz, sol = sudoku.make_puzzle(n, np.random.default_rng(seed))
    assert sudoku.count_solutions(puz, limit=2) == 1
    assert sudoku.is_valid_solution(sol)
    assert np.array_equal(sudoku.solve(puz), sol)
    given_mask = puz > 0
    assert np.array_equal(puz[given_mask], sol[given_mask])
    lo, hi = sudoku.BLANKS[n]
    assert 0 < (puz == 0).sum() <= hi


def test_sudoku9_unique() -> None:
    puz, sol = sudoku.make_puzzle(9, np.random.default_rng(3))
    assert sudoku.count_solutions(puz) == 1 and sudoku.violations(sol, puz) == 0
    assert (puz == 0).sum() >= 30


def test_count_solutions_sees_multiple() -> None:
    assert sudoku.count_solutions(np.zeros((4, 4), dtype=int), limit=2) == 2
    bad = np.zeros((4, 4), dtype=int)
    bad[0, 0] = bad[0, 1] = 1
    assert sudoku.count_solutions(bad) == 0


@settings(max_examples=300, deadline=None)
@given(n=st.sampled_from([4, 6]), givens=st.lists(st.tuples(st.integers(0, 35), st.integers(1, 6)), max_size=14))
def test_has_solution_agrees_with_the_counting_solver(n: int, givens: list) -> None:
    """Random (mostly unsolvable or conflicting) grids: the fast existence check and the
    backtracking counter agree."""
    grid = np.zeros((n, n), dtype=np.int64)
    for cell, digit in givens:
        grid.flat[cell % (n * n)] = (digit - 1) % n + 1
    assert sudoku.has_solution(grid) == (sudoku.count_solutions(grid, limit=1) > 0)


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS, n=st.sampled_from([4, 6, 9]))
def test_has_solution_on_generated_puzzles(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    sol = sudoku.random_solution(n, rng)
    puz = np.where(rng.random((n, n)) < 0.5, sol, 0)
    assert sudoku.has_solution(puz) and sudoku.has_solution(sol)
    i, j = divmod(int(rng.integers(n * n)), n)
    clash = sol.copy()
    clash[i, (j + 1) % n] = clash[i, j]  # a digit twice in a row
    assert not sudoku.has_solution(clash)


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS, n=st.sampled_from([4, 6, 9]), cell=st.integers(0, 80), delta=st.integers(1, 8))
def test_sudoku_verifier_catches_changes(seed: int, n: int, cell: int, delta: int) -> None:
    rng = np.random.default_rng(seed)
    sol = sudoku.random_solution(n, rng)
    puz = sol.copy()
    puz[rng.random((n, n)) < 0.5] = 0
    assert sudoku.violations(sol, puz) == 0
    r, c = divmod(cell % (n * n), n)
    wrong = sol.copy()
    wrong[r, c] = (sol[r, c] - 1 + delta % (n - 1) + 1) % n + 1  # a different digit
    assert wrong[r, c] != sol[r, c]
    assert sudoku.violations(wrong, puz) > 0
    assert sudoku.violations_batch(wrong[None], puz[None])[0] == sudoku.violations(wrong, puz)
    blank = sol.copy()
    blank[r, c] = 0
    assert sudoku.violations(blank, puz) > 0


@settings(max_examples=40, deadline=None)
@given(seed=SEEDS, n=st.sampled_from([4, 6, 9]), batch=st.integers(1, 5))
def test_sudoku_batch_verifier_equals_per_grid(seed: int, n: int, batch: int) -> None:
    """The vectorised count equals the per-grid one on arbitrary grids, out-of-range digits included."""
    rng = np.random.default_rng(seed)
    answers = rng.integers(-1, n + 2, (batch, n, n))
    puzzles = rng.integers(0, n + 1, (batch, n, n)) * (rng.random((batch, n, n)) < 0.4)
    got = sudoku.violations_batch(answers, puzzles)
    assert got.tolist() == [sudoku.violations(a, p) for a, p in zip(answers, puzzles)]


@settings(max_examples=20, deadline=None)
@given(seed=SEEDS, n=st.sampled_from([4, 6, 9]))
def test_sudoku_symmetry_preserves_validity(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    puz, sol = sudoku.make_puzzle(n, rng) if n < 9 else (None, sudoku.random_solution(n, rng))
    sym = sudoku.random_symmetry(n, rng)
    if n == 6:
        assert not sym["transpose"]  # 2x3 boxes are not preserved by transposition
    a = sudoku.apply_symmetry(sol, sym)
    assert sudoku.is_valid_solution(a)
    assert np.array_equal(sudoku.invert_symmetry(a, sym), sol)
    if puz is not None:
        ap = sudoku.apply_symmetry(puz, sym)
        assert sudoku.count_solutions(ap) == 1 and sudoku.violations(a, ap) == 0


@settings(max_examples=20, deadline=None)
@given(seed=SEEDS, size=st.sampled_from([11, 13]))
def test_maze_label_is_unique_shortest_path(seed: int, size: int) -> None:
    x, y = maze.make_puzzle(size, np.random.default_rng(seed))
    assert x.shape == (size, size) and (x == maze.START).sum() == 1 and (x == maze.GOAL).sum() == 1
    s, g = maze.find(x, maze.START), maze.find(x, maze.GOAL)
    d = maze.bfs(x, s)[g]
    assert (y == maze.PATH).sum() == d + 1
    # perfect maze: exactly one shortest path, i.e. the cells with ds + dg == d are the path
    ds, dg = maze.bfs(x, s), maze.bfs(x, g)
    assert ((ds >= 0) & (ds + dg == d)).sum() == d + 1
    assert maze.violations(y, x) == 0


@settings(max_examples=20, deadline=None)
@given(seed=SEEDS, k=st.integers(0, 10**6))
def test_maze_verifier_catches_violations(seed: int, k: int) -> None:
    x, y = maze.make_puzzle(11, np.random.default_rng(seed))
    path = np.argwhere(y == maze.PATH)
    inner = [tuple(p) for p in path if x[tuple(p)] == maze.OPEN]
    if inner:  # removing a cell disconnects S from G
        broken = y.copy()
        broken[inner[k % len(inner)]] = maze.OPEN
        assert maze.violations(broken, x) > 0
    walls = np.argwhere(x == maze.WALL)
    through = y.copy()
    through[tuple(walls[k % len(walls)])] = maze.PATH
    assert maze.violations(through, x) > 0
    opens = [tuple(p) for p in np.argwhere((y == maze.OPEN))]
    if opens:  # an extra (possibly detached) cell: longer than shortest
        longer = y.copy()
        longer[opens[k % len(opens)]] = maze.PATH
        assert maze.violations(longer, x) > 0
    assert maze.violations(np.zeros_like(y), x) > 0


def test_maze_accepts_any_shortest_path() -> None:
    lines = ["#######", "#S    #", "# ### #", "#    G#", "#######"]
    x = maze.parse(lines)
    upper = np.zeros_like(x, dtype=bool)
    upper[1, 1:6] = True
    upper[2, 5] = True
    upper[3, 5] = True
    lower = np.zeros_like(x, dtype=bool)
    lower[1:4, 1] = True
    lower[3, 1:6] = True
    assert upper.sum() == lower.sum() == 7
    assert maze.violations(upper, x) == 0 and maze.violations(lower, x) == 0
    assert maze.violations(upper | lower, x) > 0


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_maze_dihedral_preserves_validity(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = maze.make_puzzle(13, rng)
    for k in range(4):
        for flip in (False, True):
            sym = {"k": k, "flip": flip}
            assert maze.violations(maze.apply_symmetry(y, sym), maze.apply_symmetry(x, sym)) == 0
            assert np.array_equal(maze.invert_symmetry(maze.apply_symmetry(x, sym), sym), x)


@pytest.mark.parametrize("name", ["sudoku4", "sudoku6", "maze11"])
def test_splits_disjoint_and_deterministic(name: str) -> None:
    task = get_task(name)
    xtr, ytr = task.generate(150, 0, "train")
    xte, _ = task.generate(50, 0, "test")
    xte2, _ = task.generate(50, 1, "test")
    assert np.array_equal(xtr[:40], task.generate(40, 0, "train")[0])
    train_keys = {puzzle_key(x) for x in xtr}
    test_keys = {puzzle_key(x) for x in np.concatenate([xte, xte2])}
    assert len(train_keys) == 150
    assert not train_keys & test_keys
    assert all(is_test_puzzle(x) for x in xte) and not any(is_test_puzzle(x) for x in xtr)
    # augmented training samples never land on a test puzzle either
    xa, ya = task.augment(xtr, ytr, np.random.default_rng(0))
    assert not any(is_test_puzzle(x) for x in xa)
    assert (task.violations(ya, xa) == 0).all()
    assert (xa != xtr).any()
    assert 1 < TEST_BUCKETS


@pytest.mark.parametrize("name", ["sudoku6", "maze13"])
def test_task_violations_zero_on_labels_and_positive_on_noise(name: str) -> None:
    task = get_task(name)
    x, y = task.generate(20, 5, "test")
    assert (task.violations(y, x) == 0).all()
    noisy = (y + 1) % task.n_classes
    assert (task.violations(task.project(noisy, x), x) > 0).all()
