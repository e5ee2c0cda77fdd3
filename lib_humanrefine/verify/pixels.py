"""Does the repainted region still belong to its picture? Three numbers from the pixels alone,
each comparing the candidate with the original where the step may write (its mask and seam ring);
pixels outside are never written, so a change there is the seam's own.

- colour: CIELAB ΔE of the mean colour change over the seam ring — a cast or a light/dark patch
  shows as a shift that the surroundings do not have.
- seam: the mean size of the low-frequency change over the seam ring (ΔE after a blur about a
  tenth of the part wide): content that no longer continues its surroundings — a shifted,
  mirrored or pasted patch, noise — changes the ring's coarse picture, where a fix that blends in
  (RealisHuman's second pass repaints exactly this ring) keeps it.
- detail: fine detail (mean |Laplacian| of lightness) inside the part's core against the
  original's — a blurred or smeared part loses most of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..conditions import masks
from ..plan import Step

CORE_INSET = 0.1  # the core: the mask shrunk by this many part sizes
SEAM_BLUR = 0.06  # the low-pass for the seam number: a Gaussian this many part sizes wide (sigma)
# Everything is measured with the part at most this many pixels across: the numbers describe the
# part, not the picture's resolution, and a large face costs no more than a small one.
WORK_SIZE = 96


@dataclass
class PixelChange:
    colour: float  # ΔE of the mean Lab change over the seam ring
    seam: float  # mean ΔE of the low-passed change over the seam ring
    detail: float  # the core's fine detail, candidate / original (1 = as sharp)

    def describe(self) -> dict:
        return {"colour": round(self.colour, 2), "seam": round(self.seam, 2), "detail": round(self.detail, 3)}


def lab(image: np.ndarray) -> np.ndarray:
    """CIELAB (L 0-100, a and b about -128-127) of an RGB uint8 image, as float32."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def _window(step: Step, shape) -> tuple[int, int, int, int]:
    """The changed region's box grown by a quarter of its size (room for the blur), inside the image."""
    x0, y0, x1, y1 = step.box
    pad = 0.25 * max(x1 - x0, y1 - y0, 1)
    h, w = shape[:2]
    return max(0, int(x0 - pad)), max(0, int(y0 - pad)), min(w, int(np.ceil(x1 + pad))), min(h, int(np.ceil(y1 + pad)))


def _fine_detail(lightness: np.ndarray, where: np.ndarray) -> float:
    laplacian = cv2.Laplacian(cv2.GaussianBlur(lightness, (0, 0), 0.7), cv2.CV_32F)
    return float(np.abs(laplacian[where]).mean())


def pixel_change(original: np.ndarray, candidate: np.ndarray, step: Step) -> PixelChange:
    x0, y0, x1, y1 = _window(step, original.shape)
    scale = min(1.0, WORK_SIZE / max(step.part_size, 1.0))
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))

    def small(image: np.ndarray, interpolation=cv2.INTER_AREA) -> np.ndarray:
        view = image[y0:y1, x0:x1]
        return view if scale == 1.0 else cv2.resize(view, size, interpolation=interpolation)

    before, after = lab(small(original)), lab(small(candidate))
    change = after - before
    mask = small(step.mask, cv2.INTER_NEAREST)
    ring = small(step.ring, cv2.INTER_NEAREST) > 0
    if not ring.any():  # a region too thin for a ring: its whole mask is the seam
        ring = mask > 0
    if not ring.any():
        return PixelChange(0.0, 0.0, 1.0)
    part = step.part_size * scale
    colour = float(np.linalg.norm(change[ring].mean(axis=0)))
    coarse = cv2.GaussianBlur(change, (0, 0), max(1.0, SEAM_BLUR * part))
    seam = float(np.linalg.norm(coarse[ring], axis=1).mean())
    core = masks.erode(mask, max(1.0, CORE_INSET * part)) > 0
    if not core.any():
        core = mask > 0
    detail = 1.0
    if core.any():
        detail = _fine_detail(after[..., 0], core) / max(_fine_detail(before[..., 0], core), 1e-3)
    return PixelChange(colour, seam, detail)
