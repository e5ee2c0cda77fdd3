"""OpenPose control images: the ControlNet colour/limb convention checked on real pixels of synthetic people and
hands (palette colours at limb midpoints, sides, missing joints, box mapping, scaling, hand hues), plus a real
detection rendered from ../shared/data."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from lib_humanrefine.conditions.openpose import mediapipe_to_coco18, render_openpose

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

# The standard palette (RGB) and limb pairs, written out independently of the module.
COLOURS = [
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
]  # fmt: skip
LIMBS = [
    ("neck", "r_shoulder"), ("neck", "l_shoulder"), ("r_shoulder", "r_elbow"), ("r_elbow", "r_wrist"),
    ("l_shoulder", "l_elbow"), ("l_elbow", "l_wrist"), ("neck", "r_hip"), ("r_hip", "r_knee"),
    ("r_knee", "r_ankle"), ("neck", "l_hip"), ("l_hip", "l_knee"), ("l_knee", "l_ankle"), ("neck", "nose"),
    ("nose", "r_eye"), ("r_eye", "r_ear"), ("nose", "l_eye"), ("l_eye", "l_ear"),
]  # fmt: skip
NAMES = [
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "r_hip", "r_knee",
    "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
]  # fmt: skip
MP = {
    "nose": 0, "l_eye": 2, "r_eye": 5, "l_ear": 7, "r_ear": 8, "l_shoulder": 11, "r_shoulder": 12,
    "l_elbow": 13, "r_elbow": 14, "l_wrist": 15, "r_wrist": 16, "l_hip": 23, "r_hip": 24, "l_knee": 25,
    "r_knee": 26, "l_ankle": 27, "r_ankle": 28,
}  # fmt: skip
# A person standing and facing the camera in a 512 x 512 frame: their right is the image's left.
STANDING = {
    "nose": (256, 90), "r_eye": (240, 76), "l_eye": (272, 76), "r_ear": (220, 86), "l_ear": (292, 86),
    "r_shoulder": (196, 150), "l_shoulder": (316, 150), "r_elbow": (170, 230), "l_elbow": (342, 230),
    "r_wrist": (150, 310), "l_wrist": (362, 310), "r_hip": (222, 300), "l_hip": (290, 300),
    "r_knee": (214, 400), "l_knee": (298, 400), "r_ankle": (214, 490), "l_ankle": (298, 490),
}  # fmt: skip
BOX = (0.0, 0.0, 512.0, 512.0)


def person(points=STANDING, shift=(0.0, 0.0), hidden=()):
    lm = np.zeros((33, 3))
    vis = np.zeros(33)
    for name, (x, y) in points.items():
        lm[MP[name]] = (x + shift[0], y + shift[1], 0.0)
        vis[MP[name]] = 0.1 if name in hidden else 0.95
    return lm, vis


def coco(points=STANDING) -> dict[str, np.ndarray]:
    out = {k: np.array(v, float) for k, v in points.items()}
    out["neck"] = (out["r_shoulder"] + out["l_shoulder"]) / 2
    return out


def at(image: np.ndarray, p) -> tuple[int, ...]:
    x, y = np.rint(p).astype(int)
    return tuple(int(c) for c in image[y, x])


def dimmed(colour) -> tuple[int, ...]:
    return tuple(int(c * 3 // 5) for c in colour)  # 60 %


def test_mediapipe_to_coco18():
    lm, vis = person()
    pts = mediapipe_to_coco18(lm, vis, 0.5)
    assert pts.shape == (18, 2)
    expected = coco()
    for k, name in enumerate(NAMES):
        np.testing.assert_allclose(pts[k], expected[name])
    lm, vis = person(hidden=("l_shoulder", "r_knee"))
    pts = mediapipe_to_coco18(lm, vis, 0.5)
    assert np.isnan(pts[[1, 5, 9]]).all()  # neck needs both shoulders
    assert np.isfinite(np.delete(pts, [1, 5, 9], axis=0)).all()
    assert np.isfinite(mediapipe_to_coco18(lm, vis, 0.05)).all()


def test_limb_midpoints_and_joints_have_palette_colours():
    image = render_openpose([person()], [], BOX, (512, 512))
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    pts = coco()
    for i, (a, b) in enumerate(LIMBS):
        assert at(image, (pts[a] + pts[b]) / 2) == dimmed(COLOURS[i]), f"limb {i} {a}-{b}"
    for k, name in enumerate(NAMES):
        assert at(image, pts[name]) == COLOURS[k], name


def test_person_right_side_is_red_and_on_image_left():
    image = render_openpose([person()], [], BOX, (512, 512))
    pts = coco()
    red, orange = dimmed(COLOURS[0]), dimmed(COLOURS[1])
    rows = image[int(pts["neck"][1]) - 1 : int(pts["neck"][1]) + 2]
    xs_red = np.nonzero((rows == red).all(axis=2))[1]
    xs_orange = np.nonzero((rows == orange).all(axis=2))[1]
    assert xs_red.size > 20 and xs_orange.size > 20
    assert xs_red.max() <= pts["neck"][0] + 4 < xs_orange.min() + 8  # right shoulder limb left of the neck
    assert xs_red.mean() < 256 < xs_orange.mean()
    # Mirroring the person (their right now on the image's right) moves the red limb across.
    mirrored = {k: (512 - x, y) for k, (x, y) in STANDING.items()}
    flipped = render_openpose([person(mirrored)], [], BOX, (512, 512))
    rows = flipped[int(pts["neck"][1]) - 1 : int(pts["neck"][1]) + 2]
    assert np.nonzero((rows == red).all(axis=2))[1].mean() > 256


def test_low_visibility_joints_draw_nothing():
    full = render_openpose([person()], [], BOX, (512, 512))
    pts = coco()
    image = render_openpose([person(hidden=("r_elbow",))], [], BOX, (512, 512))
    for p in (pts["r_elbow"], (pts["r_shoulder"] + pts["r_elbow"]) / 2, (pts["r_elbow"] + pts["r_wrist"]) / 2):
        x, y = np.rint(p).astype(int)
        assert not image[y - 3 : y + 4, x - 3 : x + 4].any()
    assert at(image, pts["r_wrist"]) == COLOURS[4]  # the wrist itself is still visible
    changed = (image != full).any(axis=2)
    assert changed.any() and not changed[:, 200:].any()  # nothing else moved
    # One hidden shoulder: no neck, so none of the limbs starting at the neck.
    image = render_openpose([person(hidden=("l_shoulder",))], [], BOX, (512, 512))
    for i, (a, b) in enumerate(LIMBS):
        if "neck" in (a, b) or "l_shoulder" in (a, b):
            x, y = np.rint((pts[a] + pts[b]) / 2).astype(int)
            assert not image[y - 2 : y + 3, x - 2 : x + 3].any(), f"limb {i}"
    assert at(image, pts["r_shoulder"]) == COLOURS[2]
    # Nobody visible at all: a black image.
    assert not render_openpose([person(hidden=tuple(STANDING))], [], BOX, (512, 512)).any()


def test_box_maps_region_onto_output():
    base = render_openpose([person()], [], BOX, (512, 512))
    shifted = render_openpose([person(shift=(1000, 2000))], [], (1000, 2000, 1512, 2512), (512, 512))
    np.testing.assert_array_equal(shifted, base)
    # A joint near the box's bottom-right corner lands near the output's corner; outside the box is clipped.
    corner = {"nose": (1000 + 250, 2000 + 250), "r_eye": (1000 + 400, 2000 + 400)}
    image = render_openpose([person(corner)], [], (1000, 2000, 1256, 2256), (128, 96))
    assert image.shape == (96, 128, 3)
    ys, xs = np.nonzero(image.any(axis=2))
    assert xs.min() >= 118 and ys.min() >= 85  # 250/256 of the way: (125, 94)
    assert at(image, (125, 94)) == COLOURS[0]


def test_larger_output_scales_coordinates_and_stick_width():
    small = render_openpose([person()], [], BOX, (512, 512))
    large = render_openpose([person()], [], BOX, (1024, 1024))
    pts = coco()
    for i, (a, b) in enumerate(LIMBS):
        assert at(large, (pts[a] + pts[b])) == dimmed(COLOURS[i])  # 2 x midpoint
    # Width of the vertical right shin across its middle row.
    y = int((pts["r_knee"][1] + pts["r_ankle"][1]) / 2)
    w_small = (small[y, 150:260] == dimmed(COLOURS[8])).all(axis=1).sum()
    w_large = (large[2 * y, 300:520] == dimmed(COLOURS[8])).all(axis=1).sum()
    assert 7 <= w_small <= 10  # ellipse half-width 4 at 512
    assert abs(w_large - 2 * w_small) <= 2
    # Joint radius scales too.
    r_small = (small[int(pts["r_knee"][1])] == COLOURS[9]).all(axis=1).sum()
    r_large = (large[2 * int(pts["r_knee"][1])] == COLOURS[9]).all(axis=1).sum()
    assert 7 <= r_small <= 10 and abs(r_large - 2 * r_small) <= 2


def fan_hand(wrist=(256.0, 420.0), radius=(70.0, 120.0, 160.0, 190.0)) -> np.ndarray:
    """21 hand landmarks, fingers fanned upward from thumb (image left) to pinky."""
    lm = np.zeros((21, 3))
    lm[0, :2] = wrist
    for f, angle in enumerate(np.radians([-150, -120, -90, -60, -30])):
        d = np.array([np.cos(angle), np.sin(angle)])
        for j, r in enumerate(radius):
            lm[1 + 4 * f + j, :2] = np.array(wrist) + r * d
    return lm


def test_hand_bones_take_twenty_hues_and_blue_dots():
    lm = fan_hand()
    image = render_openpose([], [(lm, "right")], BOX, (512, 512))
    bones = [(0 if j == 0 else 4 * f + j, 4 * f + j + 1) for f in range(5) for j in range(4)]
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL)  # hue 0-255 over the full circle
    hues = []
    for i, (a, b) in enumerate(bones):
        x, y = np.rint((lm[a, :2] + lm[b, :2]) / 2).astype(int)
        h, s, v = (int(c) for c in hsv[y, x])
        assert s == 255 and v == 255, f"bone {i}"
        assert abs(h - i / 20 * 256) <= 2, f"bone {i}: hue {h}"
        hues.append(h)
    assert len(set(hues)) == 20
    for p in lm[:, :2]:
        assert at(image, p) == (0, 0, 255)
    # A missing landmark (NaN) drops its dot and both bones touching it.
    full = image
    lm[6] = np.nan
    image = render_openpose([], [(lm, "left")], BOX, (512, 512))
    drawn = image.any(axis=2)
    assert (image[drawn] == full[drawn]).all()  # nothing new appears
    for a, b in ((5, 6), (6, 7), (6, 6)):
        x, y = np.rint((fan_hand()[a, :2] + fan_hand()[b, :2]) / 2).astype(int)
        assert not image[y - 1 : y + 2, x - 1 : x + 2].any()


def test_background_is_black_away_from_the_skeleton():
    lm = fan_hand(wrist=(420.0, 500.0), radius=(20.0, 35.0, 45.0, 55.0))
    image = render_openpose([person()], [(lm, "left")], BOX, (512, 512))
    near = np.zeros((512, 512), np.uint8)
    pts = coco()
    for a, b in LIMBS:
        cv2.line(near, tuple(np.rint(pts[a]).astype(int)), tuple(np.rint(pts[b]).astype(int)), 1, 14)
    for p in lm[:, :2]:
        cv2.circle(near, tuple(np.rint(p).astype(int)), 7, 1, -1)
    for a in range(1, 21):
        cv2.line(near, tuple(np.rint(lm[0, :2]).astype(int)), tuple(np.rint(lm[a, :2]).astype(int)), 1, 6)
    assert not image[near == 0].any()
    assert image[near == 1].any(axis=1).mean() > 0.3
    assert not render_openpose([], [], BOX, (64, 32)).any()
    with pytest.raises(ValueError):
        render_openpose([], [], (10, 10, 10, 20), (64, 64))


def test_real_detection_renders_near_projected_joints():
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not present")
    from lib_humanrefine import models

    if any(models.check().values()):
        pytest.skip(f"models missing (run: {models.FETCH_COMMAND})")
    from lib_humanrefine.detect import detect
    from lib_humanrefine.images import load_image

    image = load_image(SHARED / "real" / "controlnet_pose1.png")
    d = detect(image)
    assert d.people
    h, w = image.shape[:2]
    box = (0.1 * w, 0.05 * h, 0.9 * w, 0.95 * h)
    size = (512, round(512 * 0.9 * h / (0.8 * w)))
    people = [(p.landmarks, p.visibility) for p in d.people]
    control = render_openpose(people, [(hd.landmarks, hd.side) for hd in d.hands], box, size)
    assert control.shape == (size[1], size[0], 3)
    scale = np.array([size[0] / (box[2] - box[0]), size[1] / (box[3] - box[1])])
    joints = (mediapipe_to_coco18(*people[0], 0.5) - box[:2]) * scale
    inside = np.isfinite(joints).all(axis=1) & (joints >= 3).all(axis=1) & (joints < np.array(size) - 3).all(axis=1)
    assert inside.sum() >= 8
    for x, y in np.rint(joints[inside]).astype(int):
        assert control[y - 2 : y + 3, x - 2 : x + 3].any(axis=2).all()
    assert (control.any(axis=2)).mean() < 0.2  # mostly black
