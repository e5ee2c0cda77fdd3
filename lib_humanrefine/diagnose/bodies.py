"""Person-level signals: limb proportions and symmetry, hands per person, fused people."""

from __future__ import annotations

import numpy as np

from ..detect.geometry import iou
from ..detect.types import POSE, Detections, Person
from .types import Signal, ramp

VISIBLE = 0.6
# name -> (category, (joint, joint) for the left side; the right side mirrors it). Legs are left
# out: BlazePose's 3D legs of seated or crouching people are foreshortened unevenly, and leg
# asymmetry fired at full score on 3 normal photos and on no malformed image of the development set.
LIMBS = {
    "upper arm": ("arm", ("shoulder", "elbow")),
    "forearm": ("arm", ("elbow", "wrist")),
}
ASYMMETRY_START, ASYMMETRY_FULL = 1.4, 2.0  # longer / shorter side, 3D lengths
PROPORTION_START, PROPORTION_FULL = 1.6, 2.4  # × or ÷ the normal ratio
PROPORTIONS = {  # (limb, limb) -> normal length ratio, in MediaPipe's world landmarks
    ("forearm", "upper arm"): 0.85,
}
OVERLAP_START, OVERLAP_FULL = 0.35, 0.75  # IoU of two people's torso boxes


def _points(person: Person) -> np.ndarray:
    return person.world if person.world is not None else person.landmarks


def limb_length(person: Person, limb: str, side: str) -> float | None:
    """3D length of a limb on one side, None when either joint is not clearly visible."""
    a, b = (POSE[f"{side}_{joint}"] for joint in LIMBS[limb][1])
    if min(person.visibility[a], person.visibility[b]) < VISIBLE:
        return None
    pts = _points(person)
    return float(np.linalg.norm(pts[a] - pts[b]))


def asymmetry_signals(person: Person) -> list[Signal]:
    out = []
    for limb, (category, _joints) in LIMBS.items():
        left, right = limb_length(person, limb, "left"), limb_length(person, limb, "right")
        if not left or not right:
            continue
        ratio = max(left, right) / min(left, right)
        longer = "left" if left > right else "right"
        shorter = "right" if longer == "left" else "left"
        out.append(Signal(
            f"{limb}_asymmetry", round(ratio, 3), ramp(ratio, ASYMMETRY_START, ASYMMETRY_FULL),
            f"{longer} {limb} {ratio:.1f}x the {shorter}", category,
        ))  # fmt: skip
    return out


def proportion_signals(person: Person) -> list[Signal]:
    out = []
    for (limb, ref), norm in PROPORTIONS.items():
        for side in ("left", "right"):
            a, b = limb_length(person, limb, side), limb_length(person, ref, side)
            if not a or not b:
                continue
            ratio = a / b / norm
            dev = max(ratio, 1 / ratio)
            out.append(Signal(
                f"{side}_{limb}_proportion", round(dev, 3), ramp(dev, PROPORTION_START, PROPORTION_FULL),
                f"{side} {limb} {ratio:.1f}x the normal length relative to the {ref}", LIMBS[limb][0],
            ))  # fmt: skip
    return out


def hand_count_signals(person_index: int, person: Person, detections: Detections) -> list[Signal]:
    """Three hands on one person is an anomaly; a visible wrist without a hand is a weak hint
    (the hand may be out of frame, hidden, or too malformed for the hand model)."""
    hands = [h for h in detections.hands if h.person == person_index]
    out = []
    if len(hands) > 2:
        out.append(
            Signal("extra_hands", len(hands), ramp(len(hands), 2, 3), f"{len(hands)} hands on one person", "arm")
        )
    wrists = {h.extra.get("wrist") for h in hands}
    for side in ("left", "right"):
        wrist = POSE[f"{side}_wrist"]
        if (
            person.visibility[wrist] >= 0.9
            and side not in wrists
            and 0 <= person.landmarks[wrist, 0] < detections.width
        ):
            out.append(Signal(f"{side}_hand_missing", 1.0, 0.2, f"{side} wrist visible but no hand found", "hand"))
    return out


def torso_box(person: Person) -> tuple[float, float, float, float]:
    idx = [POSE["left_shoulder"], POSE["right_shoulder"], POSE["left_hip"], POSE["right_hip"]]
    pts = person.landmarks[idx, :2]
    return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


def overlap_signals(person_index: int, detections: Detections) -> list[Signal]:
    """Two skeletons sharing one torso region: fused or merged people (AbHuman 'multi')."""
    me = np.array(torso_box(detections.people[person_index]))
    out = []
    for j, other in enumerate(detections.people):
        if j == person_index:
            continue
        overlap = iou(me, np.array(torso_box(other)))
        if overlap > OVERLAP_START:
            out.append(Signal(
                "fused_people", round(overlap, 3), ramp(overlap, OVERLAP_START, OVERLAP_FULL),
                f"torso overlaps person {j + 1} by {overlap * 100:.0f}% (fused bodies?)", "multi",
            ))  # fmt: skip
    return out


def body_signals(person_index: int, detections: Detections) -> list[Signal]:
    person = detections.people[person_index]
    return (
        asymmetry_signals(person)
        + proportion_signals(person)
        + hand_count_signals(person_index, person, detections)
        + overlap_signals(person_index, detections)
    )
