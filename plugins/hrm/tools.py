"""The HRM's LLM tools (``solve_sudoku``, ``solve_maze``), declared through ``sage_register_tools``.

Each call is one HRM session. The arguments' shape and types are checked here, so the calling
model reads an error naming the argument; the HRM's own ``init_state`` checks the rest (size,
digit range, conflicting givens) and the host reports its message the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sage_core import ToolSpec

#: Cells of the Sudoku sizes the HRM solves (4x4, 6x6, 9x9) when given as one string.
STRING_CELLS = {16: 4, 36: 6, 81: 9}
MAX_STEPS = 64

_RUN_OPTIONS = {
    "mode": {"type": "string", "enum": ["irp", "bare"], "default": "irp",
             "description": "'irp' refines past the model's own halt and restarts under symmetries "
                            "until verified; 'bare' is the model alone"},
    "max_steps": {"type": "integer", "minimum": 1, "maximum": MAX_STEPS,
                  "description": "reasoning segments at most (default: 4 attempts' worth)"},
    "seed": {"type": "integer", "minimum": 0, "description": "seed of the restarts' symmetries"},
}

SUDOKU_SCHEMA = {
    "type": "object",
    "properties": {
        "puzzle": {
            "description": "a 4x4, 6x6 or 9x9 Sudoku: rows of integers (0 = blank), or one string of "
                           "16, 36 or 81 cells row by row, '0' or '.' blank (whitespace ignored)",
            "anyOf": [{"type": "string", "maxLength": 400},
                      {"type": "array", "maxItems": 9,
                       "items": {"type": "array", "maxItems": 9, "items": {"type": "integer"}}}],
        },
        **_RUN_OPTIONS,
    },
    "required": ["puzzle"],
    "additionalProperties": False,
}

MAZE_SCHEMA = {
    "type": "object",
    "properties": {
        "maze": {"type": "array", "minItems": 11, "maxItems": 13, "items": {"type": "string", "maxLength": 13},
                 "description": "an 11x11 or 13x13 maze, one string per row: '#' wall, ' ' open, 'S' start, "
                                "'G' goal"},
        **_RUN_OPTIONS,
    },
    "required": ["maze"],
    "additionalProperties": False,
}

SUDOKU_ANSWER = {"type": "array", "items": {"type": "array", "items": {"type": "integer"}},
                 "description": "the completed grid"}
MAZE_ANSWER = {"type": "array", "items": {"type": "string"}, "description": "the maze with 'o' on the path"}


def sudoku_grid(value: Any) -> list[list[int]]:
    """Rows of ints from a nested list or a 16/36/81-cell string; ValueError names ``puzzle``."""
    if isinstance(value, str):
        cells = "".join(value.split())
        if len(cells) not in STRING_CELLS:
            raise ValueError(f"puzzle: a string must have 16, 36 or 81 cells (4x4, 6x6, 9x9), got {len(cells)}")
        bad = sorted({c for c in cells if not (c.isdigit() or c == ".")})
        if bad:
            raise ValueError(f"puzzle: cells must be digits, with '0' or '.' for a blank; found {''.join(bad)!r}")
        n = STRING_CELLS[len(cells)]
        digits = [0 if c == "." else int(c) for c in cells]
        return [digits[r * n:(r + 1) * n] for r in range(n)]
    if not isinstance(value, (list, tuple)) or not all(isinstance(row, (list, tuple)) for row in value):
        raise ValueError(f"puzzle: expected rows of integers or a string, got {type(value).__name__}")
    if len(value) > 9 or any(len(row) > 9 for row in value):
        raise ValueError("puzzle: at most 9 rows of 9 cells (4x4, 6x6 or 9x9)")
    if any(isinstance(c, bool) or not isinstance(c, int) for row in value for c in row):
        raise ValueError("puzzle: every cell must be an integer (0 = blank)")
    return [list(row) for row in value]


def _run_context(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The HRM context from the optional run arguments, each checked by name."""
    ctx: dict[str, Any] = {}
    mode = arguments.get("mode", "irp")
    if mode not in ("irp", "bare"):
        raise ValueError(f"mode: must be 'irp' or 'bare', got {mode!r}")
    ctx["mode"] = mode
    for key, lo, hi in (("max_steps", 1, MAX_STEPS), ("seed", 0, 2**31 - 1)):
        if key in arguments:
            v = arguments[key]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{key}: must be an integer in {lo}..{hi}, got {v!r}")
            ctx[key] = v
    return ctx


def prepare_sudoku(arguments: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(grid, context) of a ``solve_sudoku`` call."""
    return sudoku_grid(arguments.get("puzzle")), _run_context(arguments)


def prepare_maze(arguments: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(maze rows, context) of a ``solve_maze`` call."""
    rows = arguments.get("maze")
    if not isinstance(rows, (list, tuple)) or not rows or not all(isinstance(r, str) for r in rows):
        raise ValueError(f"maze: expected a list of strings (one per row), got {type(rows).__name__}")
    if len(rows) > 13 or any(len(r) > 13 for r in rows):
        raise ValueError("maze: at most 13 rows of 13 characters (11x11 or 13x13)")
    return list(rows), _run_context(arguments)


SOLVE_SUDOKU = ToolSpec(
    name="solve_sudoku",
    description="Solve a 4x4, 6x6 or 9x9 Sudoku with the Hierarchical Reasoning Model (a small trained "
                "reasoner); the answer is checked against every constraint ('verified').",
    plugin="hrm", input_schema=SUDOKU_SCHEMA, prepare=prepare_sudoku, answer_schema=SUDOKU_ANSWER,
)

SOLVE_MAZE = ToolSpec(
    name="solve_maze",
    description="Find a shortest path from S to G in an 11x11 maze with the Hierarchical Reasoning Model; "
                "the path is checked ('verified') and drawn with 'o'.",
    plugin="hrm", input_schema=MAZE_SCHEMA, prepare=prepare_maze, answer_schema=MAZE_ANSWER,
)

TOOLS = (SOLVE_SUDOKU, SOLVE_MAZE)
