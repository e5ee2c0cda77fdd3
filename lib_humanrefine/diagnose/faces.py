"""Face signals from the 468-point face mesh: eye asymmetry, feature proportions, mesh fit, and
how stable the mesh is when the crop is perturbed."""

from __future__ import annotations

import math

import numpy as np

from ..detect.faces import face_mesh
from ..detect.geometry import Roi
from ..detect.types import Face
from .types import Signal, ramp

# Face-mesh indices: eye corners and lids, mouth corners.
RIGHT_EYE = {"outer": 33, "inner": 133, "upper": 159, "lower": 145}  # the person's right eye
LEFT_EYE = {"outer": 263, "inner": 362, "upper": 386, "lower": 374}
MOUTH = (61, 291)
OPENING_START, OPENING_FULL = 2.5, 5.0  # ratio of eye openings (winks are common: start high)
WIDTH_START, WIDTH_FULL = 2.0, 3.0  # ratio of eye widths (normal faces: p90 1.96)
MOUTH_NORM = 0.62  # mouth width / outer-eye-corner distance of a normal face
MOUTH_START, MOUTH_FULL = 1.6, 2.4
MIN_FACE_PX = 32.0
NOSE_TIP = 1
MAX_YAW = 0.3  # |difference / sum| of the nose-to-outer-eye-corner distances; beyond it, eyes look unequal anyway


def _eye(lm: np.ndarray, eye: dict) -> tuple[float, float]:
    width = float(np.linalg.norm(lm[eye["outer"], :2] - lm[eye["inner"], :2]))
    opening = float(np.linalg.norm(lm[eye["upper"], :2] - lm[eye["lower"], :2]))
    return width, opening


# Mesh re-runs on a rotated, an enlarged and a shifted crop: normal faces' mean landmark shift
# (development set) median 0.02, p90 0.05 of the face size; melted or smeared faces move more.
TTA_ROTATION = math.radians(-20)
TTA_SCALE = 1.2
TTA_SHIFT = 0.08
INSTABILITY_START, INSTABILITY_FULL = 0.05, 0.12


def _mesh_roi(face: Face) -> Roi:
    """The mesh crop rebuilt from the mesh itself: its box, eyes level, squared, × 1.5."""
    lm = face.landmarks
    x0, y0, x1, y1 = face.box
    dx, dy = lm[LEFT_EYE["outer"], :2] - lm[RIGHT_EYE["outer"], :2]
    side = 1.5 * max(x1 - x0, y1 - y0)
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, side, side, math.atan2(float(dy), float(dx)))


def instability_signal(image: np.ndarray, face: Face) -> Signal:
    """Mean landmark shift (fraction of the face size) over three perturbed mesh re-runs."""
    roi = _mesh_roi(face)
    variants = (
        Roi(roi.cx, roi.cy, roi.width, roi.height, roi.rotation + TTA_ROTATION),
        Roi(roi.cx, roi.cy, roi.width * TTA_SCALE, roi.height * TTA_SCALE, roi.rotation),
        roi.transformed(shift_x=TTA_SHIFT, shift_y=TTA_SHIFT, square_long=False),
    )
    x0, y0, x1, y1 = face.box
    size = max(x1 - x0, y1 - y0, 1.0)
    shifts = [
        float(np.linalg.norm(face_mesh(image, r)[0][:, :2] - face.landmarks[:, :2], axis=1).mean()) / size
        for r in variants
    ]
    value = float(np.mean(shifts))
    return Signal(
        "face_instability", round(value, 4), ramp(value, INSTABILITY_START, INSTABILITY_FULL),
        f"face landmarks shift {value * 100:.0f}% of face size when the crop is rotated, enlarged or shifted "
        "(smeared or melted features?)", "face",
    )  # fmt: skip


def face_signals(face: Face, image: np.ndarray | None = None) -> list[Signal]:
    """Every face signal; ``image`` enables the mesh re-run (instability) signal."""
    if face.landmarks is None:
        return [Signal("mesh_fit", face.mesh_score or 0.0, 0.3, "face mesh could not fit this face", "face")]
    lm = face.landmarks
    rw, ro = _eye(lm, RIGHT_EYE)
    lw, lo = _eye(lm, LEFT_EYE)
    out = []
    to_right = float(np.linalg.norm(lm[NOSE_TIP, :2] - lm[RIGHT_EYE["outer"], :2]))
    to_left = float(np.linalg.norm(lm[NOSE_TIP, :2] - lm[LEFT_EYE["outer"], :2]))
    yaw = abs(to_right - to_left) / max(to_right + to_left, 1e-6)
    if min(rw, lw) > 1 and yaw <= MAX_YAW:
        width_ratio = max(rw, lw) / min(rw, lw)
        out.append(Signal(
            "eye_width_asymmetry", round(width_ratio, 3), ramp(width_ratio, WIDTH_START, WIDTH_FULL),
            f"one eye {width_ratio:.1f}x wider than the other", "face",
        ))  # fmt: skip
        eps = 0.05 * min(rw, lw)  # closed eyes: compare against a small floor, not zero
        open_ratio = (max(ro, lo) + eps) / (min(ro, lo) + eps)
        out.append(Signal(
            "eye_opening_asymmetry", round(open_ratio, 3), ramp(open_ratio, OPENING_START, OPENING_FULL),
            f"one eye {open_ratio:.1f}x more open than the other", "face",
        ))  # fmt: skip
    eyes = float(np.linalg.norm(lm[RIGHT_EYE["outer"], :2] - lm[LEFT_EYE["outer"], :2]))
    if eyes > 1:
        mouth = float(np.linalg.norm(lm[MOUTH[0], :2] - lm[MOUTH[1], :2])) / eyes / MOUTH_NORM
        dev = max(mouth, 1 / max(mouth, 1e-6))
        out.append(Signal(
            "mouth_proportion", round(dev, 3), ramp(dev, MOUTH_START, MOUTH_FULL),
            f"mouth {mouth:.1f}x the normal width for the eye distance", "face",
        ))  # fmt: skip
    if image is not None:
        out.append(instability_signal(image, face))
    x0, y0, x1, y1 = face.box
    if max(x1 - x0, y1 - y0) < MIN_FACE_PX:
        for s in out:
            s.score *= max(x1 - x0, y1 - y0) / MIN_FACE_PX
    return out
