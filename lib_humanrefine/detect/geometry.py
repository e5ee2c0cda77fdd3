"""Geometry shared by the MediaPipe-style detectors: SSD anchors, box decoding, weighted NMS,
letterboxing and rotated region-of-interest crops.

These mirror MediaPipe's calculators (SsdAnchorsCalculator, TensorsToDetectionsCalculator,
NonMaxSuppressionCalculator in weighted mode, ImageToTensorCalculator, RectTransformation);
they are small enough that writing them is simpler than depending on MediaPipe's graph runtime.
All coordinates here are image pixels unless a name says ``norm``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# --- SSD anchors ---------------------------------------------------------------------------


def ssd_anchors(
    input_size: int,
    strides: list[int],
    interpolated_scale_aspect_ratio: float = 1.0,
) -> np.ndarray:
    """Anchor centres (N, 2) in normalised [0, 1] coords, fixed anchor size 1.

    Consecutive layers with the same stride share one grid; each layer adds one anchor per
    cell (aspect 1.0) plus one more when ``interpolated_scale_aspect_ratio`` > 0.
    """
    per_layer = 2 if interpolated_scale_aspect_ratio > 0 else 1
    anchors = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        repeats = 0
        while layer < len(strides) and strides[layer] == stride:
            repeats += per_layer
            layer += 1
        cells = math.ceil(input_size / stride)
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        anchors.append(np.repeat(centres, repeats, axis=1).reshape(-1, 2))
    return np.concatenate(anchors).astype(np.float32)


@dataclass
class RawDetection:
    """A detector output in normalised input-tensor coords (before letterbox removal)."""

    score: float
    box: np.ndarray  # (4,) x0, y0, x1, y1
    keypoints: np.ndarray  # (K, 2)


def decode_ssd(
    raw_boxes: np.ndarray,
    raw_scores: np.ndarray,
    anchors: np.ndarray,
    input_size: int,
    num_keypoints: int,
    min_score: float,
    score_clip: float = 100.0,
) -> list[RawDetection]:
    """Decode SSD regressors (N, 4 + 2K [+ ...]) and logits (N, 1) above ``min_score``."""
    boxes = raw_boxes.reshape(len(anchors), -1)
    # MediaPipe clips logits at 100; in float64 so exp() of the clipped value cannot overflow.
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.reshape(-1).astype(np.float64), -score_clip, score_clip)))
    keep = np.nonzero(scores >= min_score)[0]
    out = []
    for i in keep:
        ax, ay = anchors[i]
        r = boxes[i] / input_size
        cx, cy, w, h = r[0] + ax, r[1] + ay, r[2], r[3]
        kps = r[4 : 4 + 2 * num_keypoints].reshape(num_keypoints, 2) + (ax, ay)
        box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float32)
        out.append(RawDetection(float(scores[i]), box, kps.astype(np.float32)))
    return out


def _intersection(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy


def _area(box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    inter = _intersection(a, b)
    union = _area(a) + _area(b) - inter
    return float(inter / union) if union > 0 else 0.0


def overlap_of_smaller(a, b) -> float:
    """Intersection over the smaller box's area: 1 when one box lies inside the other."""
    smaller = min(_area(a), _area(b))
    return float(_intersection(a, b) / smaller) if smaller > 0 else 0.0


def weighted_nms(dets: list[RawDetection], iou_threshold: float = 0.3) -> list[RawDetection]:
    """MediaPipe's weighted NMS: overlapping detections are averaged, weighted by score."""
    remaining = sorted(dets, key=lambda d: d.score, reverse=True)
    out = []
    while remaining:
        top = remaining[0]
        group = [d for d in remaining if iou(top.box, d.box) > iou_threshold]
        rest = [d for d in remaining if iou(top.box, d.box) <= iou_threshold]
        weights = np.array([d.score for d in group], dtype=np.float32)
        weights /= weights.sum()
        box = np.tensordot(weights, np.stack([d.box for d in group]), axes=1)
        kps = np.tensordot(weights, np.stack([d.keypoints for d in group]), axes=1)
        out.append(RawDetection(top.score, box.astype(np.float32), kps.astype(np.float32)))
        remaining = rest
    return out


# --- letterboxed whole-image input ---------------------------------------------------------


@dataclass
class Letterbox:
    """Maps between an image and a square model input that keeps the aspect ratio."""

    scale: float  # input pixels per image pixel
    pad_x: float  # input pixels of padding on the left
    pad_y: float
    size: int

    def to_image(self, norm_xy: np.ndarray) -> np.ndarray:
        """Normalised input coords (..., 2) -> image pixels."""
        xy = np.asarray(norm_xy, dtype=np.float32) * self.size
        return (xy - (self.pad_x, self.pad_y)) / self.scale


def letterbox(image: np.ndarray, size: int, value_range: tuple[float, float]) -> tuple[np.ndarray, Letterbox]:
    """Resize an RGB uint8 image into a zero-padded square float tensor (1, size, size, 3)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[pad_y : pad_y + nh, pad_x : pad_x + nw] = resized
    lo, hi = value_range
    # Padding is black in pixel space (MediaPipe's OpenCV converter warps with a zero border,
    # then rescales), so it becomes `lo` in tensor space.
    tensor = canvas.astype(np.float32) * ((hi - lo) / 255.0) + lo
    return tensor[None], Letterbox(scale=scale, pad_x=pad_x, pad_y=pad_y, size=size)


def letterbox_warp(
    image: np.ndarray, size: int, value_range: tuple[float, float], zoom_out: float = 1.0
) -> tuple[np.ndarray, Letterbox]:
    """Like ``letterbox`` but sampled exactly as MediaPipe's ImageToTensorCalculator does: one
    bilinear warp of the whole image onto the square (image corners to tensor edges, fractional
    padding, zero border). Reproduces MediaPipe's palm detections and landmarks to ~0.1 %.
    ``zoom_out`` > 1 shrinks the image further inside a wider black border (objects that fill
    the frame become the size a detector was trained on)."""
    h, w = image.shape[:2]
    scale = size / max(h, w) / zoom_out
    pad_x, pad_y = (size - w * scale) / 2, (size - h * scale) / 2
    forward = np.array([[scale, 0.0, pad_x], [0.0, scale, pad_y]])
    canvas = cv2.warpAffine(image, forward, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    lo, hi = value_range
    tensor = canvas.astype(np.float32) * ((hi - lo) / 255.0) + lo
    return tensor[None], Letterbox(scale=scale, pad_x=pad_x, pad_y=pad_y, size=size)


# --- rotated regions of interest -----------------------------------------------------------


@dataclass
class Roi:
    """A rotated rectangle in image pixels; ``rotation`` in radians, clockwise on screen."""

    cx: float
    cy: float
    width: float
    height: float
    rotation: float = 0.0

    def transformed(
        self, scale_x: float = 1.0, scale_y: float = 1.0, shift_x: float = 0.0, shift_y: float = 0.0,
        square_long: bool = True,
    ) -> Roi:  # fmt: skip
        """MediaPipe's RectTransformation: shift along the rotated axes, square, scale."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        dx, dy = shift_x * self.width, shift_y * self.height
        cx = self.cx + dx * c - dy * s
        cy = self.cy + dx * s + dy * c
        w, h = self.width, self.height
        if square_long:
            w = h = max(w, h)
        return Roi(cx, cy, w * scale_x, h * scale_y, self.rotation)

    def corners(self) -> np.ndarray:
        """(4, 2): top-left, top-right, bottom-right, bottom-left in image pixels."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float32) * (self.width / 2, self.height / 2)
        rot = np.array([[c, -s], [s, c]], dtype=np.float32)
        return half @ rot.T + (self.cx, self.cy)

    def box(self) -> tuple[float, float, float, float]:
        pts = self.corners()
        return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


def normalize_radians(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def rotation_from_points(start: np.ndarray, end: np.ndarray, target_degrees: float) -> float:
    """MediaPipe's rotation so the start→end vector points at ``target_degrees`` (90 = up)."""
    angle = math.radians(target_degrees) - math.atan2(-(end[1] - start[1]), end[0] - start[0])
    return normalize_radians(angle)


def crop_roi(
    image: np.ndarray, roi: Roi, size: tuple[int, int], value_range: tuple[float, float] = (0.0, 1.0),
    border: int = cv2.BORDER_CONSTANT,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Warp the rotated ROI to a (1, H, W, 3) float tensor; also return the 2x3 matrix that maps
    crop pixels back to image pixels."""
    out_h, out_w = size
    src = roi.corners()[:3].astype(np.float32)  # tl, tr, br
    dst = np.array([[0, 0], [out_w, 0], [out_w, out_h]], dtype=np.float32)
    forward = cv2.getAffineTransform(src, dst)
    crop = cv2.warpAffine(image, forward, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=border)
    lo, hi = value_range
    tensor = crop.astype(np.float32) * ((hi - lo) / 255.0) + lo
    return tensor[None], cv2.invertAffineTransform(forward)


def project(points: np.ndarray, crop_to_image: np.ndarray) -> np.ndarray:
    """Crop-pixel points (N, 2+) -> image pixels; extra columns (z...) are scaled like x."""
    pts = np.asarray(points, dtype=np.float32)
    xy = pts[:, :2] @ crop_to_image[:, :2].T + crop_to_image[:, 2]
    if pts.shape[1] == 2:
        return xy
    scale = float(np.sqrt(abs(np.linalg.det(crop_to_image[:, :2]))))
    return np.concatenate([xy, pts[:, 2:] * scale], axis=1)
