"""Symbolic explainer: turns a solved Sudoku into an ordered list of placements with reasons, and
a maze with its path into a move list; the corpus of the language plugin and the truth its
checker (:mod:`plugins.puzzles.claims`) measures against.

Sudoku reasons, tried in this order for each blank cell (``REASONS``):

- ``naked``: every other digit is already in the cell's row, column or box;
- ``box`` / ``row`` / ``column``: hidden single, the only cell of that unit that can hold the digit;
- ``contradiction``: every other candidate digit leaves the grid without a solution (for the
  cells that singles cannot reach);
- ``choice``: one of several digits that keep the grid solvable (puzzles with several solutions).

Placements come in rounds: a round places every blank cell that a single explains given the
rounds before it, in row-major order (singles stay true when more correct digits are placed, so
every reason holds given all earlier placements); when no single is left, one cell is placed by
contradiction (or choice) in a round of its own. Each reason has several phrasings
(``PHRASES``) so the text varies.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs
import numpy as np

from . import maze, sudoku

SINGLES = ("naked", "box", "row", "column")
REASONS = (*SINGLES, "contradiction", "choice")

#: Phrasings per reason; ``{d}`` is the digit, ``{unit}`` the unit ("box 2", "row 5", "column 1").
PHRASES: dict[str, tuple[str, ...]] = {
    "naked": (
        "every other digit is already in its row, column or box",
        "it is the only digit left for this cell",
        "its row, column and box hold every other digit",
        "no other digit fits this cell",
    ),
    "hidden": (
        "the only cell in {unit} that can hold {d}",
        "{d} fits nowhere else in {unit}",
        "{unit} needs a {d} and this is its only place",
        "no other cell of {unit} can take {d}",
    ),
    "contradiction": (
        "every other digit here leads to a contradiction",
        "any other digit here leaves the puzzle without a solution",
    ),
    "choice": (
        "one of several digits that keep the puzzle solvable",
        "a free choice, as other digits also keep the puzzle solvable",
    ),
}

_TOKEN = re.compile(r"r\d+c\d+|\d+|[A-Za-z]+|[^\w\s]")


def phrase_group(reason: str) -> str:
    """The ``PHRASES`` key of a reason (the three hidden singles share theirs)."""
    return "hidden" if reason in ("box", "row", "column") else reason


@attrs.frozen
class Placement:
    """One step of a Sudoku explanation: ``digit`` goes to (``row``, ``col``) (0-based) because of
    ``reason`` in ``unit`` (1-based index of the row, column or box for a hidden single, else 0),
    found in round ``round`` (1-based)."""

    row: int
    col: int
    digit: int
    reason: str = attrs.field(validator=attrs.validators.in_(REASONS))
    unit: int = 0
    round: int = 1


def box_index(n: int, row: int, col: int) -> int:
    """0-based row-major index of the box holding (row, col) in an n x n Sudoku."""
    br, bc = sudoku.box_shape(n)
    return (row // br) * (n // bc) + col // bc


def unit_cells(n: int, kind: str, index: int) -> list[tuple[int, int]]:
    """The cells of unit ``kind`` ("row", "column", "box") number ``index`` (0-based)."""
    if kind == "row":
        return [(index, c) for c in range(n)]
    if kind == "column":
        return [(r, index) for r in range(n)]
    br, bc = sudoku.box_shape(n)
    r0, c0 = (index // (n // bc)) * br, (index % (n // bc)) * bc
    return [(r0 + i, c0 + j) for i in range(br) for j in range(bc)]


def unit_of(n: int, kind: str, row: int, col: int) -> int:
    """0-based index of the ``kind`` unit that holds (row, col)."""
    if kind == "row":
        return row
    if kind == "column":
        return col
    return box_index(n, row, col)


def candidates(grid: np.ndarray, row: int, col: int) -> set[int]:
    """Digits not yet in the row, column or box of (row, col) of a partly filled grid."""
    n = grid.shape[0]
    seen = set(grid[row].tolist()) | set(grid[:, col].tolist())
    seen |= {int(grid[r, c]) for r, c in unit_cells(n, "box", box_index(n, row, col))}
    return set(range(1, n + 1)) - seen


def _solvable_with(grid: np.ndarray, row: int, col: int, digit: int) -> bool:
    g = grid.copy()
    g[row, col] = digit
    return sudoku.has_solution(g)


def reason_holds(grid: np.ndarray, row: int, col: int, digit: int, reason: str, unit: int = 0) -> str | None:
    """None when ``reason`` (with 1-based ``unit`` for hidden singles) explains placing ``digit`` at
    the blank (row, col) of ``grid``; otherwise why not, in words."""
    n = grid.shape[0]
    if grid[row, col]:
        return f"r{row + 1}c{col + 1} is already filled"
    cand = candidates(grid, row, col)
    if digit not in cand:
        return f"{digit} is already in the row, column or box of r{row + 1}c{col + 1}"
    others = sorted(cand - {digit})
    if reason == "naked":
        return None if not others else f"r{row + 1}c{col + 1} can still hold {', '.join(map(str, others))}"
    if reason in ("box", "row", "column"):
        if unit != unit_of(n, reason, row, col) + 1:
            return f"r{row + 1}c{col + 1} is not in {reason} {unit}"
        rivals = [(r, c) for r, c in unit_cells(n, reason, unit - 1)
                  if (r, c) != (row, col) and not grid[r, c] and digit in candidates(grid, r, c)]
        if rivals:
            r, c = rivals[0]
            return f"r{r + 1}c{c + 1} in {reason} {unit} can also hold {digit}"
        return None
    if reason == "contradiction":
        alive = [d for d in others if _solvable_with(grid, row, col, d)]
        return None if not alive else f"{alive[0]} at r{row + 1}c{col + 1} still leaves a solution"
    if reason == "choice":
        if not _solvable_with(grid, row, col, digit):
            return f"{digit} at r{row + 1}c{col + 1} leaves no solution"
        if not any(_solvable_with(grid, row, col, d) for d in others):
            return f"{digit} is the only digit that keeps the puzzle solvable at r{row + 1}c{col + 1}"
        return None
    raise ValueError(f"unknown reason {reason!r}: expected one of {REASONS}")


def _single(grid: np.ndarray, row: int, col: int, digit: int) -> tuple[str, int] | None:
    """(reason, 1-based unit) of the first single that explains the placement, or None."""
    n = grid.shape[0]
    for reason in SINGLES:
        unit = 0 if reason == "naked" else unit_of(n, reason, row, col) + 1
        if reason_holds(grid, row, col, digit, reason, unit) is None:
            return reason, unit
    return None


def check_solved(puzzle: np.ndarray, solution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(puzzle, solution) as int arrays, or a ValueError naming what is wrong with them."""
    p = np.asarray(puzzle)
    s = np.asarray(solution)
    if p.ndim != 2 or p.shape[0] != p.shape[1] or p.shape[0] not in sudoku.BOXES:
        raise ValueError(f"Sudoku puzzle must be n x n with n in {sorted(sudoku.BOXES)}, got shape {p.shape}")
    if s.shape != p.shape:
        raise ValueError(f"solution shape {s.shape} differs from the puzzle's {p.shape}")
    p, s = p.astype(np.int64), s.astype(np.int64)
    n = p.shape[0]
    if p.min() < 0 or p.max() > n:
        raise ValueError(f"puzzle cells must be in 0..{n} (0 = blank)")
    if (s == 0).any():
        raise ValueError(f"solution is unsolved: {int((s == 0).sum())} blank cells")
    if sudoku.violations(s, p):
        raise ValueError(f"solution is invalid: {sudoku.violations(s, p)} violated constraints "
                         "(a repeated digit or a changed given)")
    return p, s


def explain_sudoku(puzzle: np.ndarray, solution: np.ndarray) -> list[Placement]:
    """The placements that fill every blank of ``puzzle`` with ``solution``'s digits, in rounds,
    each with the first reason that holds given the rounds before it."""
    p, s = check_solved(puzzle, solution)
    grid = p.copy()
    steps: list[Placement] = []
    rnd = 0
    while (grid == 0).any():
        rnd += 1
        found = []
        for r, c in zip(*np.nonzero(grid == 0)):
            r, c = int(r), int(c)
            hit = _single(grid, r, c, int(s[r, c]))
            if hit:
                found.append(Placement(r, c, int(s[r, c]), hit[0], hit[1], rnd))
        if not found:
            blanks = [(int(r), int(c)) for r, c in zip(*np.nonzero(grid == 0))]
            r, c = min(blanks, key=lambda rc: len(candidates(grid, *rc)))
            d = int(s[r, c])
            reason = "contradiction" if reason_holds(grid, r, c, d, "contradiction") is None else "choice"
            found = [Placement(r, c, d, reason, 0, rnd)]
        for pl in found:
            grid[pl.row, pl.col] = pl.digit
        steps.extend(found)
    return steps


def cell_name(row: int, col: int) -> str:
    """``r2c3`` for 0-based (1, 2)."""
    return f"r{row + 1}c{col + 1}"


def phrase(pl: Placement, variant: int = 0) -> str:
    """The claim text of one placement in phrasing ``variant`` (taken modulo the phrasings)."""
    options = PHRASES[phrase_group(pl.reason)]
    reason = options[variant % len(options)].format(d=pl.digit, unit=f"{pl.reason} {pl.unit}")
    return f"{cell_name(pl.row, pl.col)} = {pl.digit}: {reason}"


def sudoku_text(steps: Sequence[Placement], rng: np.random.Generator | None = None) -> str:
    """One claim per line; phrasings drawn from ``rng`` (the first phrasing of each when None)."""
    return "\n".join(phrase(pl, 0 if rng is None else int(rng.integers(len(PHRASES[phrase_group(pl.reason)]))))
                     for pl in steps)


def tokenize(text: str) -> list[str]:
    """Word-level tokens: cell names, numbers, words and single punctuation marks."""
    return _TOKEN.findall(text)


def detokenize(tokens: Sequence[str]) -> str:
    """Inverse of :func:`tokenize` for claim text (``:`` and ``,`` attach to the word before)."""
    out = ""
    for t in tokens:
        out += t if (not out or t in ",:") else " " + t
    return out


# --- mazes ---------------------------------------------------------------------------------

_MOVES = {(0, 1): "right", (1, 0): "down", (0, -1): "left", (-1, 0): "up"}


def path_cells(grid: np.ndarray, path: object) -> list[tuple[int, int]]:
    """The path as a list of (row, col) from S to G, from a list of cells or a label grid / mask."""
    arr = np.asarray(path)
    if arr.ndim == 2 and arr.shape == np.asarray(grid).shape:
        mask = arr.astype(bool) if arr.dtype == bool else arr == maze.PATH
        cur, goal = maze.find(grid, maze.START), maze.find(grid, maze.GOAL)
        cells, prev = [cur], None
        while cur != goal:
            nxt = [(cur[0] + dr, cur[1] + dc) for dr, dc in _MOVES
                   if 0 <= cur[0] + dr < mask.shape[0] and 0 <= cur[1] + dc < mask.shape[1]
                   and mask[cur[0] + dr, cur[1] + dc] and (cur[0] + dr, cur[1] + dc) != prev]
            if len(nxt) != 1:
                raise ValueError(f"path mask does not form a single line from S to G at {cur}")
            prev, cur = cur, nxt[0]
            cells.append(cur)
        return cells
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError("path must be a list of (row, col) cells or a label grid the maze's size")
    return [(int(r), int(c)) for r, c in arr]


def maze_runs(cells: Sequence[tuple[int, int]]) -> list[tuple[str, int]]:
    """Consecutive moves of a cell path grouped as (direction, count)."""
    runs: list[tuple[str, int]] = []
    for a, b in zip(cells, cells[1:]):
        d = (b[0] - a[0], b[1] - a[1])
        if d not in _MOVES:
            raise ValueError(f"path jumps from {a} to {b}: consecutive cells must be neighbours")
        name = _MOVES[d]
        runs.append((name, runs.pop()[1] + 1) if runs and runs[-1][0] == name else (name, 1))
    return runs


def maze_text(grid: np.ndarray, path: object) -> str:
    """``from S: right 2, down 4, left 1, reach G in 7 moves`` for a maze and its path."""
    cells = path_cells(grid, path)
    runs = maze_runs(cells)
    return f"from S: {', '.join(f'{d} {k}' for d, k in runs)}, reach G in {len(cells) - 1} moves"
