import numpy as np
import pytest
from synthetic import face_with_eyes, normal_hand, person, stretch_bone

from lib_humanrefine.detect.link import link_faces, link_hands
from lib_humanrefine.detect.types import FINGERS, Detections
from lib_humanrefine.diagnose import diagnose_detections
from lib_humanrefine.diagnose.bodies import body_signals
from lib_humanrefine.diagnose.faces import face_signals
from lib_humanrefine.diagnose.hands import (
    BONE_RATIO_FULL,
    BONE_RATIO_START,
    SIDEWAYS_FULL,
    SIDEWAYS_START,
    bone_ratio_signal,
    crossing_signal,
    sideways_bend_signal,
)
from lib_humanrefine.diagnose.report import summary
from lib_humanrefine.diagnose.types import Signal, combine, ramp


def test_normal_hand_scores_zero():
    hand = normal_hand()
    assert bone_ratio_signal(hand).score == 0.0
    assert sideways_bend_signal(hand).score == 0.0
    assert crossing_signal(hand).score == 0.0


def test_long_ring_finger_bone_is_named_with_its_ratio():
    assert bone_ratio_signal(stretch_bone(normal_hand(), "ring", 0, 1.3)).score == 0  # within normal spread
    halfway = (BONE_RATIO_START + BONE_RATIO_FULL) / 2
    signal = bone_ratio_signal(stretch_bone(normal_hand(), "ring", 0, halfway))
    assert signal.reason == f"ring finger proximal bone {halfway:.1f}x the normal ratio"
    assert signal.score == pytest.approx(0.5)


def test_short_bone_counts_too():
    signal = bone_ratio_signal(stretch_bone(normal_hand(), "pinky", 2, 0.3))
    assert "pinky finger distal bone 0.3x" in signal.reason and signal.score == 1.0


def test_sideways_bend_at_outer_joint():
    hand = normal_hand()
    _mcp, _pip, dip, tip = FINGERS["index"]
    length = np.linalg.norm(hand.world[tip] - hand.world[dip])
    angle = np.radians(75)
    hand.world[tip] = hand.world[dip] + length * np.array([np.sin(angle), -np.cos(angle), 0])
    signal = sideways_bend_signal(hand)
    assert signal.reason == "index finger bends 75° sideways at the outer joint"
    assert signal.score == pytest.approx(ramp(75, SIDEWAYS_START, SIDEWAYS_FULL)) and signal.score > 0.5


def test_swapped_fingertips_are_crossing():
    hand = normal_hand()
    lm = hand.landmarks
    lm[[12, 16]] = lm[[16, 12]]
    assert crossing_signal(hand).value == 1


def test_limb_asymmetry_and_hand_count():
    p = person()
    det = Detections(1000, 1000, people=[p])
    assert max((s.score for s in body_signals(0, det) if "asymmetry" in s.name), default=0) == 0
    wrist, elbow = 15, 13  # left forearm 1.8x
    p.world[wrist] = p.world[elbow] + (p.world[wrist] - p.world[elbow]) * 1.8
    signals = {s.name: s for s in body_signals(0, det)}
    assert signals["forearm_asymmetry"].reason == "left forearm 1.8x the right"
    assert signals["forearm_asymmetry"].category == "arm" and signals["forearm_asymmetry"].score > 0.5


def test_hands_link_to_the_nearest_wrist_and_extra_hand_is_flagged():
    people = [person(300), person(800)]
    hands = []
    for p in people:
        for wrist in (15, 16):
            h = normal_hand(scale=30, origin=tuple(p.landmarks[wrist, :2]))
            hands.append(h)
    hands.append(normal_hand(scale=30, origin=tuple(people[1].landmarks[15, :2] + 5)))  # a third hand
    link_hands(hands, people)
    assert [h.person for h in hands] == [0, 0, 1, 1, 1]
    assert hands[0].extra["wrist"] == "left" and hands[1].extra["wrist"] == "right"
    det = Detections(1200, 1000, people=people, hands=hands)
    extra = {s.name: s for s in body_signals(1, det)}
    assert extra["extra_hands"].value == 3 and extra["extra_hands"].score == 1.0


def test_faces_link_to_heads():
    people = [person(300), person(800)]
    faces = []
    for p in reversed(people):
        face = face_with_eyes()
        shift = p.landmarks[0, :2] - np.array([200.0, 230.0])
        face.landmarks[:, :2] += shift
        faces.append(face)
    link_faces(faces, people)
    assert [f.person for f in faces] == [1, 0]


def test_face_eye_asymmetry_only_on_frontal_faces():
    assert max(s.score for s in face_signals(face_with_eyes())) == 0
    lopsided = {s.name: s for s in face_signals(face_with_eyes(right_eye_width=30, left_eye_width=80))}
    assert lopsided["eye_width_asymmetry"].score > 0.5
    turned = {s.name for s in face_signals(face_with_eyes(right_eye_width=30, left_eye_width=80, nose_x=-60))}
    assert "eye_width_asymmetry" not in turned  # a turned head shows unequal eyes anyway


def test_scoring_helpers():
    assert ramp(1.6, 1.6, 2.6) == 0 and ramp(2.6, 1.6, 2.6) == 1 and ramp(2.1, 1.6, 2.6) == 0.5
    assert combine([Signal("a", 0, 0.5, ""), Signal("b", 0, 0.5, "")]) == 0.75
    assert combine([]) == 0


def test_diagnosis_verdict_and_summary():
    hand = stretch_bone(normal_hand(), "ring", 0, 3.0)
    det = Detections(800, 800, hands=[hand])
    diagnosis = diagnose_detections(np.zeros((800, 800, 3), np.uint8), det, threshold=0.5, tta=False)
    assert diagnosis.verdict == "suspect" and diagnosis.score == 1.0
    text = summary(diagnosis)
    assert text.startswith("suspect 1.00") and "ring finger proximal bone 3.0x" in text and "," not in text
    calm = diagnose_detections(
        np.zeros((800, 800, 3), np.uint8), Detections(800, 800, hands=[normal_hand()]), tta=False
    )
    assert calm.verdict == "ok" and summary(calm).startswith("ok 0.00")


def test_a_hand_part_points_at_its_fingers_and_the_report_and_overlay_show_it():
    from lib_humanrefine.diagnose.hands import FOCUS_SIDE
    from lib_humanrefine.diagnose.overlay import BAD, draw_overlay
    from lib_humanrefine.diagnose.report import part_dict

    blank = np.zeros((800, 800, 3), np.uint8)
    hand = stretch_bone(normal_hand(), "ring", 0, 3.0)
    detections = Detections(800, 800, hands=[hand])
    diagnosis = diagnose_detections(blank, detections, tta=False)
    part = diagnosis.parts[0]
    x0, y0, x1, y1 = part.focus
    tips = hand.landmarks[[4, 8, 12, 16, 20], :2].mean(axis=0)
    assert (x0 + x1) / 2 == pytest.approx(tips[0]) and (y0 + y1) / 2 == pytest.approx(tips[1])
    assert x1 - x0 == pytest.approx(FOCUS_SIDE * hand.size) == pytest.approx(y1 - y0)
    bx0, by0, bx1, by1 = part.box
    assert (x1 - x0) * (y1 - y0) < 0.5 * (bx1 - bx0) * (by1 - by0)  # a part of the hand, not all of it
    wrist = hand.landmarks[0]
    assert not (x0 <= wrist[0] <= x1 and y0 <= wrist[1] <= y1)
    assert part_dict(part)["focus"] == [round(float(v), 1) for v in part.focus]
    # the focus square is drawn on a flagged hand only
    top_edge = draw_overlay(blank, detections, diagnosis)[round(y0) - 1 : round(y0) + 2, round((x0 + x1) / 2)]
    assert (top_edge == BAD).all(-1).any()
    calm_detections = Detections(800, 800, hands=[normal_hand()])
    calm = diagnose_detections(blank, calm_detections, tta=False)
    assert calm.parts[0].focus is not None
    assert not (draw_overlay(blank, calm_detections, calm) == BAD).all(-1).any()


def test_faces_and_bodies_have_no_focus_narrower_than_their_box():
    from lib_humanrefine.diagnose.report import part_dict

    face = face_with_eyes()
    diagnosis = diagnose_detections(np.zeros((800, 800, 3), np.uint8), Detections(800, 800, faces=[face]), tta=False)
    assert diagnosis.parts[0].focus is None and part_dict(diagnosis.parts[0])["focus"] is None


def test_equally_suspicious_parts_go_hands_first_then_the_larger_one():
    from lib_humanrefine.diagnose.types import Diagnosis, Part

    def part(kind, box, score):
        return Part(kind, None, None, box, kind, [Signal("learned", score, score, "")])

    small, large = part("hand", (0, 0, 50, 50), 0.8), part("hand", (100, 0, 200, 100), 0.8)
    body, calm = part("body", (0, 0, 400, 400), 0.8), part("hand", (300, 300, 500, 500), 0.3)
    diagnosis = Diagnosis(500, 500, [body, calm, small, large], threshold=0.5)
    assert diagnosis.flagged() == [large, small, body]
    assert diagnosis.worst_first() == [3, 2, 0, 1]
    small.signals.append(Signal("bone_ratio", 2.5, 0.05, ""))  # landmark evidence still decides first
    assert diagnosis.flagged()[0] is small
