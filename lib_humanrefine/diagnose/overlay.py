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


def _label(canvas: np.ndarray, text: str, origin: tuple[int, int], colour, scale: float) -> None:
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    x = min(max(origin[0], 0), max(canvas.shape[1] - tw - 2, 0))
    y = max(origin[1], th + 4)
    cv2.rectangle(canvas, (x, y - th - 4), (x + tw + 4, y + base - 2), colour, -1)
    cv2.putText(canvas, text, (x + 2, y - 2), font, scale, (255, 255, 255), thick, cv2.LINE_AA)


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
    # Draw low scores first so flagged parts end on top.
    for part in [diagnosis.parts[i] for i in reversed(diagnosis.worst_first())]:
        colour = score_colour(part.score, diagnosis.threshold)
        x0, y0, x1, y1 = part.box
        cv2.rectangle(
            canvas, _pt((x0, y0)), _pt((x1, y1)), colour, line + (1 if part.score >= diagnosis.threshold else 0)
        )
        text = f"{part.label()} {part.score:.2f}"
        if part.focus is not None and part.score >= diagnosis.threshold:  # where in a flagged part to look
            fx0, fy0, fx1, fy1 = part.focus
            cv2.rectangle(canvas, _pt((fx0, fy0)), _pt((fx1, fy1)), colour, line, cv2.LINE_AA)
        if part.reasons and part.score >= diagnosis.threshold / 2:
            reason = part.reasons[0]
            text += f": {reason if len(reason) <= 48 else reason[:47] + '...'}"
        _label(canvas, text, _pt((x0, y0 - 2)), colour, scale)
    _label(
        canvas,
        f"{diagnosis.verdict} {diagnosis.score:.2f}",
        (4, 4),
        score_colour(diagnosis.score, diagnosis.threshold),
        scale * 1.3,
    )
    return canvas
