"""Hand signals: anatomy of the 3D skeleton and how stable the landmark model is on the crop.

MediaPipe fits a plausible five-finger skeleton even to a six-finger hand (presence 0.997),
so model confidence is not used; these signals look for what a real hand cannot do.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np

from ..detect.types import FINGERS, Box, Hand
from .types import Signal, ramp

BONE_NAMES = {
    "thumb": ("metacarpal", "proximal", "distal"),
    "index": ("proximal", "middle", "distal"),
    "middle": ("proximal", "middle", "distal"),
    "ring": ("proximal", "middle", "distal"),
    "pinky": ("proximal", "middle", "distal"),
}

# Bone length / palm length (wrist -> middle-finger knuckle) of a normal hand in MediaPipe's 3D
# world landmarks: medians over the 46 hands larger than 40 px in the development set's normal
# images (photographs and normal generated people), rounded. MediaPipe's knuckle landmarks sit
# on the joints' surface, so its proximal bones come out shorter than anatomical tables say.
BONE_NORMS = {
    "thumb": (0.33, 0.36, 0.30),
    "index": (0.28, 0.25, 0.26),
    "middle": (0.36, 0.27, 0.29),
    "ring": (0.29, 0.27, 0.26),
    "pinky": (0.25, 0.24, 0.21),
}
# Ramps start near the 90th percentile of normal hands (development set), so a normal hand
# rarely scores: bone ratio p90 2.1, sideways bend p90 50°.
BONE_RATIO_START, BONE_RATIO_FULL = 2.0, 3.0  # × or ÷ the norm
SIDEWAYS_START, SIDEWAYS_FULL = 50.0, 80.0  # degrees at the two outer finger joints
MIN_HAND_PX = 24.0  # below this the skeleton is too coarse to judge anatomy
# A hand's focus: a square this many hand sizes wide around the mean of its five fingertips.
# On the 13 FoundHand masks (the malformed region, mostly a few fingers) the best-placed hand's box
# is mostly inside the mask on 5; this square on 9 (0.3 and 0.4: 9, 0.5: 8, 0.6: 7, 0.8: 5), a
# square of its size centred on the box 5, one patch of the hand picked at random 3-4. Chosen on
# those same 13 images: a prior that malformed hands go wrong in the fingers, not a finding.
# Neither the landmark signals' worst finger (5-6 of 13) nor CLIP's patch tokens under the hand
# (the highest-scoring patch: 8) placed it better.
FOCUS_SIDE = 0.4


def _world(hand: Hand) -> np.ndarray:
    return hand.world if hand.world is not None else hand.landmarks


def bone_ratio_signal(hand: Hand) -> Signal:
    """The bone furthest from its normal share of the palm length."""
    w = _world(hand)
    palm = float(np.linalg.norm(w[9] - w[0])) or 1e-6
    worst_dev, reason = 1.0, "bone ratios normal"
    for finger, idx in FINGERS.items():
        for k, (a, b) in enumerate(pairwise(idx)):
            ratio = float(np.linalg.norm(w[b] - w[a])) / palm / BONE_NORMS[finger][k]
            dev = max(ratio, 1.0 / max(ratio, 1e-6))
            if dev > worst_dev:
                worst_dev = dev
                reason = f"{finger} finger {BONE_NAMES[finger][k]} bone {ratio:.1f}x the normal ratio"
    return Signal("bone_ratio", round(worst_dev, 3), ramp(worst_dev, BONE_RATIO_START, BONE_RATIO_FULL), reason, "hand")


def _palm_normal(w: np.ndarray) -> np.ndarray:
    n = np.cross(w[5] - w[0], w[17] - w[0])
    return n / (np.linalg.norm(n) or 1.0)


def sideways_bend_signal(hand: Hand) -> Signal:
    """Fingers bend towards the palm; a sharp sideways bend at the outer joints is not anatomical."""
    w = _world(hand)
    normal = _palm_normal(w)
    worst = (0.0, "")
    for finger, (mcp, pip, dip, tip) in FINGERS.items():
        if finger == "thumb":
            continue
        for joint, (a, b, c) in (("middle", (mcp, pip, dip)), ("outer", (pip, dip, tip))):
            prev, nxt = w[b] - w[a], w[c] - w[b]
            lateral = np.cross(prev, normal)
            norm = np.linalg.norm(lateral) * np.linalg.norm(nxt)
            if norm < 1e-9:
                continue
            angle = math.degrees(math.asin(min(1.0, abs(float(np.dot(lateral, nxt))) / norm)))
            if angle > worst[0]:
                worst = (angle, f"{finger} finger bends {angle:.0f}° sideways at the {joint} joint")
    angle, reason = worst
    return Signal("sideways_bend", round(angle, 1), ramp(angle, SIDEWAYS_START, SIDEWAYS_FULL), reason, "hand")


def crossing_signal(hand: Hand) -> Signal:
    """Fingertips out of the knuckles' order across the palm (crossed or swapped fingers)."""
    lm = hand.landmarks[:, :2]
    axis = lm[17] - lm[5]  # index knuckle -> pinky knuckle
    tips = [float(np.dot(lm[i], axis)) for i in (8, 12, 16, 20)]
    inversions = sum(1 for i in range(4) for j in range(i + 1, 4) if tips[i] > tips[j])
    return Signal(
        "crossing", inversions, ramp(inversions, 1, 3),
        f"{inversions} fingertip pair(s) out of order across the palm", "hand",
    )  # fmt: skip


def finger_focus(hand: Hand) -> Box:
    """Where in the hand an error most likely is: a square (x0, y0, x1, y1) of ``FOCUS_SIDE`` hand
    sizes around the mean of the five fingertips."""
    cx, cy = (float(v) for v in hand.landmarks[[4, 8, 12, 16, 20], :2].mean(axis=0))
    half = FOCUS_SIDE * hand.size / 2
    return (cx - half, cy - half, cx + half, cy + half)


def hand_signals(hand: Hand) -> list[Signal]:
    """Every hand signal, damped on hands too small to judge.

    No landmark re-run here: re-running the hand model on mirrored, rotated, scaled or shifted
    crops, or with the lite model, told generated malformed hands from generated normal ones no
    better than chance (generated-only AUROC 0.38-0.55 in the landmark feature study of version 0.1)."""
    signals = [bone_ratio_signal(hand), sideways_bend_signal(hand), crossing_signal(hand)]
    if hand.size < MIN_HAND_PX:
        damp = hand.size / MIN_HAND_PX
        for s in signals:
            s.score *= damp
    return signals
