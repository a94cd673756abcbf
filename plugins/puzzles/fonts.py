"""Fonts for rendering puzzles, split into training and held-out evaluation fonts.

Nothing is downloaded: the fonts are the TrueType files matplotlib ships (``mpl-data/fonts/ttf``)
and Pillow's built-in default font (``"pillow-default"``). A model trained on images rendered by
this library uses :data:`TRAIN_FONTS` only; :data:`EVAL_FONTS` are kept for measuring it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

VIZ_HINT = "pip install 'sage-irp[viz]'"

#: Fonts a model may be trained on.
TRAIN_FONTS: tuple[str, ...] = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "STIXGeneral.ttf",
    "STIXGeneralBolIta.ttf", "cmr10.ttf", "cmtt10.ttf", "cmb10.ttf", "pillow-default",
)
#: Held-out fonts: never used for training, only for evaluation.
EVAL_FONTS: tuple[str, ...] = (
    "DejaVuSerif.ttf", "DejaVuSans-BoldOblique.ttf", "DejaVuSansMono-Oblique.ttf",
    "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "cmss10.ttf",
)


def require_pillow() -> Any:
    """The ``PIL`` package, or an ImportError that says which extra to install."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        raise ImportError(f"rendering and reading image files need Pillow: {VIZ_HINT}") from None
    import PIL

    return PIL


@functools.cache
def font_dir() -> Path:
    """matplotlib's folder of TrueType fonts (found without importing matplotlib)."""
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the puzzle fonts come with matplotlib: {VIZ_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"


@functools.lru_cache(maxsize=512)
def load_font(name: str, size: int) -> Any:
    """A Pillow FreeType font: a file of :func:`font_dir`, an absolute path, or ``"pillow-default"``."""
    require_pillow()
    from PIL import ImageFont

    if size < 1:
        raise ValueError(f"font size must be >= 1 px, got {size}")
    if name == "pillow-default":
        return ImageFont.load_default(size)
    path = Path(name) if Path(name).is_absolute() else font_dir() / name
    if not path.is_file():
        raise ValueError(f"unknown font {name!r}: expected a file in {font_dir()} or an absolute path")
    return ImageFont.truetype(str(path), size)
