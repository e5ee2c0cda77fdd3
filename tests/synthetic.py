"""Hand-built skeletons with known anatomy, for testing the diagnosis signals exactly."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from lib_humanrefine.detect.types import FINGERS, POSE, Face, Hand, Person
from lib_humanrefine.diagnose.hands import BONE_NORMS

KNUCKLES = {"thumb": (-0.35, -0.35), "index": (-0.25, -0.95), "middle": (0.0, -1.0), "ring": (0.22, -0.95),
            "pinky": (0.42, -0.85)}  # fmt: skip


def normal_hand(scale: float = 100.0, origin=(300.0, 400.0)) -> Hand:
    """A flat right hand, fingers straight up, every bone at its normal ratio (palm length 1)."""
    world = np.zeros((21, 3))
    for finger, idx in FINGERS.items():
        x, y = KNUCKLES[finger]
        world[idx[0]] = (x, y, 0)
        for k, (a, b) in enumerate(pairwise(idx)):
            world[b] = world[a] + (0, -BONE_NORMS[finger][k], 0)
    image = world.copy()
    image[:, :2] = world[:, :2] * scale + origin
    image[:, 2] *= scale
    return Hand(landmarks=image, world=world, side="right", side_score=0.99, presence=0.99, palm_score=0.9,
                source="palm", roi=(origin[0], origin[1] - scale, 3 * scale, 3 * scale, 0.0))  # fmt: skip


def stretch_bone(hand: Hand, finger: str, bone: int, factor: float) -> Hand:
    """Lengthen one bone; the rest of the finger moves with it."""
    idx = FINGERS[finger]
    a, b = idx[bone], idx[bone + 1]
    for pts in (hand.world, hand.landmarks):
        delta = (pts[b] - pts[a]) * (factor - 1)
        for j in idx[bone + 1 :]:
            pts[j] = pts[j] + delta
    return hand


def person(centre_x: float = 500.0, scale: float = 100.0, visibility: float = 0.99) -> Person:
    """A symmetric standing person (world coords in metres ≈ landmark units / scale)."""
    pts = np.zeros((33, 3))
    layout = {
        "nose": (0, -1.6), "left_eye": (0.05, -1.65), "right_eye": (-0.05, -1.65),
        "left_shoulder": (0.2, -1.4), "right_shoulder": (-0.2, -1.4),
        "left_elbow": (0.25, -1.1), "right_elbow": (-0.25, -1.1),
        "left_wrist": (0.27, -0.85), "right_wrist": (-0.27, -0.85),
        "left_hip": (0.12, -0.9), "right_hip": (-0.12, -0.9),
        "left_knee": (0.13, -0.45), "right_knee": (-0.13, -0.45),
        "left_ankle": (0.13, 0.0), "right_ankle": (-0.13, 0.0),
    }  # fmt: skip
    for name, (x, y) in layout.items():
        pts[POSE[name]] = (x, y, 0)
    image = pts.copy()
    image[:, 0] = pts[:, 0] * scale * 3 + centre_x
    image[:, 1] = pts[:, 1] * scale * 3 + 800
    vis = np.full(33, visibility)
    return Person(landmarks=image, visibility=vis, presence=vis.copy(), world=pts, score=0.9, flag=0.99,
                  roi=(centre_x, 500, 600, 600, 0.0))  # fmt: skip


def face_with_eyes(right_eye_width=30.0, left_eye_width=30.0, nose_x=0.0) -> Face:
    lm = np.zeros((468, 3))
    cx, cy = 200.0, 200.0
    lm[33] = (cx - 20 - right_eye_width, cy, 0)
    lm[133] = (cx - 20, cy, 0)
    lm[159] = (cx - 20 - right_eye_width / 2, cy - 6, 0)
    lm[145] = (cx - 20 - right_eye_width / 2, cy + 6, 0)
    lm[362] = (cx + 20, cy, 0)
    lm[263] = (cx + 20 + left_eye_width, cy, 0)
    lm[386] = (cx + 20 + left_eye_width / 2, cy - 6, 0)
    lm[374] = (cx + 20 + left_eye_width / 2, cy + 6, 0)
    lm[1] = (cx + nose_x, cy + 40, 0)
    lm[61] = (cx - 30, cy + 70, 0)
    lm[291] = (cx + 30, cy + 70, 0)
    lm[10] = (cx, cy - 80, 0)
    lm[152] = (cx, cy + 120, 0)
    return Face(box_xyxy=(100, 100, 300, 330), score=0.9, keypoints=np.zeros((6, 2)), landmarks=lm, mesh_score=0.99)
