"""Crop geometry: a part's region grown by context, shaped to the generation size (the model's
native size, sides multiple of 8, aspect kept), and images cut to it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..hosts.families import NATIVE  # model family -> native size (512 for SD 1.5, 1024 for SDXL...)

__all__ = ["NATIVE", "CropBox", "context_crop", "crop_image", "generation_size"]


@dataclass(frozen=True)
class CropBox:
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]


def generation_size(width: float, height: float, native: int) -> tuple[int, int]:
    """(w, h) with the longer side at ``native``, both multiples of 8, aspect kept."""
    scale = native / max(width, height)
    w = max(8, round(width * scale / 8) * 8)
    h = max(8, round(height * scale / 8) * 8)
    return int(w), int(h)


def context_crop(
    region: tuple[float, float, float, float], image_shape: tuple[int, ...], context: float, native: int
) -> tuple[CropBox, tuple[int, int]]:
    """Grow ``region`` by ``context`` × its size on each side (at least 16 px), clamp to the image,
    then widen the short side (inside the image where possible) so the crop has exactly the
    generation size's aspect. Returns the crop and that generation size (w, h)."""
    ih, iw = image_shape[:2]
    x0, y0, x1, y1 = region
    pad = max(16.0, context * max(x1 - x0, y1 - y0))
    x0, y0, x1, y1 = max(0.0, x0 - pad), max(0.0, y0 - pad), min(float(iw), x1 + pad), min(float(ih), y1 + pad)
    size = generation_size(x1 - x0, y1 - y0, native)
    aspect = size[0] / size[1]
    w, h = x1 - x0, y1 - y0
    if w / h < aspect:  # too narrow: widen
        w = min(float(iw), h * aspect)
    else:
        h = min(float(ih), w / aspect)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    nx0 = min(max(0.0, cx - w / 2), iw - w)
    ny0 = min(max(0.0, cy - h / 2), ih - h)
    box = CropBox(math.floor(nx0), math.floor(ny0), math.ceil(nx0 + w), math.ceil(ny0 + h))
    return box, generation_size(box.width, box.height, native)


def crop_image(
    image: np.ndarray, crop: CropBox, size: tuple[int, int] | None = None, interpolation: int | None = None
) -> np.ndarray:
    """Cut ``crop`` out of ``image`` and resize it to ``size`` (w, h) when given."""
    part = image[crop.y0 : crop.y1, crop.x0 : crop.x1]
    if size is None or (part.shape[1], part.shape[0]) == tuple(size):
        return part.copy()
    if interpolation is None:
        interpolation = cv2.INTER_AREA if size[0] < part.shape[1] else cv2.INTER_CUBIC
    return cv2.resize(part, tuple(size), interpolation=interpolation)
