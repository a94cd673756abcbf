"""The ``summary`` style: one sentence that counts an explanation's checked claims by reason."""

from __future__ import annotations

from collections import Counter

import numpy as np

from plugins.puzzles.claims import check_sudoku

_NAMES = (("naked", "naked singles"), ("hidden", "hidden singles"), ("contradiction", "by contradiction"),
          ("choice", "free choices"))


def summarize(puzzle: np.ndarray, solution: np.ndarray, text: str) -> str:
    """``Fills 22 blanks: 12 naked singles, 10 hidden singles; 22 of 22 claims verified.``"""
    result = check_sudoku(puzzle, solution, text)
    kinds = Counter("hidden" if c.reason in ("box", "row", "column") else c.reason
                    for c in result.claims if c.true)
    parts = [f"{kinds[k]} {name}" for k, name in _NAMES if kinds[k]]
    return (f"Fills {result.blanks} blanks: {', '.join(parts) or 'none explained'}; "
            f"{result.n_true} of {len(result.claims)} claims verified.")
