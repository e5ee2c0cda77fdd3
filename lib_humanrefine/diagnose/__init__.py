"""Diagnosis stage: turn detections into scored, explained parts and an image verdict."""

from __future__ import annotations

import time

import numpy as np

from ..detect import Detections, detect
from ..errors import BadArgument
from ..images import to_rgb_array
from .bodies import body_signals
from .faces import face_signals
from .hands import finger_focus, hand_signals
from .types import Diagnosis, Part, Signal

__all__ = ["DEFAULT_THRESHOLD", "Diagnosis", "Part", "diagnose_detections", "diagnose_image"]

DEFAULT_THRESHOLD = 0.5


def diagnose_detections(
    image: np.ndarray,
    detections: Detections,
    threshold: float = DEFAULT_THRESHOLD,
    tta: bool = True,
    learned: bool = False,
) -> Diagnosis:
    """Score every detected hand, face and person of an image (``learned``: add the learned check)."""
    parts: list[Part] = []
    for i, hand in enumerate(detections.hands):
        signals = hand_signals(hand)
        if hand.person is None and detections.people:
            signals.append(Signal("floating_hand", 1.0, 0.2, "hand not attached to any detected person", "hand"))
        if hand.extra.get("shares_wrist"):
            signals.append(Signal("shared_wrist", 1.0, 0.5, "a second hand at the same wrist", "hand"))
        parts.append(Part("hand", hand.side, hand.person, hand.box, "hand", signals, index=i, focus=finger_focus(hand)))
    for i, face in enumerate(detections.faces):
        signals = face_signals(face, image if tta else None)
        parts.append(Part("face", None, face.person, face.box, "face", signals, index=i))
    for p, person in enumerate(detections.people):
        parts.append(Part("body", None, p, person.box, "body", body_signals(p, detections), index=p))
    people = [
        {
            "index": p,
            "box": [round(v, 1) for v in person.box],
            "score": round(person.score, 3),
            "hands": [i for i, h in enumerate(detections.hands) if h.person == p],
            "faces": [i for i, f in enumerate(detections.faces) if f.person == p],
        }
        for p, person in enumerate(detections.people)
    ]
    result = Diagnosis(detections.width, detections.height, parts, threshold, people, dict(detections.timings_ms))
    if learned:
        add_learned_evidence(image, result)
    return result


def add_learned_evidence(image: np.ndarray, diagnosis: Diagnosis) -> None:
    """The learned check's signal on every part and the image score; a note when it is off."""
    from .learned import KIND_WORDS, learned_check

    start = time.perf_counter()
    result, note = learned_check(image, diagnosis.parts)
    if result is None:
        diagnosis.notes.append(note or "learned check off")
        return
    for part, score, share in zip(diagnosis.parts, result.part_scores, result.part_shares):
        for signal in part.signals:
            signal.evidence = signal.score  # still told as a reason when it is strong on its own
            signal.score *= result.landmark_weight
        reason = f"learned {KIND_WORDS.get(part.kind, part.kind)} check {score:.2f}"
        part.signals.append(Signal("learned", round(share, 3), score, reason))
    diagnosis.image_score = result.image_score
    diagnosis.learned = result
    diagnosis.timings_ms["learned"] = (time.perf_counter() - start) * 1000.0


def diagnose_image(
    image: np.ndarray, threshold: float = DEFAULT_THRESHOLD, tta: bool = True, learned: bool = True
) -> tuple[Detections, Diagnosis]:
    """Detect and diagnose one image: H x W x 3 uint8 RGB, or anything ``images.to_rgb_array`` reads
    (converted first); ``timings_ms["total"]`` is the whole time. BadImage / BadArgument in one line
    for an image or threshold it cannot use. ``learned=False`` skips the learned check (landmark
    signals only; faster)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or not 0 <= threshold <= 1:
        raise BadArgument(f"threshold must be a number between 0 and 1 (got {threshold!r})")
    image = to_rgb_array(image)
    start = time.perf_counter()
    detections = detect(image)
    result = diagnose_detections(image, detections, threshold=threshold, tta=tta, learned=learned)
    result.timings_ms["total"] = (time.perf_counter() - start) * 1000.0
    return detections, result
