"""The language plugin's LLM tool ``explain_solution``, declared through ``sage_register_tools``.

The calling model sends a puzzle and its solution as ``solve_sudoku`` / ``solve_maze`` answer
them; one LanguageExplainer session writes the explanation and the host returns the text with
each claim's verdict from the claim checker (``claims``), so the model repeats only checked text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from sage_core import ToolSpec

from plugins.puzzles import maze

from .plugin import STYLES

_GRID = {"type": "array", "maxItems": 9, "items": {"type": "array", "maxItems": 9, "items": {"type": "integer"}}}
_MAZE = {"type": "array", "maxItems": 31, "items": {"type": "string", "maxLength": 31}}

EXPLAIN_SCHEMA = {
    "type": "object",
    "properties": {
        "puzzle": {"description": "a 4x4 or 6x6 Sudoku as rows of integers (0 = blank), or a maze as one string "
                                  "per row ('#' wall, ' ' open, 'S' start, 'G' goal)",
                   "anyOf": [_GRID, _MAZE]},
        "solution": {"description": "the solved grid (rows of integers), or the maze with 'o' on a shortest "
                                    "path from S to G (as solve_sudoku / solve_maze answer)",
                     "anyOf": [_GRID, _MAZE]},
        "style": {"type": "string", "enum": list(STYLES), "default": "steps",
                  "description": "'steps': one claim per filled cell with its reason; 'summary': shorter"},
    },
    "required": ["puzzle", "solution"],
    "additionalProperties": False,
}

EXPLAIN_ANSWER = {"type": "string", "description": "the explanation; 'claims' gives each claim's checked verdict"}


def _rows(value: Any, name: str) -> list:
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{name}: expected rows of integers (Sudoku) or strings (maze), got {type(value).__name__}")
    return list(value)


def _maze_path(puzzle: list[str], solution: list[Any]) -> np.ndarray:
    """The path mask (S and G included) of a maze drawn with 'o' on its path."""
    if not all(isinstance(r, str) for r in solution):
        raise ValueError("solution: for a maze, the maze's rows with 'o' on the path (as solve_maze answers)")
    if [len(r) for r in solution] != [len(r) for r in puzzle]:
        raise ValueError(f"solution: must have the maze's shape ({len(puzzle)} rows of {len(puzzle[0])}), got "
                         f"{len(solution)} rows")
    for r, (row, drawn) in enumerate(zip(puzzle, solution)):
        for c, (a, b) in enumerate(zip(row, drawn)):
            if b != a and not (a == " " and b == "o"):
                raise ValueError(f"solution: cell ({r}, {c}) is {b!r} but the puzzle has {a!r}; only open cells "
                                 "may change, to 'o'")
    return np.array([[ch in "oSG" for ch in row] for row in solution], dtype=bool)


def prepare_explain(arguments: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(solved puzzle, context) of an ``explain_solution`` call."""
    puzzle, solution = _rows(arguments.get("puzzle"), "puzzle"), _rows(arguments.get("solution"), "solution")
    ctx = {"style": arguments.get("style", "steps")}
    if ctx["style"] not in STYLES:
        raise ValueError(f"style: must be one of {list(STYLES)}, got {ctx['style']!r}")
    if all(isinstance(r, str) for r in puzzle):
        try:
            maze.parse(puzzle)
        except ValueError as exc:
            raise ValueError(f"puzzle: not a maze: {exc}") from None
        return {"puzzle": puzzle, "solution": _maze_path(puzzle, solution)}, ctx
    for name, grid in (("puzzle", puzzle), ("solution", solution)):
        if not all(isinstance(r, (list, tuple)) for r in grid) or any(
                isinstance(c, bool) or not isinstance(c, int) for r in grid for c in r):
            raise ValueError(f"{name}: a Sudoku is rows of integers (0 = blank in the puzzle)")
        if any(len(r) != len(grid) for r in grid):
            raise ValueError(f"{name}: a Sudoku is square (n rows of n integers), got rows of "
                             f"{sorted({len(r) for r in grid})} for {len(grid)} rows")
    return {"puzzle": [list(r) for r in puzzle], "solution": [list(r) for r in solution]}, ctx


EXPLAIN_SOLUTION = ToolSpec(
    name="explain_solution",
    description="Explain a solved 4x4 or 6x6 Sudoku (or a maze path) step by step in text written by sage's "
                "language model (mask-predict, refined until the claim checker accepts every claim); each "
                "claim comes back with its checked verdict ('claims'), 'verified' when all hold.",
    plugin="language", input_schema=EXPLAIN_SCHEMA, prepare=prepare_explain, answer_schema=EXPLAIN_ANSWER,
)

TOOLS = (EXPLAIN_SOLUTION,)
