"""Sudoku n x n (n in 4, 6, 9): generator (unique or several solutions), solvers, augmentation, verifier.

Grids are numpy int arrays of shape (n, n); 0 marks a blank, 1..n are digits. All
randomness comes from a ``numpy.random.Generator`` so generation is deterministic by seed.
"""

from __future__ import annotations

import functools

import numpy as np

BOXES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}
#: Default number of blanks (inclusive range) per size; more blanks = harder.
BLANKS = {4: (6, 12), 6: (14, 26), 9: (30, 50)}


def box_shape(n: int) -> tuple[int, int]:
    """(rows, cols) of one box for an n x n Sudoku."""
    if n not in BOXES:
        raise ValueError(f"unsupported Sudoku size {n}: expected one of {sorted(BOXES)}")
    return BOXES[n]


@functools.cache
def _cell_units(n: int) -> tuple[tuple[int, int, int], ...]:
    """(row, column, box) of each cell, row-major (cached: the solver needs it on every call)."""
    br, bc = box_shape(n)
    return tuple((r, c, (r // br) * (n // bc) + c // bc) for r in range(n) for c in range(n))


#: (n, each cell's (row, column, box), cell values, digit bit masks per row, column and box)
Givens = tuple[int, tuple[tuple[int, int, int], ...], list[int], list[int], list[int], list[int]]


def givens(grid: np.ndarray) -> Givens | None:
    """(n, the cells' (row, column, box), cell values, and per row / column / box the bit mask of
    the digits given there), or None if two givens clash; shared by the solvers below."""
    g = np.asarray(grid)
    n = g.shape[0]
    if g.shape != (n, n):
        raise ValueError(f"grid must be square, got shape {g.shape}")
    units = _cell_units(n)
    rows, cols, boxes = [0] * n, [0] * n, [0] * n
    cells = [int(v) for v in g.reshape(-1).tolist()]
    for (r, c, b), v in zip(units, cells):
        if v:
            bit = 1 << v
            if (rows[r] | cols[c] | boxes[b]) & bit:
                return None
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
    return n, units, cells, rows, cols, boxes


def count_solutions(grid: np.ndarray, limit: int = 2, rng: np.random.Generator | None = None,
                    out: list | None = None) -> int:
    """Number of completions of ``grid`` (stops counting at ``limit``).

    Bitmask backtracking with the most-constrained-cell heuristic. When ``rng`` is given the
    candidate digits are tried in random order; when ``out`` is a list the first solution
    found is appended to it.
    """
    parsed = givens(grid)
    if parsed is None:
        return 0
    n, units, cells, rows, cols, boxes = parsed
    full = (1 << (n + 1)) - 2  # digits 1..n
    blanks = [(i, *units[i]) for i, v in enumerate(cells) if v == 0]
    count = 0

    def rec() -> bool:
        nonlocal count
        best, best_mask, best_n = -1, 0, n + 1
        for i, r, c, b in blanks:
            if cells[i]:
                continue
            mask = full & ~(rows[r] | cols[c] | boxes[b])
            k = mask.bit_count()
            if k < best_n:
                best, best_mask, best_n = i, mask, k
                if k <= 1:
                    break
        if best < 0:
            count += 1
            if out is not None and len(out) == 0:
                out.append(np.array(cells, dtype=np.int64).reshape(n, n))
            return count >= limit
        if best_n == 0:
            return False
        digits = [d for d in range(1, n + 1) if best_mask >> d & 1]
        if rng is not None:
            rng.shuffle(digits)
        r, c, b = units[best]
        for d in digits:
            bit = 1 << d
            cells[best] = d
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
            stop = rec()
            rows[r] &= ~bit
            cols[c] &= ~bit
            boxes[b] &= ~bit
            cells[best] = 0
            if stop:
                return True
        return False

    rec()
    return count


def has_solution(grid: np.ndarray) -> bool:
    """Whether ``grid`` can be completed; ``count_solutions(grid, limit=1) > 0``, 2-3x faster.

    Places every naked single (a blank with one candidate left) before branching on the
    most constrained blank, so most puzzles need no branching at all. Used to check each
    session's input, where it is per-session work that batching cannot share.
    """
    parsed = givens(grid)
    if parsed is None:
        return False
    n, units, cells, rows, cols, boxes = parsed
    full = (1 << (n + 1)) - 2  # digits 1..n

    def candidates(blank: tuple[int, int, int]) -> int:
        r, c, b = blank
        return full & ~(rows[r] | cols[c] | boxes[b])

    def toggle(blank: tuple[int, int, int], bit: int) -> None:  # places a digit, or takes it back out
        r, c, b = blank
        rows[r] ^= bit
        cols[c] ^= bit
        boxes[b] ^= bit

    def search(blanks: list[tuple[int, int, int]]) -> bool:
        placed: list[tuple[tuple[int, int, int], int]] = []
        try:
            while True:  # naked singles until none is left
                left = []
                for blank in blanks:
                    mask = candidates(blank)
                    if not mask:
                        return False
                    if mask & (mask - 1):
                        left.append(blank)
                    else:
                        toggle(blank, mask)
                        placed.append((blank, mask))
                if len(left) == len(blanks):
                    break
                blanks = left
            if not blanks:
                return True
            pick = min(blanks, key=lambda blank: candidates(blank).bit_count())
            others = [blank for blank in blanks if blank != pick]
            mask = candidates(pick)
            while mask:
                bit = mask & -mask
                mask ^= bit
                toggle(pick, bit)
                found = search(others)
                toggle(pick, bit)
                if found:
                    return True
            return False
        finally:
            for blank, bit in placed:
                toggle(blank, bit)

    return search([u for u, v in zip(units, cells) if v == 0])


def complete_guided(grid: np.ndarray, scores: np.ndarray) -> np.ndarray | None:
    """The valid completion of ``grid`` that a depth-first search finds first when it tries each
    cell's digits in descending ``scores`` (n, n, n: cell, digit-1), or None if there is none.

    With a model's log-probabilities as scores this is a completion close to what the model
    believes: its own answer when that answer is valid. Training labels puzzles that have
    several completions this way (any valid completion is right; the nearest is learnable).
    """
    parsed = givens(grid)
    if parsed is None:
        return None
    n, units, cells, rows, cols, boxes = parsed
    full = (1 << (n + 1)) - 2
    order = np.argsort(-np.asarray(scores, dtype=np.float64).reshape(n * n, n), axis=1) + 1
    prefs = [[int(d) for d in row] for row in order.tolist()]
    blanks = [i for i, v in enumerate(cells) if v == 0]

    def rec(left: list[int]) -> bool:
        if not left:
            return True
        best, best_mask, best_n = -1, 0, n + 1
        for i in left:
            r, c, b = units[i]
            mask = full & ~(rows[r] | cols[c] | boxes[b])
            k = mask.bit_count()
            if k < best_n:
                best, best_mask, best_n = i, mask, k
                if k <= 1:
                    break
        if best_n == 0:
            return False
        rest = [i for i in left if i != best]
        r, c, b = units[best]
        for d in prefs[best]:
            bit = 1 << d
            if not best_mask & bit:
                continue
            cells[best] = d
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
            if rec(rest):
                return True
            rows[r] &= ~bit
            cols[c] &= ~bit
            boxes[b] &= ~bit
            cells[best] = 0
        return False

    return np.array(cells, dtype=np.int64).reshape(n, n) if rec(blanks) else None


def solve(grid: np.ndarray) -> np.ndarray | None:
    """One solution of ``grid`` or None."""
    out: list = []
    count_solutions(grid, limit=1, out=out)
    return out[0] if out else None


def random_solution(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly-ish random complete valid grid."""
    out: list = []
    count_solutions(np.zeros((n, n), dtype=np.int64), limit=1, rng=rng, out=out)
    return out[0]


def make_puzzle(n: int, rng: np.random.Generator, blanks: int | None = None,
                unique: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(puzzle, solution) with (up to) ``blanks`` blank cells.

    ``unique=True`` (the default) keeps only removals after which the solution stays unique;
    ``unique=False`` blanks exactly ``blanks`` random cells of a random grid, so the puzzle may
    have several completions and ``solution`` is one of them.
    """
    lo, hi = BLANKS[n]
    target = int(rng.integers(lo, hi + 1)) if blanks is None else int(blanks)
    sol = random_solution(n, rng)
    if not unique:
        if not 0 <= target <= n * n:
            raise ValueError(f"blanks must be in 0..{n * n}, got {target}")
        puz = sol.copy()
        puz.reshape(-1)[rng.permutation(n * n)[:target]] = 0
        return puz, sol
    puz = sol.copy()
    removed = 0
    for idx in rng.permutation(n * n):
        if removed >= target:
            break
        r, c = divmod(int(idx), n)
        keep = puz[r, c]
        puz[r, c] = 0
        if count_solutions(puz, limit=2) == 1:
            removed += 1
        else:
            puz[r, c] = keep
    return puz, sol


def is_valid_solution(grid: np.ndarray) -> bool:
    """True when ``grid`` is a complete grid with no duplicates."""
    return violations(np.asarray(grid), np.zeros_like(grid)) == 0


def violations(answer: np.ndarray, puzzle: np.ndarray) -> int:
    """Number of violated constraints of ``answer`` for ``puzzle``.

    Counts duplicate digits in every row, column and box (a digit appearing k > 1 times counts
    k - 1), givens changed, and cells left blank or out of range. 0 means solved.
    """
    a = np.asarray(answer, dtype=np.int64)
    p = np.asarray(puzzle, dtype=np.int64)
    n = a.shape[0]
    br, bc = box_shape(n)
    bad = int(((a < 1) | (a > n)).sum())
    a_ok = np.where((a >= 1) & (a <= n), a, 0)
    given = p > 0
    bad += int((given & (a != p)).sum())
    groups = [a_ok, a_ok.T, a_ok.reshape(n // br, br, n // bc, bc).transpose(0, 2, 1, 3).reshape(n, n)]
    for g in groups:
        for row in g:
            vals = row[row > 0]
            bad += len(vals) - len(np.unique(vals))
    return bad


def violations_batch(answers: np.ndarray, puzzles: np.ndarray) -> np.ndarray:
    """Vectorised :func:`violations` over a batch of shape (B, n, n)."""
    a = np.asarray(answers, dtype=np.int64)
    p = np.asarray(puzzles, dtype=np.int64)
    B, n, _ = a.shape
    br, bc = box_shape(n)
    valid = (a >= 1) & (a <= n)
    bad = (~valid).sum((1, 2)) + ((p > 0) & (a != p)).sum((1, 2))
    onehot = (np.where(valid, a, 0)[..., None] == np.arange(1, n + 1)).view(np.int8)  # (B, row, col, digit)
    rows, cols = onehot.sum(2, dtype=np.int64), onehot.sum(1, dtype=np.int64)
    boxes = onehot.reshape(B, n // br, br, n // bc, bc, n).sum((2, 4), dtype=np.int64)
    for cnt in (rows, cols, boxes):
        bad += np.maximum(cnt - 1, 0).reshape(B, -1).sum(1)
    return bad


# --- augmentation -----------------------------------------------------------------------

def random_symmetry(n: int, rng: np.random.Generator) -> dict:
    """A random validity-preserving symmetry: digit map, row/col permutations, transpose."""
    br, bc = box_shape(n)
    digits = np.concatenate([[0], rng.permutation(n) + 1])
    bands = rng.permutation(n // br)
    rows = np.concatenate([b * br + rng.permutation(br) for b in bands])
    stacks = rng.permutation(n // bc)
    cols = np.concatenate([s * bc + rng.permutation(bc) for s in stacks])
    transpose = bool(br == bc and rng.integers(2))
    return {"digits": digits, "rows": rows, "cols": cols, "transpose": transpose}


def apply_symmetry(grid: np.ndarray, sym: dict) -> np.ndarray:
    """Apply a symmetry from :func:`random_symmetry` to a grid (or a batch on the last 2 axes)."""
    g = np.asarray(grid)
    g = sym["digits"][g]
    g = g[..., sym["rows"], :][..., :, sym["cols"]]
    if sym["transpose"]:
        g = np.swapaxes(g, -1, -2)
    return g


def invert_symmetry(grid: np.ndarray, sym: dict) -> np.ndarray:
    """Inverse of :func:`apply_symmetry`."""
    g = np.asarray(grid)
    if sym["transpose"]:
        g = np.swapaxes(g, -1, -2)
    g = g[..., np.argsort(sym["rows"]), :][..., :, np.argsort(sym["cols"])]
    inv_digits = np.argsort(sym["digits"])
    return inv_digits[g]
