"""Built-in IRP plugin `vision`: reads Sudoku and maze images into the grids the HRM takes.

Located and rectified with numpy (:mod:`.locate`), read cell by cell by a small trained conv
encoder/decoder (:mod:`.model`), refined by analysis by synthesis in latent space (:mod:`.refine`),
and corrected from solver feedback under the puzzle's constraints (:mod:`.feedback`).
Registers through the `sage` entry-point group (:mod:`.hooks`).
"""

from .feedback import reread, sudoku_conflicts
from .image import ImageError, to_gray
from .locate import Located, cells, locate
from .model import CellConfig, CellNet
from .plugin import VisionReader

__all__ = ["CellConfig", "CellNet", "ImageError", "Located", "VisionReader", "cells", "locate", "reread",
           "sudoku_conflicts", "to_gray"]
