"""The overlay's labels: each placed clear of the others and inside the picture."""

from __future__ import annotations

import numpy as np

from lib_humanrefine.detect.types import Detections
from lib_humanrefine.diagnose.overlay import _overlaps, draw_overlay, overlay_labels, place_label
from lib_humanrefine.diagnose.types import Diagnosis, Part, Signal


def clear_of_each_other(rects) -> bool:
    return not any(_overlaps(a, b) for i, a in enumerate(rects) for b in rects[i + 1 :])


def test_labels_of_parts_at_the_same_corner_do_not_overlap():
    shape = (400, 600, 3)
    taken: list = []
    boxes = [(100, 100, 180, 200)] * 3 + [(110, 95, 300, 150), (0, 0, 50, 50), (560, 380, 600, 400)]
    rects = [place_label((160, 18), box, taken, shape) for box in boxes]
    assert rects[0] == (100, 81, 260, 99)  # the first goes above its box's top left
    assert all(r[0] >= 0 and r[1] >= 0 and r[2] <= shape[1] and r[3] <= shape[0] for r in rects)  # inside
    assert clear_of_each_other(rects)


def test_a_crowded_overlay_places_every_label_clear_of_the_others():
    """A face and hands stacked on one spot (the tab's and the CLI's overlay of a crowded picture)."""
    image = np.full((300, 400, 3), 128, np.uint8)
    kinds = ["face", "hand", "hand", "body", "hand"]
    parts = [
        Part(kind, "left" if kind == "hand" else None, 0, (150 + k, 120 + k, 220 + k, 200 + k), kind,
             [Signal("x", 1.0, 0.2 * k, "a long enough reason to be wide")], index=k)
        for k, kind in enumerate(kinds)
    ]  # fmt: skip
    diagnosis = Diagnosis(400, 300, parts, 0.5, [], {})
    labels = overlay_labels(diagnosis, image.shape, 0.4)
    assert len(labels) == 1 + len(parts) and clear_of_each_other([rect for _, rect, _, _ in labels])
    assert any(text.startswith("P1 face") for text, *_ in labels)  # the face's label is there, not hidden
    assert draw_overlay(image, Detections(400, 300), diagnosis).shape == image.shape
