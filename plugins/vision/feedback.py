"""Re-reading cells a solver finds in conflict, under the puzzle's constraints.

The flagged cells get the most probable joint reading (product of their class probabilities)
that repeats no digit in any row, column or box and leaves the Sudoku solvable (for a maze:
exactly one S and one G, joined by a path). Readings are enumerated best first.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import numpy as np

from plugins.puzzles import maze, sudoku

from .model import MAZE_BASE

#: A class is a candidate for a flagged cell if its probability is at least this.
CANDIDATE = 1e-4
MAX_CANDIDATES = 4
MAX_TRIES = 2000


def sudoku_conflicts(grid: np.ndarray) -> np.ndarray:
    """n x n bools: cells whose digit repeats in their row, column or box (what a solver reports)."""
    g = np.asarray(grid)
    n = g.shape[0]
    br, bc = sudoku.box_shape(n)
    out = np.zeros((n, n), dtype=bool)
    boxes = (np.arange(n)[:, None] // br) * (n // bc) + np.arange(n)[None, :] // bc
    for d in range(1, n + 1):  # blanks never conflict
        at = g == d
        rows = at.sum(1, keepdims=True) > 1
        cols = at.sum(0, keepdims=True) > 1
        box_counts = np.bincount(boxes[at], minlength=n)
        out |= at & (rows | cols | (box_counts[boxes] > 1))
    return out


def _sudoku_checker(classes: np.ndarray, cells: np.ndarray, size: int) -> Callable[[np.ndarray], bool] | None:
    """A fast validity test of readings that differ from ``classes`` only at ``cells``, or None
    when the other cells already repeat a digit (no reading of ``cells`` can be valid)."""
    fixed = classes.copy()
    fixed[cells] = 0
    masks = sudoku.givens(fixed.reshape(size, size))  # None when the other cells already repeat a digit
    if masks is None:
        return None
    _, units, _, rows, cols, boxes = masks

    def ok(trial: np.ndarray) -> bool:
        rr, cc, bb = rows[:], cols[:], boxes[:]
        for i in cells.tolist():
            d = int(trial[i])
            if d:
                r, c, b = units[i]
                bit = 1 << d
                if (rr[r] | cc[c] | bb[b]) & bit:
                    return False
                rr[r] |= bit
                cc[c] |= bit
                bb[b] |= bit
        return sudoku.has_solution(trial.reshape(size, size))

    return ok


def _valid_maze(codes: np.ndarray) -> bool:
    if (codes == maze.START).sum() != 1 or (codes == maze.GOAL).sum() != 1:
        return False
    dist = maze.bfs(codes, maze.find(codes, maze.START))
    return bool(dist[maze.find(codes, maze.GOAL)] >= 0)


def reread(probs: np.ndarray, flagged: np.ndarray, kind: str, size: int) -> np.ndarray | None:
    """New class per cell (N,) where the flagged cells take the best valid joint reading and the
    others keep their most probable class; None when no valid reading is found."""
    classes = probs.argmax(-1)
    cells = np.flatnonzero(flagged)
    cands = []
    for i in cells:
        order = np.argsort(-probs[i])[:MAX_CANDIDATES]
        keep = [int(c) for c in order if probs[i, c] >= CANDIDATE] or [int(order[0])]
        cands.append([(-math.log(max(float(probs[i, c]), 1e-300)), c) for c in keep])
    if kind == "sudoku":
        checker = _sudoku_checker(classes, cells, size)
        if checker is None:
            return None
        valid: Callable[[np.ndarray], bool] = checker
    else:
        def valid(trial: np.ndarray) -> bool:
            return _valid_maze((trial - MAZE_BASE).reshape(size, size))

    start = (0,) * len(cells)
    heap = [(sum(c[0][0] for c in cands), start)]
    seen = {start}
    for _ in range(MAX_TRIES):
        if not heap:
            break
        cost, idx = heapq.heappop(heap)
        trial = classes.copy()
        trial[cells] = [cands[k][j][1] for k, j in enumerate(idx)]
        if valid(trial):
            return trial
        for k in range(len(idx)):
            if idx[k] + 1 < len(cands[k]):
                nxt = idx[:k] + (idx[k] + 1,) + idx[k + 1:]
                if nxt not in seen:
                    seen.add(nxt)
                    heapq.heappush(heap, (cost - cands[k][idx[k]][0] + cands[k][idx[k] + 1][0], nxt))
    return None
