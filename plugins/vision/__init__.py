"""Built-in IRP plugins `vision`: reads Sudoku and maze images into the grids the HRM takes, and
`vision_scene` (:mod:`.scene`): locates a target marker on the ground of a scene through its camera.

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
from .scene import SceneReader

__all__ = ["CellConfig", "CellNet", "ImageError", "Located", "SceneReader", "VisionReader", "cells", "locate", "reread",
           "sudoku_conflicts", "to_gray"]
