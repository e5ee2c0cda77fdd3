"""Reference image for reference attention: the original part with its background removed, so
the model copies the part's own skin tone, clothing and lighting (RealisHuman's appearance
reference) rather than whatever surrounds it."""

from __future__ import annotations

import cv2
import numpy as np

from .crop import CropBox, crop_image


def reference_image(
    image: np.ndarray, mask: np.ndarray, crop: CropBox, size: tuple[int, int], background: int = 0
) -> np.ndarray:
    """The ``crop`` of ``image`` resized to ``size`` (w, h), pixels outside the full-image ``mask``
    set to ``background``."""
    part = crop_image(image, crop, size)
    keep = crop_image(mask, crop, size, interpolation=cv2.INTER_NEAREST) > 0
    out = np.full_like(part, background)
    out[keep] = part[keep]
    return out
