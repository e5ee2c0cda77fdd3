"""Records produced by detection. Coordinates are image pixels (x right, y down); ``z`` columns
follow MediaPipe: relative depth on the same scale as x, smaller = nearer the camera."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1

# MediaPipe hand landmark indices
WRIST = 0
FINGERS = {  # name -> landmark indices from the knuckle (MCP/CMC) to the tip
    "thumb": (1, 2, 3, 4),
    "index": (5, 6, 7, 8),
    "middle": (9, 10, 11, 12),
    "ring": (13, 14, 15, 16),
    "pinky": (17, 18, 19, 20),
}
HAND_CONNECTIONS = [(0, 1), (0, 5), (0, 17), (5, 9), (9, 13), (13, 17)] + [
    (a, b) for idx in FINGERS.values() for a, b in pairwise(idx)
]

# MediaPipe pose landmark indices (33 landmarks)
POSE = {
    "nose": 0, "left_eye": 2, "right_eye": 5, "left_ear": 7, "right_ear": 8,
    "left_shoulder": 11, "right_shoulder": 12, "left_elbow": 13, "right_elbow": 14,
    "left_wrist": 15, "right_wrist": 16, "left_pinky": 17, "right_pinky": 18,
    "left_index": 19, "right_index": 20, "left_thumb": 21, "right_thumb": 22,
    "left_hip": 23, "right_hip": 24, "left_knee": 25, "right_knee": 26,
    "left_ankle": 27, "right_ankle": 28, "left_heel": 29, "right_heel": 30,
    "left_foot_index": 31, "right_foot_index": 32,
}  # fmt: skip
POSE_CONNECTIONS = [
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24),
    (23, 25), (25, 27), (24, 26), (26, 28), (27, 29), (29, 31), (27, 31), (28, 30), (30, 32),
    (28, 32), (15, 17), (15, 19), (15, 21), (17, 19), (16, 18), (16, 20), (16, 22), (18, 20),
    (0, 2), (0, 5), (2, 7), (5, 8),
]  # fmt: skip


def box_of(points: np.ndarray) -> Box:
    pts = np.asarray(points)[:, :2]
    return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


@dataclass
class Hand:
    landmarks: np.ndarray  # (21, 3) image pixels (+ relative z)
    world: np.ndarray | None  # (21, 3) metres, hand-centred (MediaPipe world landmarks)
    side: str  # "left" | "right": the person's own hand, as seen in the (unmirrored) image
    side_score: float  # confidence of ``side`` in [0.5, 1]
    presence: float  # hand-presence score of the landmark model
    palm_score: float | None  # palm detector score (None for hands proposed from pose only)
    source: str  # "palm" | "pose" | "palm+pose"
    roi: tuple[float, float, float, float, float]  # cx, cy, w, h, rotation of the crop used
    person: int | None = None  # index into Detections.people, None = not linked
    extra: dict = field(default_factory=dict)  # per-hand diagnostics (TTA spreads etc.)

    @property
    def box(self) -> Box:
        return box_of(self.landmarks)

    @property
    def size(self) -> float:
        """A hand-size scale in pixels: wrist to middle-finger knuckle plus the palm width."""
        lm = self.landmarks[:, :2]
        return float(np.linalg.norm(lm[0] - lm[9]) + np.linalg.norm(lm[5] - lm[17]))


@dataclass
class Person:
    landmarks: np.ndarray  # (33, 3) image pixels (+ relative z)
    visibility: np.ndarray  # (33,) in [0, 1]
    presence: np.ndarray  # (33,) in [0, 1]
    world: np.ndarray | None  # (33, 3) metres, hip-centred
    score: float  # pose detector score
    flag: float  # pose landmark model's person-present score
    roi: tuple[float, float, float, float, float]

    @property
    def box(self) -> Box:
        visible = self.visibility > 0.5
        pts = self.landmarks[visible] if visible.sum() >= 2 else self.landmarks
        return box_of(pts)

    @property
    def torso_size(self) -> float:
        """Shoulder-to-hip scale in pixels (mean of both sides)."""
        lm = self.landmarks[:, :2]
        left = np.linalg.norm(lm[11] - lm[23])
        right = np.linalg.norm(lm[12] - lm[24])
        return float((left + right) / 2)


@dataclass
class Face:
    box_xyxy: Box  # detector box
    score: float  # face detector score
    keypoints: np.ndarray  # (6, 2) detector keypoints: right eye, left eye, nose, mouth, right ear, left ear
    landmarks: np.ndarray | None  # (468, 3) face mesh, None if the mesh model rejected the crop
    mesh_score: float | None  # face-mesh presence score
    person: int | None = None

    @property
    def box(self) -> Box:
        if self.landmarks is not None:
            return box_of(self.landmarks)
        return self.box_xyxy


@dataclass
class Detections:
    width: int
    height: int
    people: list[Person] = field(default_factory=list)
    hands: list[Hand] = field(default_factory=list)
    faces: list[Face] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
