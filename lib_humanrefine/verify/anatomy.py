"""Is the part still there, on the skeleton the controls asked for?

The part is looked for again in the very crop its detector found it in (``Step.roi``), as
MediaPipe tracks a hand or face from one video frame to the next: the landmark model runs on that
crop of the candidate and says whether the part is present and where its keypoints are. Because
the crop is the detection's own, an unchanged part comes back with the same numbers (development
images: hands within 0.05 part sizes of their first skeleton, faces within 0.003), so what moves
is what the candidate changed. Re-running the detectors on a window instead — the judge before
this — lost one unchanged hand in ten to the palm detector's threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..detect import faces, hands, pose
from ..detect.geometry import Roi
from ..plan import Step


@dataclass
class Found:
    """What the landmark model sees in the part's crop of one image."""

    presence: float  # the model's probability that the part is there (hands, faces) or its pose flag
    skeleton_error: float | None  # mean keypoint distance to the intended skeleton / the part's size
    side: str | None = None  # hands: the hand the model sees ("left" / "right")
    side_score: float | None = None  # its confidence in [0.5, 1]

    def describe(self) -> dict:
        out = {"presence": round(self.presence, 3)}
        if self.skeleton_error is not None:
            out["skeleton_error"] = round(self.skeleton_error, 3)
        if self.side is not None:
            out["side"], out["side_score"] = self.side, round(self.side_score or 0.0, 3)
        return out


def skeleton_error(found: np.ndarray, intended: np.ndarray | None, size: float) -> float | None:
    """Mean distance between corresponding keypoints (NaN rows skipped) divided by ``size``."""
    if intended is None or size <= 0 or found.shape[0] != intended.shape[0]:
        return None
    both = np.isfinite(found).all(axis=1) & np.isfinite(intended).all(axis=1)
    if both.sum() < 3:
        return None
    return float(np.linalg.norm(found[both] - intended[both], axis=1).mean() / size)


def refind(image: np.ndarray, step: Step) -> Found | None:
    """The step's part looked for again in ``image``; None when the step has no crop to look in
    (a region the user drew)."""
    if step.roi is None:
        return None
    roi = Roi(*step.roi)
    if step.kind == "hand":
        hand = hands.landmarks_in_roi(image, roi)
        if hand is None:
            return Found(0.0, None)
        error = skeleton_error(hand.landmarks[:, :2], step.keypoints, step.part_size)
        return Found(hand.presence, error, hand.side, hand.side_score)
    if step.kind == "face":
        landmarks, presence = faces.face_mesh(image, roi)
        return Found(float(presence), skeleton_error(landmarks[:, :2], step.keypoints, step.part_size))
    person = pose.landmarks_in_roi(image, roi)
    if person is None:
        return Found(0.0, None)
    points = np.where((person.visibility >= 0.5)[:, None], person.landmarks[:, :2], np.nan)
    return Found(person.flag, skeleton_error(points, step.keypoints, step.part_size))
