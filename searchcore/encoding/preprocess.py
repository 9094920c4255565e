"""Pixels to model input, driven only by a manifest's Preprocessing."""
from __future__ import annotations

import numpy as np
from PIL import Image

from .manifest import Preprocessing

RESAMPLING = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
              "nearest": Image.Resampling.NEAREST}


def resize_key(prep: Preprocessing) -> tuple[tuple[int, int], str]:
    """Models with the same key can share one resized copy of an image."""
    return prep.size, prep.resize


def resize(image: Image.Image, key: tuple[tuple[int, int], str]) -> np.ndarray:
    """The whole image resized to (width, height) as an HxWx3 uint8 array."""
    size, method = key
    return np.asarray(image.resize(size, RESAMPLING[method]), dtype=np.uint8)


def to_input(pixels: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """A batch of NxHxWx3 uint8 RGB pixels to the float32 tensor the model expects. A scale or std of 1 is
    skipped, not applied (the same values: multiplying or dividing by 1 is exact), and the mean is taken
    off in place: this runs on every image indexed, beside the models."""
    x = (pixels[..., ::-1] if prep.channel_order == "BGR" else pixels).astype(np.float32)
    if prep.scale != 1:
        x *= np.float32(prep.scale)
    x -= np.asarray(prep.mean, np.float32)
    if any(s != 1 for s in prep.std):
        x /= np.asarray(prep.std, np.float32)
    if prep.layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)
