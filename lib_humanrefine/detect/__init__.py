"""Detection stage: people (pose), hands (palm detector + pose wrists), faces; then linking.

``detect(image)`` is the one entry point; models load once per process (see runtime.py).
"""

from __future__ import annotations

import time

import numpy as np

from .faces import detect_faces
from .hands import detect_hands
from .link import link_faces, link_hands
from .pose import detect_people
from .types import Detections, Face, Hand, Person

__all__ = ["Detections", "Face", "Hand", "Person", "detect"]


def detect(image: np.ndarray, *, max_people: int = 6, hand_model: str = "full") -> Detections:
    """Run every detector on an H x W x 3 uint8 RGB image and link parts to people."""
    height, width = image.shape[:2]
    timings: dict[str, float] = {}

    def timed(name, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        timings[name] = (time.perf_counter() - start) * 1000.0
        return result

    people = timed("pose", detect_people, image, max_people=max_people)
    hands = timed("hands", detect_hands, image, people, model=hand_model)
    faces = timed("faces", detect_faces, image)
    link_hands(hands, people)
    link_faces(faces, people)
    return Detections(width=width, height=height, people=people, hands=hands, faces=faces, timings_ms=timings)
