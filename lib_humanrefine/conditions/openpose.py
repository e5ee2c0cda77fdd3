"""OpenPose control images from MediaPipe detections, drawn in the convention ``control_v11p_sd15_openpose``
was trained on (the ControlNet 1.1 OpenPose annotator's preview):

* body: COCO-18 keypoints; 17 limbs as filled ellipses (half-width 4 px at 512) in the 18-colour palette,
  then the whole canvas is darkened to 60 %, then joints as filled circles (radius 4) in full colour;
* hands: 20 bones as 2 px lines coloured along the HSV hue wheel (bone i -> hue i/20), then the 21 keypoints
  as blue dots (radius 4). MediaPipe's 21 hand landmarks use the same order as OpenPose's.

The annotator draws at the detect resolution (short side 512) and the map is resized to the generation size, so
sizes here scale with ``min(width, height) / 512``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# COCO-18 keypoint order used by OpenPose ("r" = the person's own right) -> MediaPipe pose index (neck: derived)
COCO18 = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "r_hip", "r_knee",
    "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)  # fmt: skip
_FROM_MEDIAPIPE = (0, -1, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
_MP_SHOULDERS = (11, 12)

# The 17 limbs in drawing order (COCO-18 indices); limb i takes colour PALETTE[i], keypoint k takes PALETTE[k].
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
# RGB, hue steps of 30 degrees from red through green and blue to magenta
PALETTE = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
LIMB_DIM = 0.6  # limbs end up at 60 % of their palette colour

# Hand bones in drawing order: each finger from the wrist to the tip, thumb to pinky
HAND_BONES = tuple((0 if j == 0 else 4 * f + j, 4 * f + j + 1) for f in range(5) for j in range(4))
HAND_DOT = (0, 0, 255)

BASE = 512  # resolution the convention's sizes refer to
STICK, JOINT, HAND_LINE, HAND_RADIUS = 4.0, 4.0, 2.0, 4.0
_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT
_ELLIPSE_T = np.linspace(0.0, 2 * np.pi, 48, endpoint=False)


def hue_colour(hue: float) -> tuple[int, int, int]:
    """RGB (0-255) of a fully saturated, full-value colour at ``hue`` in [0, 1)."""
    h = (hue % 1.0) * 6.0
    sector, f = int(h), h - int(h)
    rgb = [(1, f, 0), (1 - f, 1, 0), (0, 1, f), (0, 1 - f, 1), (f, 0, 1), (1, 0, 1 - f)][sector]
    return tuple(int(np.rint(c * 255)) for c in rgb)


HAND_COLOURS = tuple(hue_colour(i / len(HAND_BONES)) for i in range(len(HAND_BONES)))


def mediapipe_to_coco18(landmarks: np.ndarray, visibility: np.ndarray, min_visibility: float = 0.5) -> np.ndarray:
    """(18, 2) COCO-18 keypoints (image pixels) from MediaPipe's 33 pose landmarks; NaN where not visible.
    The neck is the mid-shoulder point, present only when both shoulders are."""
    lm = np.asarray(landmarks, dtype=np.float64)[:, :2]
    seen = (np.asarray(visibility, dtype=np.float64) >= min_visibility) & np.isfinite(lm).all(axis=1)
    out = np.full((18, 2), np.nan)
    for k, m in enumerate(_FROM_MEDIAPIPE):
        if m >= 0 and seen[m]:
            out[k] = lm[m]
    if seen[list(_MP_SHOULDERS)].all():
        out[1] = lm[list(_MP_SHOULDERS)].mean(axis=0)
    return out


def _fixed(points: np.ndarray) -> np.ndarray:
    """Float pixel coordinates -> OpenCV fixed-point int32 (clamped far outside any canvas)."""
    return np.rint(np.clip(points, -1e5, 1e5) * _ONE).astype(np.int32)


def _limb(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, half_width: float, colour) -> None:
    """Filled ellipse spanning a-b (the OpenPose 'stick')."""
    d = b - a
    length = float(np.hypot(*d))
    u = d / length if length > 0 else np.array([1.0, 0.0])
    v = np.array([-u[1], u[0]])
    pts = (a + b) / 2 + np.outer(np.cos(_ELLIPSE_T) * length / 2, u) + np.outer(np.sin(_ELLIPSE_T) * half_width, v)
    cv2.fillConvexPoly(canvas, _fixed(pts), colour, cv2.LINE_8, _SHIFT)


def _dot(canvas: np.ndarray, p: np.ndarray, radius: float, colour) -> None:
    cx, cy = _fixed(p)
    cv2.circle(canvas, (int(cx), int(cy)), round(radius * _ONE), colour, -1, cv2.LINE_8, _SHIFT)


def render_openpose(
    people: Sequence[tuple[np.ndarray, np.ndarray]],
    hands: Sequence[tuple[np.ndarray, str]],
    box: tuple[float, float, float, float],
    size: tuple[int, int],
    *,
    min_visibility: float = 0.5,
) -> np.ndarray:
    """OpenPose control image (H x W x 3 uint8 RGB, black background) of the image region ``box`` = (x0, y0,
    x1, y1) mapped onto ``size`` = (width, height). ``people``: (33 x 3 MediaPipe landmarks in image pixels,
    (33,) visibility) each; ``hands``: (21 x 3 landmarks in image pixels, side) each. Only keypoints with
    visibility >= ``min_visibility`` (and limbs with both ends) are drawn; hand points only need to be finite."""
    width, height = int(size[0]), int(size[1])
    x0, y0, x1, y1 = (float(v) for v in box)
    if width <= 0 or height <= 0 or x1 <= x0 or y1 <= y0:
        raise ValueError(f"bad box {box} or size {size}")
    origin = np.array([x0, y0])
    scale_xy = np.array([width / (x1 - x0), height / (y1 - y0)])
    s = min(width, height) / BASE
    canvas = np.zeros((height, width, 3), np.uint8)

    bodies = [(mediapipe_to_coco18(lm, vis, min_visibility) - origin) * scale_xy for lm, vis in people]
    for i, (a, b) in enumerate(LIMBS):  # limb by limb across people, as the annotator does
        for pts in bodies:
            if np.isfinite(pts[[a, b]]).all():
                _limb(canvas, pts[a], pts[b], max(STICK * s, 1.0), PALETTE[i])
    if bodies:
        canvas = (canvas * LIMB_DIM).astype(np.uint8)
        for k in range(18):
            for pts in bodies:
                if np.isfinite(pts[k]).all():
                    _dot(canvas, pts[k], max(JOINT * s, 1.0), PALETTE[k])

    thickness = max(round(HAND_LINE * s), 1)
    for landmarks, _side in hands:  # both hands share one convention; the side is not drawn
        pts = (np.asarray(landmarks, dtype=np.float64)[:, :2] - origin) * scale_xy
        ok = np.isfinite(pts).all(axis=1)
        for i, (a, b) in enumerate(HAND_BONES):
            if ok[a] and ok[b]:
                pa, pb = _fixed(pts[[a, b]])
                cv2.line(canvas, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), HAND_COLOURS[i], thickness,
                         cv2.LINE_8, _SHIFT)  # fmt: skip
        for p in pts[ok]:
            _dot(canvas, p, max(HAND_RADIUS * s, 1.0), HAND_DOT)
    return canvas
