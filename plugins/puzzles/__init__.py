"""Shared puzzle library (not a plugin; registers nothing): Sudoku and maze parsing,
verification, generation and symmetries, used by every built-in plugin that reads, solves or
explains puzzles. Plugins import this library, never each other.

- :mod:`plugins.puzzles.sudoku`: n x n Sudoku (4, 6, 9): solver, uniqueness check, generator,
  symmetries, verifier.
- :mod:`plugins.puzzles.maze`: perfect mazes with S/G, shortest-path labels, symmetries,
  verifier accepting any shortest valid path, text parsing and rendering.
- :mod:`plugins.puzzles.explain`: the symbolic explainer (Sudoku placements with reasons in
  rounds, several phrasings each; maze move lists).
- :mod:`plugins.puzzles.claims`: ``check_explanation(puzzle, solution, text)``, each claim true or
  false and why.
- :mod:`plugins.puzzles.render`: grids drawn to images in a style (font, line widths, scale,
  rotation, perspective, blur, noise, JPEG quality, lighting) and the benchmark levels; needs
  Pillow (the viz extra). :mod:`plugins.puzzles.fonts`: training and held-out fonts.
  :mod:`plugins.puzzles.geometry`: homographies (numpy only).
"""

from . import claims, explain, fonts, geometry, maze, render, sudoku
from .claims import check_explanation

__all__ = ["check_explanation", "claims", "explain", "fonts", "geometry", "maze", "render", "sudoku"]
