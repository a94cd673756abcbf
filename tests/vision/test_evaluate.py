"""The benchmark's scoring: a misread maze (two S, no G) is scored cell by cell, not dropped as unlocated."""

from __future__ import annotations

import numpy as np

from plugins.vision import data
from plugins.vision.evaluate import _classes
from plugins.vision.model import MAZE_BASE


def test_maze_readings_are_scored_even_when_not_a_valid_maze() -> None:
    valid = ["#####", "#S  #", "# # #", "#  G#", "#####"]
    assert np.array_equal(_classes(valid, "maze"), data.labels(valid, "maze"))
    misread = ["#####", "#S  #", "# # #", "#  S#", "#####"]  # the G read as an S
    got = _classes(misread, "maze")
    assert (got != data.labels(valid, "maze")).sum() == 1 and got[18] == MAZE_BASE + 2
    assert np.array_equal(_classes([[1, 0], [0, 2]], "sudoku"), [1, 0, 0, 2])
