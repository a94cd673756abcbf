"""Turning what a user has (a path, a PIL image, a numpy array) into one grayscale array."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

VIZ_HINT = "pip install 'sage-irp[viz]'"
#: Smallest image side read (the benchmark's images are 160 px and up; 150 px must work).
MIN_SIDE = 100
#: Largest image side read.
MAX_SIDE = 8000


class ImageError(ValueError):
    """An input the vision plugin cannot read; the message names the problem."""


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(f"reading image files and PIL images needs Pillow: {VIZ_HINT}") from None
    return Image


def _from_file(path: str | os.PathLike[str], mode: str = "L") -> np.ndarray:
    """The image file at ``path`` as a uint8 array in PIL ``mode`` ("L" gray, "RGB")."""
    image_mod = _pillow()
    if not os.path.isfile(path):
        raise ImageError(f"unreadable image file {os.fspath(path)!r}: no such file")
    try:
        with image_mod.open(path) as img:
            return np.asarray(img.convert(mode))
    except (OSError, SyntaxError, ValueError, image_mod.DecompressionBombError) as exc:
        raise ImageError(f"unreadable image file {os.fspath(path)!r}: {exc}") from None


def to_gray(image: Any) -> np.ndarray:
    """A float32 H x W array in [0, 1] from a PNG/JPEG path, a PIL image or a uint8 array
    (H x W, H x W x 3 or H x W x 4); raises :class:`ImageError` naming what is wrong."""
    if isinstance(image, (str, os.PathLike)):
        arr = _from_file(image)
    elif type(image).__module__.startswith("PIL."):
        _pillow()
        arr = np.asarray(image.convert("L"))
    elif isinstance(image, np.ndarray):
        arr = image
    else:
        raise ImageError(f"not an image: got {type(image).__name__}; pass a PNG/JPEG path, a PIL image "
                         "or a numpy uint8 array (H x W or H x W x 3)")
    if arr.dtype != np.uint8:
        raise ImageError(f"not an image: numpy arrays must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    elif arr.ndim != 2:
        raise ImageError(f"not an image: expected H x W or H x W x 3, got shape {arr.shape}")
    h, w = arr.shape
    if min(h, w) < MIN_SIDE:
        raise ImageError(f"image too small: {w} x {h} px, need at least {MIN_SIDE} px a side")
    if max(h, w) > MAX_SIDE:
        raise ImageError(f"image too large: {w} x {h} px, at most {MAX_SIDE} px a side")
    return np.asarray(arr, dtype=np.float32) / np.float32(255.0)
