"""Masks for the inpaint steps: a part's region from its landmarks, RealisHuman's repaint ring,
and the feathered alpha used to composite a result back. Masks are uint8 (0 or 255); alphas
float32 in [0, 1]. All use OpenCV; each function is pure."""

from __future__ import annotations

import cv2
import numpy as np


def _disk(radius: int) -> np.ndarray:
    size = 2 * max(int(radius), 0) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    return cv2.dilate(mask, _disk(round(radius))) if radius >= 1 else mask.copy()


def erode(mask: np.ndarray, radius: float) -> np.ndarray:
    return cv2.erode(mask, _disk(round(radius))) if radius >= 1 else mask.copy()


def hull_mask(points: np.ndarray, shape: tuple[int, int], grow: float = 0.0) -> np.ndarray:
    """Convex hull of 2D points (image pixels) filled, then dilated by ``grow`` pixels."""
    mask = np.zeros(shape[:2], np.uint8)
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        return mask
    hull = cv2.convexHull(np.round(pts).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_8)
    return dilate(mask, grow)


def limb_mask(chain: np.ndarray, shape: tuple[int, int], width: float) -> np.ndarray:
    """A thick polyline through joints (e.g. shoulder, elbow, wrist): the region a limb occupies."""
    mask = np.zeros(shape[:2], np.uint8)
    pts = np.asarray(chain, dtype=np.float64)[:, :2]
    pts = np.round(pts[np.isfinite(pts).all(axis=1)]).astype(np.int32)
    if len(pts) == 1:
        cv2.circle(mask, tuple(int(v) for v in pts[0]), max(1, round(width / 2)), 255, -1)
    elif len(pts) > 1:
        cv2.polylines(mask, [pts.reshape(-1, 1, 2)], False, 255, thickness=max(1, round(width)))
        for p in pts:  # round joints
            cv2.circle(mask, (int(p[0]), int(p[1])), max(1, round(width / 2)), 255, -1)
    return mask


def ring(mask: np.ndarray, grow: float, shrink: float) -> np.ndarray:
    """RealisHuman's second-stage region: dilate(mask, grow) minus erode(mask, shrink) — the seam
    around a repainted part, repainted again so the new part blends into its surroundings."""
    return cv2.subtract(dilate(mask, grow), erode(mask, shrink))


def feather(mask: np.ndarray, radius: float) -> np.ndarray:
    """A soft alpha that is 1 in the mask's core and falls to 0 at its edge. Its support never
    leaves the mask, so compositing with it changes no pixel outside the mask."""
    binary = (mask > 0).astype(np.float32)
    if radius < 1:
        return binary
    core = erode(mask, radius / 2).astype(np.float32) / 255.0
    k = 2 * round(radius) + 1
    soft = cv2.GaussianBlur(core, (k, k), 0)
    return np.clip(soft, 0.0, 1.0) * binary


def composite(original: np.ndarray, new: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Blend ``new`` over ``original`` by ``alpha``; where alpha is 0 the original's exact bytes."""
    a = alpha[..., None].astype(np.float32)
    blended = np.clip(np.round(original.astype(np.float32) * (1 - a) + new.astype(np.float32) * a), 0, 255)
    return np.where(a > 0, blended.astype(np.uint8), original)


def bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the non-zero pixels, exclusive end; None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
