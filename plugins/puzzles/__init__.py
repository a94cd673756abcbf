"""Shared puzzle library (not a plugin; registers nothing): Sudoku and maze parsing,
verification, generation and symmetries, used by every built-in plugin that reads, solves or
explains puzzles. Plugins import this library, never each other.

- :mod:`plugins.puzzles.sudoku`: n x n Sudoku (4, 6, 9): solver, uniqueness check, generator,
  symmetries, verifier.
- :mod:`plugins.puzzles.maze`: perfect mazes with S/G, shortest-path labels, symmetries,
  verifier accepting any shortest valid path, text parsing and rendering.
"""

from . import maze, sudoku

__all__ = ["maze", "sudoku"]
