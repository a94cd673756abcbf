"""The ``solved_puzzle -> cell_conflicts`` bridge: the cells a solver's result shows in conflict,
fed back to the reader (vision owns the ``cell_conflicts`` kind, DESIGN.md section 8).

Registered through ``sage_register_bridges`` (:mod:`.hooks`); reads only the solver's output
value, so no other plugin is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .evaluate import solver_conflicts


def flagged_givens(puzzle: Any, verified: bool) -> np.ndarray:
    """n x n bools: the givens whose digit repeats in a row, column or box, or every given when
    nothing repeats but the givens have no solution; none when verified or solvable."""
    grid = np.asarray(puzzle, dtype=np.int64)
    flags = None if verified else solver_conflicts(grid)
    return np.zeros(grid.shape, dtype=bool) if flags is None else flags


class SolvedToConflicts:
    """Bridge from a state whose ``x`` is a ``solved_puzzle`` (Sudoku) to its ``cell_conflicts``."""

    name = "cell_conflicts"
    source_kind = "solved_puzzle"
    target_kind = "cell_conflicts"

    def __call__(self, state: Any) -> list[list[bool]]:
        x = getattr(state, "x", state)
        if not isinstance(x, Mapping) or "puzzle" not in x:
            raise ValueError(f"cell_conflicts: expected a solved_puzzle dict with 'puzzle', got {type(x).__name__}")
        puzzle = x["puzzle"]
        if puzzle and isinstance(puzzle[0], str):
            raise ValueError("cell_conflicts: mazes have no cell conflicts (only Sudoku readings are fed back)")
        return flagged_givens(puzzle, bool(x.get("verified"))).tolist()


cell_conflicts = SolvedToConflicts()
