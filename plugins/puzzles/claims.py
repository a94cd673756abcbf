"""Claim checker: ``check_explanation(puzzle, solution, text)`` parses an explanation claim by
claim and says of each whether it is true and why, so text is trusted only where it is checked.

Sudoku: one claim per line (``;`` also separates), ``r2c3 = 4: <reason>`` with a reason in one of
the explainer's phrasings (:data:`plugins.puzzles.explain.PHRASES`). A claim is true when its
digit is the solution's and its reason holds given the claims before it (each claim with the
solution's digit places it, whether its reason holds or not; a wrong digit places nothing); a line
that does not parse is a false claim. Blank cells that no claim fills are reported as ``missing``.

Maze: ``from S: right 2, down 4, ..., reach G in 13 moves``; each move run is a claim, true when
it follows the solution path from where the earlier runs left off; the last claim is true when
the walk ends at G after exactly the stated moves.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from . import maze
from .explain import PHRASES, check_solved, path_cells, phrase_group, reason_holds

_CLAIM = re.compile(r"^r(\d+)c(\d+) = (\d+): (.+?)\.?$")
_RUN = re.compile(r"^(right|down|left|up) (\d+)$")
_END = re.compile(r"^reach G in (\d+) moves?\.?$")
_STEP = {"right": (0, 1), "down": (1, 0), "left": (0, -1), "up": (-1, 0)}


def _reason_pattern(template: str) -> re.Pattern[str]:
    body = re.escape(template).replace(re.escape("{d}"), r"(?P<d>\d+)")
    body = body.replace(re.escape("{unit}"), r"(?P<kind>box|row|column) (?P<unit>\d+)")
    return re.compile(f"^{body}$")


_PATTERNS = [(group, _reason_pattern(t)) for group, ts in PHRASES.items() for t in ts]


@attrs.frozen
class Claim:
    """One claim of an explanation: its text, whether it holds (``true``) and ``why`` (or why not).
    ``cell`` (0-based row, col), ``digit``, ``reason`` and ``unit`` are None where it did not parse."""

    text: str
    true: bool
    why: str
    cell: tuple[int, int] | None = None
    digit: int | None = None
    reason: str | None = None
    unit: int | None = None


@attrs.frozen
class CheckResult:
    """Every claim of one explanation in order, and the blank cells no claim fills."""

    claims: tuple[Claim, ...]
    missing: tuple[tuple[int, int], ...] = ()
    blanks: int = 0

    @property
    def n_false(self) -> int:
        """Number of false (or unparseable) claims."""
        return sum(not c.true for c in self.claims)

    @property
    def n_true(self) -> int:
        return sum(c.true for c in self.claims)

    @property
    def parse_failures(self) -> int:
        """Claims that did not parse."""
        return sum(c.cell is None and not c.true for c in self.claims)

    @property
    def all_true(self) -> bool:
        """True when there is at least one claim, every claim is true and nothing is missing."""
        return bool(self.claims) and self.n_false == 0 and not self.missing

    @property
    def coverage(self) -> float:
        """Share of the blank cells that a true claim fills (1.0 when there is none to fill)."""
        if not self.blanks:
            return 1.0
        return sum(c.true and c.cell is not None for c in self.claims) / self.blanks


def parse_reason(text: str) -> tuple[str, int, int | None] | None:
    """(reason, unit, digit named in the reason or None) for a reason phrasing, or None."""
    for group, pat in _PATTERNS:
        m = pat.match(text)
        if m:
            if group == "hidden":
                return m["kind"], int(m["unit"]), int(m["d"])
            return group, 0, None
    return None


def split_claims(text: str) -> list[str]:
    """Non-empty claims of a Sudoku explanation (lines, or parts separated by ``;``)."""
    return [part.strip() for part in re.split(r"[\n;]", text) if part.strip()]


def check_sudoku(puzzle: Any, solution: Any, text: str) -> CheckResult:
    """Check a Sudoku explanation claim by claim (see the module docstring)."""
    p, s = check_solved(puzzle, solution)
    n = p.shape[0]
    grid = p.copy()
    claims = []
    for line in split_claims(text):
        m = _CLAIM.match(line)
        parsed = parse_reason(m[4]) if m else None
        if not m or parsed is None:
            claims.append(Claim(line, False, "does not parse as 'rXcY = D: <reason>' with a known reason"))
            continue
        r, c, d = int(m[1]) - 1, int(m[2]) - 1, int(m[3])
        reason, unit, named = parsed
        info = {"cell": (r, c), "digit": d, "reason": reason, "unit": unit}
        if not (0 <= r < n and 0 <= c < n):
            claims.append(Claim(line, False, f"no cell r{r + 1}c{c + 1} in a {n}x{n} grid", **info))
            continue
        if p[r, c]:
            claims.append(Claim(line, False, f"r{r + 1}c{c + 1} is a given, not a blank", **info))
            continue
        if grid[r, c]:
            claims.append(Claim(line, False, f"r{r + 1}c{c + 1} was already filled by an earlier claim", **info))
            continue
        if d != s[r, c]:
            why = f"wrong value: the solution has {int(s[r, c])} at r{r + 1}c{c + 1}"
        elif named is not None and named != d:
            why = f"wrong reason: it speaks of {named} but places {d}"
        else:
            why = reason_holds(grid, r, c, d, reason, unit) or ""
        if d == s[r, c]:
            grid[r, c] = d
        claims.append(Claim(line, not why, why or f"{reason} holds given the claims before it", **info))
    missing = tuple((int(r), int(c)) for r, c in zip(*np.nonzero(grid == 0)))
    return CheckResult(tuple(claims), missing, int((p == 0).sum()))


def check_maze(grid: Any, path: Any, text: str) -> CheckResult:
    """Check a maze move list against the maze and its solution path."""
    g = maze.parse(list(grid)) if not isinstance(grid, np.ndarray) else grid
    cells = path_cells(g, path)
    body = text.strip()
    if not body.startswith("from S:"):
        return CheckResult((Claim(body, False, "does not start with 'from S:'"),), blanks=len(cells) - 1)
    parts = [x.strip() for x in body[len("from S:"):].split(",") if x.strip()]
    claims, pos, at, on_path = [], cells[0], 0, True
    for part in parts:
        run, end = _RUN.match(part), _END.match(part)
        if run:
            dr, dc = _STEP[run[1]]
            k = int(run[2])
            walk = [(pos[0] + dr * i, pos[1] + dc * i) for i in range(1, k + 1)]
            ok = on_path and k > 0 and list(cells[at + 1:at + 1 + k]) == walk
            claims.append(Claim(part, ok, f"{run[1]} {k} follows the path" if ok else
                                f"{run[1]} {k} from {pos} leaves the solution path"))
            on_path &= ok
            pos, at = walk[-1] if walk else pos, at + k
        elif end:
            k = int(end[1])
            ok = on_path and pos == cells[-1] and k == at == len(cells) - 1
            claims.append(Claim(part, ok, f"G reached in {k} moves" if ok else
                                f"the walk ends at {pos} after {at} moves, G is {cells[-1]} after {len(cells) - 1}"))
        else:
            claims.append(Claim(part, False, "does not parse as '<direction> <count>' or 'reach G in N moves'"))
    if not claims or not _END.match(claims[-1].text):
        claims.append(Claim("", False, "missing the final 'reach G in N moves'"))
    return CheckResult(tuple(claims), blanks=len(cells) - 1)


def check_explanation(puzzle: Any, solution: Any, text: str) -> CheckResult:
    """Each claim of ``text`` with true/false and why: a Sudoku (grid, solved grid) or a maze
    (list of strings, path as cells or label grid)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if isinstance(puzzle, Sequence) and puzzle and all(isinstance(r, str) for r in puzzle):
        return check_maze(puzzle, solution, text)
    return check_sudoku(puzzle, solution, text)
