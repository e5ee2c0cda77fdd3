"""MediaPipe's hand pipeline on LiteRT: palm detection, hand ROIs (from palms or from pose wrists)
and 21-point hand landmarks in image pixels.

The constants follow MediaPipe's graphs (palm_detection_cpu, palm_detection_detection_to_roi,
hand_landmark_cpu, hand_landmark_landmarks_to_roi); the pose-wrist ROI is our own, fitted so that
it matches the landmark-based ROI the hand model expects (see ``roi_from_pose``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from . import runtime
from .geometry import (
    Roi,
    crop_roi,
    decode_ssd,
    iou,
    letterbox_warp,
    project,
    rotation_from_points,
    ssd_anchors,
    weighted_nms,
)
from .types import POSE, Hand, Person

PALM_MODEL = "palm_detection_full.tflite"
LANDMARK_MODELS = {"full": "hand_landmark_full.tflite", "lite": "hand_landmark_lite.tflite"}

PALM_SIZE = 192
PALM_STRIDES = [8, 16, 16, 16]  # 24² + 12² cells, 2 anchors each: 2016 anchors
PALM_KEYPOINTS = 7  # 0 wrist, 2 middle-finger knuckle (the rotation axis)
PALM_MIN_SCORE = 0.5
PALM_NMS_IOU = 0.3
PALM_ZOOM_OUTS = (1.0, 2.0)  # a second pass with the image at half size finds hands filling a close-up
VALUE_RANGE = (0.0, 1.0)  # both hand models take RGB in [0, 1]
Z_NORMALIZE = 0.4  # hand_landmark_cpu divides the model's z by this (checked against MediaPipe's output)

# Landmarks that hand_landmark_landmarks_to_roi boxes (wrist, thumb base, finger MCP/PIP joints).
ROI_SUBSET = [0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18]

# Pose→hand ROI (ours; Holistic refines its pose ROI with an extra model we do not have). Fitted
# on the development images against MediaPipe's hands: centre this many hand lengths along
# wrist→knuckles, side this many hand lengths (median landmark error 1.5 % of the hand box
# diagonal after the re-crop; 39/39 hands present).
POSE_ROI_CENTRE = 1.1
POSE_ROI_SIZE = 4.0
# A palm-detected hand whose wrist lies within this fraction of its size of a pose wrist is the
# same hand: the pose ROI is then not run.
POSE_WRIST_MATCH = 0.35
# Pose ROIs are re-cropped from their first landmarks (like MediaPipe's tracking) unless the
# first pass saw no hand at all.
RECROP_MIN_PRESENCE = 0.05

_anchors = ssd_anchors(PALM_SIZE, PALM_STRIDES)


def detect_palms(
    image: np.ndarray, min_score: float = PALM_MIN_SCORE, zoom_out: float = 1.0
) -> list[tuple[float, Roi]]:
    """Palm detections on the whole RGB image as (score, hand ROI), best first. ``zoom_out`` 2
    looks at the image shrunk into a double-size black frame: the palm detector misses hands
    that fill much of a close-up (3 of the 18 malformed-hand images) and finds them that way."""
    model = runtime.load(PALM_MODEL)
    # MediaPipe's exact sampling: area-averaged resizing shifts palm scores enough to lose or add hands.
    tensor, lb = letterbox_warp(image, PALM_SIZE, VALUE_RANGE, zoom_out)
    raw_boxes, raw_scores = model.run(tensor)
    raw = decode_ssd(raw_boxes, raw_scores, _anchors, PALM_SIZE, PALM_KEYPOINTS, min_score)
    dets = weighted_nms(raw, PALM_NMS_IOU)
    out = []
    for det in dets:
        corners = lb.to_image(det.box.reshape(2, 2))
        kps = lb.to_image(det.keypoints)
        out.append((det.score, palm_roi(corners.reshape(-1), kps)))
    return out


def palm_roi(box: np.ndarray, keypoints: np.ndarray) -> Roi:
    """palm_detection_detection_to_roi: palm box (x0, y0, x1, y1) + keypoints (image pixels) -> hand ROI."""
    x0, y0, x1, y1 = (float(v) for v in box)
    rotation = rotation_from_points(keypoints[0], keypoints[2], 90.0)
    palm = Roi((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, rotation)
    return palm.transformed(scale_x=2.6, scale_y=2.6, shift_y=-0.5, square_long=True)


def roi_from_landmarks(landmarks: np.ndarray) -> Roi:
    """hand_landmark_landmarks_to_roi: the crop MediaPipe tracks a hand with, from its 21 landmarks."""
    lm = np.asarray(landmarks, dtype=np.float64)[:, :2]
    # Axis: wrist -> the middle knuckle averaged with the index/ring knuckles.
    knuckles = ((lm[5] + lm[13]) / 2 + lm[9]) / 2
    rotation = rotation_from_points(lm[0], knuckles, 90.0)
    pts = lm[ROI_SUBSET]
    mid = (pts.min(axis=0) + pts.max(axis=0)) / 2
    # Bounding box of the subset in the ROI's own (rotated) frame.
    c, s = math.cos(rotation), math.sin(rotation)
    to_roi = np.array([[c, s], [-s, c]])  # rotates by -rotation
    local = (pts - mid) @ to_roi.T
    lo, hi = local.min(axis=0), local.max(axis=0)
    centre = (lo + hi) / 2 @ to_roi + mid  # back to image axes
    roi = Roi(float(centre[0]), float(centre[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]), rotation)
    return roi.transformed(scale_x=2.0, scale_y=2.0, shift_y=-0.1, square_long=True)


def roi_from_pose(
    person_landmarks: np.ndarray, visibility: np.ndarray, side: str, min_visibility: float = 0.5
) -> Roi | None:
    """A hand ROI from a pose's wrist, pinky, index and thumb landmarks (``side``: the person's own
    "left" or "right"), or None when the wrist or both finger points are not visible.

    As in MediaPipe Holistic the axis runs from the wrist to the middle of the pose's index and
    pinky points. The hand length is the longest of that axis, the index-pinky span and the
    wrist-thumb distance, so a foreshortened or edge-on hand still gets a full-size crop.
    """
    lm = np.asarray(person_landmarks, dtype=np.float64)[:, :2]
    vis = np.asarray(visibility, dtype=np.float64)
    wrist, pinky, index, thumb = (lm[POSE[f"{side}_{name}"]] for name in ("wrist", "pinky", "index", "thumb"))
    seen = [vis[POSE[f"{side}_{name}"]] >= min_visibility for name in ("wrist", "pinky", "index")]
    if not (seen[0] and (seen[1] or seen[2])):
        return None
    knuckles = (index + pinky) / 2
    axis = knuckles - wrist
    axis_length = float(np.linalg.norm(axis))
    length = max(axis_length, float(np.linalg.norm(index - pinky)), float(np.linalg.norm(thumb - wrist)))
    if not length >= 1.0:  # also rejects NaN
        return None
    direction = axis / axis_length if axis_length > 1e-6 else np.array([0.0, -1.0])
    centre = wrist + direction * (POSE_ROI_CENTRE * length)
    rotation = rotation_from_points(wrist, wrist + direction, 90.0)
    side_px = POSE_ROI_SIZE * length
    return Roi(float(centre[0]), float(centre[1]), side_px, side_px, rotation)


def landmarks_in_roi(
    image: np.ndarray, roi: Roi, model: str = "full", source: str = "roi", mirror: bool = False
) -> Hand | None:
    """Run the hand landmark model on one rotated crop; None for a degenerate ROI.

    The result is not thresholded: check ``presence`` (the model's hand-presence probability).
    ``mirror`` feeds the model the left-right mirrored crop and maps its answer back, so the
    result describes the same hand (a stability check: a real hand gives the same skeleton).
    """
    if not (roi.width >= 2 and roi.height >= 2 and math.isfinite(roi.cx) and math.isfinite(roi.cy)):
        return None
    net = runtime.load(LANDMARK_MODELS[model])
    tensor, crop_to_image = crop_roi(image, roi, net.input_size, VALUE_RANGE, border=cv2.BORDER_REPLICATE)
    if mirror:
        tensor = np.ascontiguousarray(tensor[:, :, ::-1])
    screen, presence, handedness, world = net.run(tensor)  # presence/handedness are probabilities
    screen = screen.reshape(21, 3)
    world = world.reshape(21, 3).astype(np.float32)
    if mirror:
        screen[:, 0] = net.input_size[1] - screen[:, 0]
        world[:, 0] = -world[:, 0]
        handedness = 1.0 - handedness
    screen[:, 2] /= Z_NORMALIZE  # MediaPipe's normalize_z for this model
    landmarks = project(screen, crop_to_image)
    # World landmarks are in the crop's frame; rotate them like the crop (WorldLandmarkProjection).
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    world[:, :2] = world[:, :2] @ np.array([[c, s], [-s, c]], dtype=np.float32)
    # The model scores MediaPipe's label "Left", which assumes a mirrored (selfie) image: in an
    # ordinary photo that is the person's own right hand (checked on real photos).
    p_right = float(handedness.reshape(-1)[0])
    side = "right" if p_right >= 0.5 else "left"
    return Hand(
        landmarks=landmarks,
        world=world,
        side=side,
        side_score=max(p_right, 1.0 - p_right),
        presence=float(presence.reshape(-1)[0]),
        palm_score=None,
        source=source,
        roi=(roi.cx, roi.cy, roi.width, roi.height, roi.rotation),
    )


def same_hand(a: Hand, b: Hand, max_distance: float = 0.25) -> bool:
    """Whether two detections are one hand: mean landmark distance under ``max_distance`` of the
    hand size, or landmark boxes overlapping with IoU > 0.5."""
    size = max(min(a.size, b.size), 1.0)
    if float(np.linalg.norm(a.landmarks[:, :2] - b.landmarks[:, :2], axis=1).mean()) < max_distance * size:
        return True
    return iou(a.box, b.box) > 0.5


def detect_hands(
    image: np.ndarray, people: Sequence[Person] | None = None, *, model: str = "full", min_presence: float = 0.5
) -> list[Hand]:
    """Hands in an RGB uint8 image, most present first: landmarks in every palm-detector ROI, then in
    the ROI proposed by each visible pose wrist that no palm-detected hand already covers. Results
    below ``min_presence`` are dropped; a hand found by both routes is kept once, as
    ``source="palm+pose"`` linked to its person."""
    image = np.ascontiguousarray(image)
    found: list[Hand] = []
    for zoom_out in PALM_ZOOM_OUTS:
        for score, roi in detect_palms(image, zoom_out=zoom_out):
            if any(_inside(roi.cx, roi.cy, h.box) for h in found):
                continue  # already found at the previous zoom
            hand = landmarks_in_roi(image, roi, model, source="palm")
            if hand is not None and hand.presence >= min_presence:
                hand.palm_score = score
                found.append(hand)
    found = _merge(found)
    for person_index, person in enumerate(people or []):
        for side in ("left", "right"):
            roi = roi_from_pose(person.landmarks, person.visibility, side)
            if roi is None or not _overlaps_image(roi, image.shape):
                continue
            wrist = np.asarray(person.landmarks)[POSE[f"{side}_wrist"], :2]
            covered = [
                h for h in found
                if h.palm_score is not None and h.person != person_index and _wrist_gap(h, wrist) < POSE_WRIST_MATCH
            ]  # fmt: skip
            if covered:
                hand = min(covered, key=lambda h: _wrist_gap(h, wrist))
                hand.source = "palm+pose"
                hand.person = person_index if hand.person is None else hand.person
                continue
            hand = _hand_from_pose_roi(image, roi, model)
            if hand is not None and hand.presence >= min_presence:
                hand.person = person_index
                found.append(hand)
    return _merge(found)


def _inside(x: float, y: float, box: Sequence[float]) -> bool:
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def _wrist_gap(hand: Hand, wrist: np.ndarray) -> float:
    return float(np.linalg.norm(hand.landmarks[0, :2] - wrist)) / max(hand.size, 1.0)


def _hand_from_pose_roi(image: np.ndarray, roi: Roi, model: str) -> Hand | None:
    """Landmarks in a pose ROI, then once more in the crop those landmarks define (the pose ROI is
    only roughly placed); the more present of the two results."""
    first = landmarks_in_roi(image, roi, model, source="pose")
    if first is None or first.presence < RECROP_MIN_PRESENCE:
        return first
    second = landmarks_in_roi(image, roi_from_landmarks(first.landmarks), model, source="pose")
    return second if second is not None and second.presence >= first.presence else first


def _overlaps_image(roi: Roi, shape: tuple[int, ...]) -> bool:
    x0, y0, x1, y1 = roi.box()
    return x1 > 0 and y1 > 0 and x0 < shape[1] and y0 < shape[0]


def _merge(candidates: list[Hand]) -> list[Hand]:
    """Greedy de-duplication, best presence first; palm scores and person links are combined."""
    kept: list[Hand] = []
    for hand in sorted(candidates, key=lambda h: h.presence, reverse=True):
        twin = next((k for k in kept if same_hand(k, hand)), None)
        if twin is None:
            kept.append(hand)
            continue
        if twin.source != hand.source and "+" not in twin.source:
            twin.source = "palm+pose"
        if hand.palm_score is not None:
            twin.palm_score = max(twin.palm_score or 0.0, hand.palm_score)
        if twin.person is None:
            twin.person = hand.person
    return kept
