"""Overlay picture: skeletons, part boxes coloured by score, each part's label, score and main
reason, and inside a flagged hand a thinner square on its focus (the fingers)."""

from __future__ import annotations

import cv2
import numpy as np

from ..detect.types import HAND_CONNECTIONS, POSE_CONNECTIONS, Detections
from .types import Diagnosis

OK, WARN, BAD = (60, 200, 60), (255, 170, 0), (235, 40, 40)  # RGB


def score_colour(score: float, threshold: float) -> tuple[int, int, int]:
    if score >= threshold:
        return BAD
    return WARN if score >= threshold / 2 else OK


def _pt(p) -> tuple[int, int]:
    return round(float(p[0])), round(float(p[1]))


FONT = cv2.FONT_HERSHEY_SIMPLEX
Rect = tuple[int, int, int, int]  # x0, y0, x1, y1


def _label_size(text: str, scale: float) -> tuple[int, int]:
    """Width and height of a label's filled rectangle."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, max(1, round(scale * 2)))
    return tw + 4, th + base + 2


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_label(size: tuple[int, int], box, taken: list[Rect], shape) -> Rect:
    """Where a label of ``size`` goes for a part's ``box``: the first spot that is inside the image
    and clear of the labels already placed — above the box's top left, below its bottom left, inside
    its top left, above or below its right end — else the first clear spot sliding down from above
    the box; the rectangle is added to ``taken``."""
    w, h = size
    height, width = shape[:2]
    x0, y0, x1, y1 = (round(float(v)) for v in box)

    def at(x: int, y: int) -> Rect:  # (x, y): top left, kept inside the image
        x = min(max(x, 0), max(width - w, 0))
        y = min(max(y, 0), max(height - h, 0))
        return x, y, x + w, y + h

    spots = [at(x0, y0 - h - 1), at(x0, y1 + 1), at(x0 + 1, y0 + 1), at(x1 - w, y0 - h - 1), at(x1 - w, y1 + 1)]
    spots += [at(x0, y0 - h - 1 + k * (h + 1)) for k in range(2, max(2, height // max(h, 1)) + 1)]
    rect = next((r for r in spots if not any(_overlaps(r, t) for t in taken)), spots[0])
    taken.append(rect)
    return rect


def _label(canvas: np.ndarray, text: str, rect: Rect, colour, scale: float) -> None:
    x0, y0, x1, y1 = rect
    (_, th), _ = cv2.getTextSize(text, FONT, scale, max(1, round(scale * 2)))
    cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), colour, -1)
    cv2.putText(
        canvas, text, (x0 + 2, y0 + th + 2), FONT, scale, (255, 255, 255), max(1, round(scale * 2)), cv2.LINE_AA
    )


def overlay_labels(diagnosis: Diagnosis, shape, scale: float) -> list[tuple[str, Rect, tuple, float]]:
    """Every label of the overlay as (text, rectangle, colour, font scale): the verdict at the top
    left, then the parts worst first, each placed clear of those before it (``place_label``)."""
    verdict = f"{diagnosis.verdict} {diagnosis.score:.2f}"
    w, h = _label_size(verdict, scale * 1.3)
    taken: list[Rect] = [(4, 4, 4 + w, 4 + h)]
    labels = [(verdict, taken[0], score_colour(diagnosis.score, diagnosis.threshold), scale * 1.3)]
    for part in [diagnosis.parts[i] for i in diagnosis.worst_first()]:
        text = f"{part.label()} {part.score:.2f}"
        if part.reasons and part.score >= diagnosis.threshold / 2:
            reason = part.reasons[0]
            text += f": {reason if len(reason) <= 48 else reason[:47] + '...'}"
        rect = place_label(_label_size(text, scale), part.box, taken, shape)
        labels.append((text, rect, score_colour(part.score, diagnosis.threshold), scale))
    return labels


def draw_overlay(image: np.ndarray, detections: Detections, diagnosis: Diagnosis) -> np.ndarray:
    """A new RGB image: the input dimmed slightly, with skeletons, boxes and labels."""
    canvas = (image.astype(np.float32) * 0.75).astype(np.uint8)
    side = max(image.shape[:2])
    line = max(1, side // 400)
    scale = max(0.4, side / 1400)
    for person in detections.people:
        for a, b in POSE_CONNECTIONS:
            if min(person.visibility[a], person.visibility[b]) > 0.5:
                cv2.line(canvas, _pt(person.landmarks[a]), _pt(person.landmarks[b]), (0, 200, 255), line, cv2.LINE_AA)
    for hand in detections.hands:
        for a, b in HAND_CONNECTIONS:
            cv2.line(canvas, _pt(hand.landmarks[a]), _pt(hand.landmarks[b]), (255, 255, 255), line, cv2.LINE_AA)
        for p in hand.landmarks:
            cv2.circle(canvas, _pt(p), line + 1, (255, 60, 200), -1, cv2.LINE_AA)
    for face in detections.faces:
        if face.landmarks is not None:
            for p in face.landmarks[::4]:
                cv2.circle(canvas, _pt(p), max(1, line - 1), (180, 255, 180), -1)
    # Boxes: low scores first, so flagged parts end on top; labels never on one another.
    for part in [diagnosis.parts[i] for i in reversed(diagnosis.worst_first())]:
        colour = score_colour(part.score, diagnosis.threshold)
        x0, y0, x1, y1 = part.box
        cv2.rectangle(
            canvas, _pt((x0, y0)), _pt((x1, y1)), colour, line + (1 if part.score >= diagnosis.threshold else 0)
        )
        if part.focus is not None and part.score >= diagnosis.threshold:  # where in a flagged part to look
            fx0, fy0, fx1, fy1 = part.focus
            cv2.rectangle(canvas, _pt((fx0, fy0)), _pt((fx1, fy1)), colour, line, cv2.LINE_AA)
    for text, rect, colour, size in overlay_labels(diagnosis, canvas.shape, scale):
        _label(canvas, text, rect, colour, size)
    return canvas
