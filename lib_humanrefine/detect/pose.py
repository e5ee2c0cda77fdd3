"""Body pose: MediaPipe BlazePose (``pose_detection`` + ``pose_landmark_full``) on LiteRT, several
people per image.

Per person this follows MediaPipe's static-image pose graph (PoseDetectionCpu → PoseDetectionToRoi
→ PoseLandmarkByRoiCpu): the detector finds a mid-hip point and a size/rotation point, the ROI is
a square around them, and the landmark model runs on that rotated crop. Unlike the legacy API,
which keeps only the first detection, every detection that survives NMS gets a landmark pass;
landmark results without a person (low pose flag) or repeating another person's skeleton are
dropped. The detector tends to report only the most prominent person, so the image is scanned
again with everyone found so far blacked out.

Everything up to the landmarks reproduces MediaPipe 0.10.21 (legacy ``mp.solutions.pose``,
static images, model_complexity=1): on 63 reference images its person is matched within 0.5 % of
torso size on average (max 4 %), visibility within 0.01.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from . import runtime
from .geometry import (
    Roi,
    crop_roi,
    decode_ssd,
    letterbox_warp,
    project,
    rotation_from_points,
    ssd_anchors,
    weighted_nms,
)
from .types import Person

DETECTOR = "pose_detection.tflite"
LANDMARKER = "pose_landmark_full.tflite"

# pose_detection_cpu.pbtxt
DET_SIZE = 224
DET_STRIDES = [8, 16, 32, 32, 32]
DET_RANGE = (-1.0, 1.0)
NMS_IOU = 0.3
# pose_detection_to_roi.pbtxt: keypoint 0 = mid-hip (centre), keypoint 1 encodes size and rotation
ROI_SCALE = 1.25
# pose_landmark_by_roi_cpu.pbtxt / ..._post_processing.pbtxt
LM_SIZE = 256
LM_RANGE = (0.0, 1.0)
NUM_LANDMARKS = 33  # of the model's 39; the rest are auxiliary ROI points
MIN_FLAG = 0.5
HEATMAP_KERNEL = 9  # the .pbtxt says 7, but the 0.10.21 runtime refines with its options default, 9 (measured)
HEATMAP_MIN_CONFIDENCE = 0.5

# Two landmark results closer than this (mean distance over the body landmarks, relative to the
# larger torso) are one person found twice.
DUPLICATE_DIST = 0.25
# Re-scans with found people masked out: how many, and the detector score they need (on the
# development images, re-scans found missed people at 0.65-0.91; most below were spurious, 0.57-0.63).
RESCANS = 2
RESCAN_MIN_SCORE = 0.65


@functools.cache
def _anchors() -> np.ndarray:
    return ssd_anchors(DET_SIZE, DET_STRIDES)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def detect_boxes(image: np.ndarray, min_score: float = 0.5) -> list[tuple[float, np.ndarray]]:
    """Pose detector on the whole (letterboxed) image: (score, keypoints (4, 2) in image pixels),
    best first. Keypoints: mid-hip, full-body size/rotation point, mid-shoulder, upper-body point."""
    model = runtime.load(DETECTOR)
    # MediaPipe's exact bilinear input: area-averaged resizing loses 4 of the 63 reference people.
    tensor, lb = letterbox_warp(image, DET_SIZE, DET_RANGE)
    raw_boxes, raw_scores = model.run(tensor)
    dets = decode_ssd(raw_boxes, raw_scores, _anchors(), DET_SIZE, num_keypoints=4, min_score=min_score)
    return [(d.score, lb.to_image(d.keypoints)) for d in weighted_nms(dets, NMS_IOU)]


def roi_from_keypoints(keypoints: np.ndarray) -> Roi:
    """MediaPipe's AlignmentPointsRects (centre = mid-hip, side = 2 × |kp0 kp1|, kp0→kp1 upright)
    followed by RectTransformation (square, × 1.25)."""
    centre, end = keypoints[0], keypoints[1]
    side = 2.0 * float(np.linalg.norm(end - centre))
    rotation = rotation_from_points(centre, end, 90.0)
    return Roi(float(centre[0]), float(centre[1]), side, side, rotation).transformed(ROI_SCALE, ROI_SCALE)


def _refine_from_heatmap(xy: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """MediaPipe's RefineLandmarksFromHeatmap: move each landmark (crop-normalised x, y) to the
    sigmoid-weighted mean of the heatmap in a kernel around it, where the heatmap is confident."""
    hm_h, hm_w, n = heatmap.shape
    half = (HEATMAP_KERNEL - 1) // 2
    col = np.trunc(xy[:, 0] * hm_w).astype(int)  # C++ int conversion truncates toward zero
    row = np.trunc(xy[:, 1] * hm_h).astype(int)
    inside = (col >= 0) & (col < hm_w) & (row >= 0)
    offsets = np.arange(-half, half + 1)
    cols, rows = col[:, None] + offsets, row[:, None] + offsets  # (n, k)
    col_ok, row_ok = (cols >= 0) & (cols < hm_w), (rows >= 0) & (rows < hm_h)
    rows_in, cols_in = np.clip(rows, 0, hm_h - 1), np.clip(cols, 0, hm_w - 1)
    window = heatmap[rows_in[:, :, None], cols_in[:, None, :], np.arange(n)[:, None, None]]
    conf = _sigmoid(window) * (row_ok[:, :, None] & col_ok[:, None, :])  # (n, k, k); outside = 0
    total = conf.sum(axis=(1, 2))
    refine = inside & (conf.max(axis=(1, 2)) >= HEATMAP_MIN_CONFIDENCE) & (total > 0)
    safe = np.where(total > 0, total, 1.0)
    # MediaPipe divides the integer cell index by the heatmap size (no half-cell offset); kept for agreement.
    mean_col = (conf.sum(axis=1) * cols).sum(axis=1) / safe / hm_w
    mean_row = (conf.sum(axis=2) * rows).sum(axis=1) / safe / hm_h
    out = xy.copy()
    out[refine, 0] = mean_col[refine]
    out[refine, 1] = mean_row[refine]
    return out


def landmarks_in_roi(image: np.ndarray, roi: Roi, score: float = 1.0, refine: bool = True) -> Person | None:
    """Run the landmark model on one ROI; None when the pose flag says no person is there."""
    model = runtime.load(LANDMARKER)
    tensor, crop_to_image = crop_roi(image, roi, (LM_SIZE, LM_SIZE), LM_RANGE, border=cv2.BORDER_REPLICATE)
    out = runtime.output_by_name(model, model.run(tensor))
    flag = float(out["Identity_1"].reshape(-1)[0])
    if flag < MIN_FLAG:
        return None
    raw = out["Identity"].reshape(-1, 5)[:NUM_LANDMARKS]
    points = raw[:, :3].copy()
    if refine:
        heatmap = out["Identity_3"][0][:, :, :NUM_LANDMARKS]
        points[:, :2] = _refine_from_heatmap(points[:, :2] / LM_SIZE, heatmap) * LM_SIZE
    # World landmarks are hip-centred metres in the crop's frame: undo the crop rotation (x, y only).
    world = out["Identity_4"].reshape(-1, 3)[:NUM_LANDMARKS].astype(np.float32)
    c, s = np.cos(roi.rotation), np.sin(roi.rotation)
    world[:, :2] = world[:, :2] @ np.array([[c, s], [-s, c]], dtype=np.float32)
    return Person(
        landmarks=project(points, crop_to_image),
        visibility=_sigmoid(raw[:, 3]).astype(np.float32),
        presence=_sigmoid(raw[:, 4]).astype(np.float32),
        world=world,
        score=float(score),
        flag=flag,
        roi=(roi.cx, roi.cy, roi.width, roi.height, roi.rotation),
    )


def same_person(a: Person, b: Person) -> bool:
    """Whether two landmark results describe one body (mean distance of the 33 points, relative
    to the larger torso)."""
    scale = max(a.torso_size, b.torso_size, 1.0)
    dist = np.linalg.norm(a.landmarks[:, :2] - b.landmarks[:, :2], axis=1)
    return float(dist.mean()) / scale < DUPLICATE_DIST


def _masked(image: np.ndarray, people: list[Person]) -> np.ndarray:
    """The image with everyone found so far blacked out (landmark box + 10 %)."""
    out = image.copy()
    for person in people:
        x0, y0, x1, y1 = person.box
        pad = 0.1 * max(x1 - x0, y1 - y0)
        cv2.rectangle(out, (int(x0 - pad), int(y0 - pad)), (int(x1 + pad), int(y1 + pad)), (0, 0, 0), -1)
    return out


def detect_people(
    image: np.ndarray, *, max_people: int = 6, min_score: float = 0.5, rescans: int = RESCANS
) -> list[Person]:
    """Everyone the pose detector finds (score >= ``min_score``), with 33 landmarks each, best
    detector score first, at most ``max_people``. ``image``: H x W x 3 uint8 RGB.

    BlazePose's detector tends to report only the most prominent person, so after the first pass
    the people found are blacked out and the detector runs again (up to ``rescans`` times, while
    it finds someone new), accepting only confident detections there.
    """
    people: list[Person] = []
    scanned, threshold = image, min_score
    for _ in range(1 + rescans):
        found = 0
        for score, keypoints in detect_boxes(scanned, threshold):
            if len(people) >= max_people:
                break
            person = landmarks_in_roi(image, roi_from_keypoints(keypoints), score)
            if person is not None and not any(same_person(person, p) for p in people):
                people.append(person)
                found += 1
        if not found or len(people) >= max_people:
            break
        scanned, threshold = _masked(image, people), max(min_score, RESCAN_MIN_SCORE)
    return sorted(people, key=lambda p: p.score, reverse=True)
