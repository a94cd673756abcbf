"""A shipped example image (a noisy, slightly turned 4x4 Sudoku, held-out font) stored as a uint8
safetensors tensor, so the conformance kit needs neither Pillow nor a renderer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).parent / "checkpoints" / "example.safetensors"


def example_image() -> np.ndarray:
    """The example image, H x W uint8."""
    from safetensors.numpy import load_file

    return load_file(str(EXAMPLE))["image"]


def write_example(path: Path = EXAMPLE) -> np.ndarray:
    """Render the example (needs Pillow) and store it at ``path``."""
    from safetensors.numpy import save_file

    from plugins.puzzles import render
    from plugins.puzzles.fonts import EVAL_FONTS

    grid = np.array([[4, 3, 0, 0], [0, 0, 0, 0], [0, 0, 2, 1], [2, 0, 3, 0]])
    style = render.Style(font=EVAL_FONTS[4], cell_px=34, rotation=-6.0, perspective=0.04, blur=0.8,
                         noise=25.0, jpeg=40, lighting=0.4)
    image = render.render(grid, style, np.random.default_rng(12)).image
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"image": np.ascontiguousarray(image)}, str(path))
    return image
