"""Assign hands and faces to people: a hand to the pose wrist it starts at, a face to the pose
head it covers. Greedy by distance, each wrist/head used once; unmatched parts keep
``person=None`` and are reported as unlinked."""

from __future__ import annotations

import numpy as np

from .types import POSE, Face, Hand, Person

MIN_VISIBILITY = 0.3
HAND_MAX_DIST = 0.6  # × max(hand size, 0.4 × torso size)
FACE_MAX_DIST = 0.6  # × face box diagonal


def link_hands(hands: list[Hand], people: list[Person]) -> None:
    """Set ``hand.person`` and ``hand.extra["wrist"]`` ("left"/"right": which pose wrist)."""
    pairs = []
    for h, hand in enumerate(hands):
        wrist = hand.landmarks[0, :2]
        for p, person in enumerate(people):
            scale = max(hand.size, 0.4 * person.torso_size, 1.0)
            for side in ("left", "right"):
                idx = POSE[f"{side}_wrist"]
                if person.visibility[idx] < MIN_VISIBILITY:
                    continue
                dist = float(np.linalg.norm(person.landmarks[idx, :2] - wrist)) / scale
                if dist <= HAND_MAX_DIST:
                    pairs.append((dist, h, p, side))
    used_hands: set[int] = set()
    used_wrists: set[tuple[int, str]] = set()
    for _dist, h, p, side in sorted(pairs):
        if h in used_hands or (p, side) in used_wrists:
            continue
        used_hands.add(h)
        used_wrists.add((p, side))
        hands[h].person = p
        hands[h].extra["wrist"] = side
    # A second hand near an already-used wrist still belongs to that person (an extra hand).
    for h, hand in enumerate(hands):
        if h in used_hands:
            continue
        near = [(d, p, s) for d, hh, p, s in pairs if hh == h]
        if near:
            _d, p, side = min(near)
            hand.person = p
            hand.extra["wrist"] = side
            hand.extra["shares_wrist"] = True


def link_faces(faces: list[Face], people: list[Person]) -> None:
    """Set ``face.person`` from the pose nose/eyes lying inside or near the face."""
    pairs = []
    for f, face in enumerate(faces):
        x0, y0, x1, y1 = face.box
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        diag = max(float(np.hypot(x1 - x0, y1 - y0)), 1.0)
        for p, person in enumerate(people):
            head_idx = [POSE["nose"], POSE["left_eye"], POSE["right_eye"]]
            vis = person.visibility[head_idx]
            if vis.max() < MIN_VISIBILITY:
                continue
            head = person.landmarks[head_idx][vis >= MIN_VISIBILITY, :2].mean(axis=0)
            dist = float(np.linalg.norm(head - centre)) / diag
            if dist <= FACE_MAX_DIST:
                pairs.append((dist, f, p))
    used_faces: set[int] = set()
    used_people: set[int] = set()
    for _dist, f, p in sorted(pairs):
        if f in used_faces or p in used_people:
            continue
        used_faces.add(f)
        used_people.add(p)
        faces[f].person = p
