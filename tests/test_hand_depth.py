"""Hand depth control images rendered from landmarks (conditions/hand_depth.py)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import normal_hand

from lib_humanrefine.conditions.hand_depth import palm_length, render_hand_depth
from lib_humanrefine.detect.types import FINGERS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def crop_box(lm: np.ndarray, factor: float = 1.6) -> tuple[float, float, float, float]:
    """HandRefiner's square crop: 1.6 x the landmark box, centred."""
    lo, hi = lm[:, :2].min(axis=0), lm[:, :2].max(axis=0)
    c, half = (lo + hi) / 2, max(hi - lo) * factor / 2
    return (c[0] - half, c[1] - half, c[0] + half, c[1] + half)


def to_px(points: np.ndarray, box, size) -> np.ndarray:
    """Image pixels -> (col, row) integer output pixels."""
    x0, y0, x1, y1 = box
    sx, sy = size[0] / (x1 - x0), size[1] / (y1 - y0)
    return np.stack([(points[:, 0] - x0) * sx, (points[:, 1] - y0) * sy], axis=1).astype(int)


def spread_hand() -> np.ndarray:
    """Open right hand, fingers fanned out about their knuckles, tilted in depth (tips nearer)."""
    lm = normal_hand().landmarks.copy()
    for finger, deg in {"thumb": -40, "index": -14, "middle": -3, "ring": 9, "pinky": 22}.items():
        idx = FINGERS[finger]
        a = np.radians(deg)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        lm[idx[1:], :2] = (lm[idx[1:], :2] - lm[idx[0], :2]) @ rot.T + lm[idx[0], :2]
    lm[:, 2] = (lm[:, 1] - 400) * 0.3  # fingers lean toward the camera: higher up = nearer
    return lm


def mirror(lm: np.ndarray, box) -> np.ndarray:
    out = lm.copy()
    out[:, 0] = box[0] + box[2] - lm[:, 0]
    return out


def test_range_background_and_shape():
    lm = spread_hand()
    box = crop_box(lm)
    depth = render_hand_depth([lm], box, (200, 160))
    assert depth.shape == (160, 200) and depth.dtype == np.uint8
    assert depth.max() == 255
    assert 50 <= depth[depth > 0].min() <= 52  # farthest point of the hand ~51
    for corner in (depth[:8, :8], depth[:8, -8:], depth[-8:, :8], depth[-8:, -8:]):
        assert (corner == 0).all()
    # the fingers lean toward the camera: the brightest pixels are near the fingertips, the darkest at the wrist
    rows, _ = np.nonzero(depth == 255)
    tips_row = to_px(lm[[8, 12, 16, 20]], box, (200, 160))[:, 1]
    assert rows.max() <= tips_row.max() + 3
    rows, _ = np.nonzero((depth > 0) & (depth < 60))
    assert rows.min() > to_px(lm[[0]], box, (200, 160))[0, 1] - 10
    assert render_hand_depth([], box, (32, 32)).max() == 0


def test_any_aspect_samples_the_same_pixels():
    lm = spread_hand()
    x0, y0, x1, y1 = crop_box(lm)
    square = render_hand_depth([lm], (x0, y0, x1, y1), (128, 128))
    top = render_hand_depth([lm], (x0, y0, x1, (y0 + y1) / 2), (128, 64))
    assert top.shape == (64, 128)
    assert np.abs(top.astype(int) - square[:64]).max() <= 1  # per-hand range is independent of the crop
    wide = render_hand_depth([lm], (x0, y0, x1, y1), (384, 128))  # stretched: every 3rd column is a square's
    diff = np.abs(wide[:, 1::3].astype(int) - square)
    assert (diff > 1).sum() <= 3 and (square > 0).sum() > 2000


def test_mirrored_hand_gives_mirrored_depth():
    lm = spread_hand()
    lm[[4, 8], 2] -= 40  # asymmetric depth: thumb and index tips forward
    box = crop_box(lm)
    right = render_hand_depth([lm], box, (256, 256))
    left = render_hand_depth([mirror(lm, box)], box, (256, 256))
    assert (right != np.fliplr(right)).sum() > 1000  # the hand itself is not symmetric
    flipped = np.fliplr(left).astype(int)
    both = (right > 0) & (flipped > 0)
    assert np.abs(right.astype(int) - flipped)[both].max() <= 1
    assert ((right > 0) != (flipped > 0)).sum() <= 0.002 * both.sum()


def crossed_hand(index_z: float) -> np.ndarray:
    """Index finger bent sideways across the middle finger's proximal phalanx at depth ``index_z``."""
    lm = normal_hand().landmarks.copy()
    lm[6] = (275, 275, index_z)
    lm[7] = (318, 270, index_z)
    lm[8] = (345, 268, index_z)
    return lm


@pytest.mark.parametrize("index_z", [-40.0, 40.0])
def test_nearer_finger_occludes(index_z):
    lm = crossed_hand(index_z)
    box = crop_box(lm)
    size = (256, 256)
    depth = render_hand_depth([lm], box, size).astype(int)
    cross = to_px(np.array([[300.0, 272.5]]), box, size)[0]  # index axis over the middle finger's axis
    above = to_px(np.array([[300.0, 243.0]]), box, size)[0]  # middle finger, clear of the index
    left = to_px(np.array([[287.0, 274.0]]), box, size)[0]  # index, clear of the middle finger
    v_cross, v_above, v_left = depth[cross[1], cross[0]], depth[above[1], above[0]], depth[left[1], left[0]]
    assert min(v_cross, v_above, v_left) > 0
    if index_z < 0:  # index in front: the crossing shows the (brighter) index finger
        assert v_cross > v_above + 30
        assert abs(v_cross - v_left) <= 6
    else:  # index behind: the middle finger shows through, the index is darker beside it
        assert abs(v_cross - v_above) <= 6
        assert v_left < v_cross - 30


def test_nearer_hand_wins_and_each_hand_has_its_own_range():
    a = spread_hand()
    b = a.copy()
    b[:, 0] += 70
    box = (150.0, 150.0, 500.0, 500.0)
    size = (160, 160)
    for za, zb in ((0.0, -300.0), (-300.0, 0.0)):
        ha, hb = a + [0, 0, za], b + [0, 0, zb]
        alone_a = render_hand_depth([ha], box, size)
        alone_b = render_hand_depth([hb], box, size)
        both = render_hand_depth([ha, hb], box, size)
        front, back = (alone_b, alone_a) if zb < za else (alone_a, alone_b)
        assert ((alone_a > 0) & (alone_b > 0)).sum() > 500  # they overlap
        np.testing.assert_array_equal(both, np.where(front > 0, front, back))
        assert alone_a.max() == alone_b.max() == 255  # normalised per hand, not over both


def test_five_fingertips_separate_at_64px():
    lm = spread_hand()
    box = crop_box(lm)
    depth = render_hand_depth([lm], box, (64, 64))
    tips = to_px(lm[[4, 8, 12, 16, 20]], box, (64, 64))
    assert all(depth[r, c] > 0 for c, r in tips)
    for (c0, r0), (c1, r1) in pairwise(tips):  # background between neighbouring tips
        line = np.linspace((c0, r0), (c1, r1), 30).round().astype(int)
        assert (depth[line[:, 1], line[:, 0]] == 0).any()


def test_thin_fingers_keep_one_pixel():
    lm = spread_hand()
    x0, y0, x1, y1 = crop_box(lm, factor=6.0)  # the hand spans ~12 px: fingers ~1 px wide
    box = (x0 + 0.37, y0 + 0.21, x1 + 0.37, y1 + 0.21)  # finger axes off the pixel centres
    size = (64, 64)
    depth = render_hand_depth([lm], box, size)
    assert palm_length(lm) * 64 / (x1 - x0) < 6
    for idx in FINGERS.values():
        pts = np.linspace(lm[idx[1]], lm[idx[3]], 20)
        px = to_px(pts, box, size)
        assert (depth[px[:, 1], px[:, 0]] > 0).all()


def test_wrist_stub_is_optional_and_short():
    lm = spread_hand()
    box = crop_box(lm, 2.0)
    size = (128, 128)
    with_stub = render_hand_depth([lm], box, size)
    without = render_hand_depth([lm], box, size, wrist=0)
    wrist_row = to_px(lm[[0]], box, size)[0, 1]
    below = lambda d: (d[wrist_row + 3 :] > 0).sum()  # noqa: E731
    assert below(with_stub) > 2 * below(without) > 0
    stub_rows = np.nonzero(with_stub.any(axis=1))[0]
    scale = palm_length(lm) * size[1] / (box[3] - box[1])
    assert stub_rows.max() <= wrist_row + 0.3 * scale


def real_hands():
    if not DATA.is_dir():
        pytest.skip("shared data not available")
    from lib_humanrefine.detect import detect
    from lib_humanrefine.images import load_image

    names = ["real/hamer_test1.jpg", "real/opencvdoc_Histogram_Comparison_Source_0.jpg", "ai/handrefiner_1.jpg"]
    hands = [h.landmarks for n in names if (DATA / n).is_file() for h in detect(load_image(DATA / n)).hands]
    if not hands:
        pytest.skip("no hands detected in the shared data")
    return hands


def test_real_hands_cover_landmarks_and_stay_near_them():
    size = (512, 512)
    for lm in real_hands():
        box = crop_box(lm)
        depth = render_hand_depth([lm], box, size)
        pts = to_px(lm, box, size)
        assert (depth[pts[:, 1], pts[:, 0]] > 0).all()
        hull = np.zeros(depth.shape, np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(pts.astype(np.int32)), 1)
        margin = int(0.45 * palm_length(lm) * size[0] / (box[2] - box[0]))
        near = cv2.dilate(hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1)))
        assert (depth[near == 0] == 0).all()
        assert (depth[hull > 0] > 0).mean() > 0.6  # the palm and fingers fill most of the landmark hull
        assert depth.max() == 255 and 50 <= depth[depth > 0].min() <= 52
