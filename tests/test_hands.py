"""Hand pipeline: ROI geometry on synthetic numbers, and the real models on real photos."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lib_humanrefine import models
from lib_humanrefine.detect import hands
from lib_humanrefine.detect.geometry import Roi
from lib_humanrefine.detect.types import FINGERS, POSE, Hand

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


# --- geometry on synthetic numbers ----------------------------------------------------------


def rotate(points: np.ndarray, degrees: float, centre=(0.0, 0.0)) -> np.ndarray:
    """Rotate (N, 2+) points clockwise on screen (y down) about ``centre``."""
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    out = np.array(points, dtype=np.float64)
    out[:, :2] = (out[:, :2] - centre) @ rot.T + centre
    return out


def upright_hand() -> np.ndarray:
    """21 landmarks of a flat hand pointing up: wrist (0, 0), knuckles at y = -100, palm 85 wide."""
    lm = np.zeros((21, 3))
    lm[1:5, :2] = [(-30, -20), (-50, -45), (-65, -70), (-75, -95)]  # thumb
    for finger, x in zip(("index", "middle", "ring", "pinky"), (-30, 0, 30, 55)):
        for joint, idx in enumerate(FINGERS[finger]):
            lm[idx, :2] = (x, -100 - 30 * joint)
    return lm


def test_roi_from_landmarks_upright():
    lm = upright_hand()
    roi = hands.roi_from_landmarks(lm)
    assert roi.rotation == pytest.approx(0.0, abs=1e-9)
    # Subset box: x -65..55 (120 wide), y -130..0 (130 tall) -> square 130, x2.0 = 260, moved 0.1 * 130 up.
    assert roi.width == pytest.approx(260) and roi.height == pytest.approx(260)
    assert roi.cx == pytest.approx(-5)
    assert roi.cy == pytest.approx(-65 - 13)


@pytest.mark.parametrize("degrees", [30.0, -75.0, 180.0])
def test_roi_from_landmarks_follows_rotation_and_shift(degrees):
    lm = upright_hand()
    base = hands.roi_from_landmarks(lm)
    moved = rotate(lm, degrees, centre=(0, 0))
    moved[:, :2] += (500, 300)
    roi = hands.roi_from_landmarks(moved)
    expected_centre = rotate(np.array([[base.cx, base.cy]]), degrees)[0] + (500, 300)
    assert math.remainder(roi.rotation - math.radians(degrees), 2 * math.pi) == pytest.approx(0.0, abs=1e-9)
    assert (roi.cx, roi.cy) == pytest.approx(tuple(expected_centre), abs=1e-6)
    assert roi.width == pytest.approx(base.width)


def synthetic_person(side: str, wrist, index, pinky, thumb, visible: float = 1.0) -> SimpleNamespace:
    landmarks = np.zeros((33, 3))
    visibility = np.zeros(33)
    for name, xy in (("wrist", wrist), ("index", index), ("pinky", pinky), ("thumb", thumb)):
        landmarks[POSE[f"{side}_{name}"], :2] = xy
        visibility[POSE[f"{side}_{name}"]] = visible
    return SimpleNamespace(landmarks=landmarks, visibility=visibility)


def test_roi_from_pose_geometry():
    p = synthetic_person("left", wrist=(300, 300), index=(330, 200), pinky=(270, 200), thumb=(350, 250))
    roi = hands.roi_from_pose(p.landmarks, p.visibility, "left")
    assert roi is not None
    length = 100.0  # wrist -> middle of index/pinky; longer than the span (60) and wrist-thumb (~71)
    assert roi.rotation == pytest.approx(0.0, abs=1e-9)
    assert (roi.cx, roi.cy) == pytest.approx((300, 300 - hands.POSE_ROI_CENTRE * length))
    assert roi.width == pytest.approx(hands.POSE_ROI_SIZE * length) and roi.height == roi.width
    # The other side's landmarks are empty (invisible): no ROI.
    assert hands.roi_from_pose(p.landmarks, p.visibility, "right") is None


def test_roi_from_pose_pointing_right_and_foreshortened():
    # Hand pointing right (+x): the ROI's "up" must turn clockwise by 90 degrees.
    p = synthetic_person("right", wrist=(100, 100), index=(120, 90), pinky=(120, 110), thumb=(100, 60))
    roi = hands.roi_from_pose(p.landmarks, p.visibility, "right")
    assert roi is not None
    assert roi.rotation == pytest.approx(math.pi / 2)
    # Foreshortened: axis 20 px, but wrist-thumb is 40 px, so the hand length is 40.
    assert roi.width == pytest.approx(hands.POSE_ROI_SIZE * 40)
    assert roi.cx == pytest.approx(100 + hands.POSE_ROI_CENTRE * 40) and roi.cy == pytest.approx(100)


def test_roi_from_pose_needs_visible_wrist():
    p = synthetic_person("left", wrist=(300, 300), index=(330, 200), pinky=(270, 200), thumb=(350, 250))
    p.visibility[POSE["left_wrist"]] = 0.2
    assert hands.roi_from_pose(p.landmarks, p.visibility, "left") is None


# --- real models on real photos --------------------------------------------------------------

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"evaluation images not found at {DATA}")


@pytest.fixture(scope="module")
def load():
    missing = [n for n in (hands.PALM_MODEL, *hands.LANDMARK_MODELS.values()) if models.problem_with(models.MODELS[n])]
    if missing:
        pytest.skip(f"models missing: {missing} (run: {models.FETCH_COMMAND})")
    from lib_humanrefine.images import load_image

    cache: dict[str, np.ndarray] = {}

    def _load(rel: str) -> np.ndarray:
        if rel not in cache:
            cache[rel] = load_image(DATA / rel)
        return cache[rel]

    return _load


def extension(hand: Hand) -> dict[str, float]:
    """Per finger: tip-to-wrist distance over knuckle-to-wrist distance (> 1.5 extended, < 1.2 folded)."""
    lm = hand.landmarks[:, :2]
    return {
        name: float(np.linalg.norm(lm[idx[-1]] - lm[0]) / np.linalg.norm(lm[idx[0]] - lm[0]))
        for name, idx in FINGERS.items()
    }


def assert_plausible(hand: Hand, image: np.ndarray) -> None:
    assert hand.landmarks.shape == (21, 3) and np.isfinite(hand.landmarks).all()
    assert hand.world is not None and np.abs(hand.world).max() < 0.3  # metres, hand-centred
    h, w = image.shape[:2]
    x0, y0, x1, y1 = hand.box
    assert -0.1 * w < x0 < x1 < 1.1 * w and -0.1 * h < y0 < y1 < 1.1 * h
    size = hand.size
    assert size > 10
    for idx in FINGERS.values():  # every bone of the 5 chains has a sane length
        bones = np.linalg.norm(np.diff(hand.landmarks[[0, *idx], :2], axis=0), axis=1)
        assert (bones > 0.02 * size).all() and (bones < 1.0 * size).all()
    assert np.abs(hand.landmarks[:, 2]).max() < size  # relative depth on the x scale


@needs_data
def test_known_photo_sides_and_geometry(load):
    # A man facing the camera: his right hand (wrist with a watch) is on the image's left.
    image = load("real/controlnet_pose1.png")
    found = hands.detect_hands(image)
    assert len(found) == 2
    left_in_image, right_in_image = sorted(found, key=lambda h: h.landmarks[0, 0])
    assert (left_in_image.side, right_in_image.side) == ("right", "left")
    for hand in found:
        assert hand.presence > 0.9 and hand.palm_score is not None and hand.source == "palm"
        assert hand.side_score > 0.9
        assert_plausible(hand, image)
        roi = Roi(*hand.roi)
        assert roi.box()[0] <= hand.box[0] and hand.box[2] <= roi.box()[2]


@needs_data
def test_mirrored_photo_swaps_sides(load):
    image = load("real/hamer_test5.jpg")
    plain = sorted(hands.detect_hands(image), key=lambda h: h.landmarks[0, 0])
    mirrored = sorted(hands.detect_hands(image[:, ::-1]), key=lambda h: -h.landmarks[0, 0])
    assert [h.side for h in plain] == ["right", "left"]  # she faces the camera, hands up to her face
    assert [h.side for h in mirrored] == ["left", "right"]
    w = image.shape[1]
    for a, b in zip(plain, mirrored):
        flipped = b.landmarks[:, :2] * (-1, 1) + (w, 0)
        assert np.linalg.norm(a.landmarks[:, :2] - flipped, axis=1).mean() < 0.05 * a.size


@needs_data
@pytest.mark.parametrize(
    ("name", "extended", "folded"),
    [
        ("real/mediapipe_rock_026fd791-8f64-4fae-8cb0-0e01dc4362ce.jpg", ["index", "pinky"], ["middle", "ring"]),
        ("real/mediapipe_four_15a73593-b13e-4a1b-99bb-51775cfdfc42.jpg", ["index", "middle", "ring", "pinky"], []),
        ("real/opencvdoc_handSrc.jpg", ["index", "middle", "ring", "pinky"], []),
    ],
)
def test_gestures(load, name, extended, folded):
    image = load(name)
    found = hands.detect_hands(image)
    assert len(found) == 1
    hand = found[0]
    assert hand.presence > 0.9
    assert_plausible(hand, image)
    ext = extension(hand)
    assert all(ext[f] > 1.5 for f in extended), ext
    assert all(ext[f] < 1.2 for f in folded), ext


@needs_data
def test_background_crop_has_no_hand(load):
    image = load("real/hamer_test5.jpg")  # plain grey studio wall in the top-left corner
    hand = hands.landmarks_in_roi(image, Roi(150, 150, 250, 250))
    assert hand is not None and hand.presence < 0.2


@needs_data
def test_pose_roi_finds_hand_the_palm_detector_is_not_asked_for(load, monkeypatch):
    image = load("real/controlnet_pose1.png")
    reference = hands.detect_hands(image)
    target = min(reference, key=lambda h: h.landmarks[0, 0])  # the person's right hand
    lm = target.landmarks[:, :2]
    person = synthetic_person("right", wrist=lm[0], index=lm[5], pinky=lm[17], thumb=lm[2])

    # With palms: the pose wrist is recognised as the palm hand, nothing is added.
    merged = hands.detect_hands(image, [person])
    assert len(merged) == len(reference)
    linked = [h for h in merged if h.person == 0]
    assert len(linked) == 1 and linked[0].source == "palm+pose"

    # Without the palm detector the pose ROI alone must find the same hand.
    monkeypatch.setattr(hands, "detect_palms", lambda image, min_score=0.5, zoom_out=1.0: [])
    alone = hands.detect_hands(image, [person])
    assert len(alone) == 1
    hand = alone[0]
    assert hand.source == "pose" and hand.person == 0 and hand.palm_score is None
    assert hand.presence > 0.9 and hand.side == "right"
    assert np.linalg.norm(hand.landmarks[:, :2] - lm, axis=1).mean() < 0.1 * target.size


@needs_data
def test_lite_model_and_rotated_image_agree(load):
    image = load("real/opencvdoc_Histogram_Comparison_Source_0.jpg")
    (full,) = hands.detect_hands(image)
    lite = hands.landmarks_in_roi(image, Roi(*full.roi), model="lite")
    assert lite is not None and lite.presence > 0.9 and lite.side == full.side
    assert np.linalg.norm(lite.landmarks[:, :2] - full.landmarks[:, :2], axis=1).mean() < 0.1 * full.size

    # Image turned 90 degrees clockwise: landmarks and world landmarks turn with it.
    h = image.shape[0]
    turned = hands.detect_hands(np.ascontiguousarray(np.rot90(image, k=-1)))
    assert len(turned) == 1
    expected = np.stack([h - 1 - full.landmarks[:, 1], full.landmarks[:, 0]], axis=1)
    assert np.linalg.norm(turned[0].landmarks[:, :2] - expected, axis=1).mean() < 0.05 * full.size
    world_expected = np.stack([-full.world[:, 1], full.world[:, 0]], axis=1)
    assert np.abs(turned[0].world[:, :2] - world_expected).mean() < 0.01  # metres
