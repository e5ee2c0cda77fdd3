"""Pose detection with the real BlazePose models on real images: skeleton sanity, several people,
no people, geometric consistency (rotation, mirroring) and agreement with MediaPipe's runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lib_humanrefine.detect import pose
from lib_humanrefine.detect.types import POSE, Person
from lib_humanrefine.images import load_image

REFERENCE = Path(__file__).resolve().parent / "data" / "mediapipe_reference.json"
L_SHOULDER, R_SHOULDER, L_HIP, R_HIP = (POSE[k] for k in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))


@pytest.fixture(scope="module")
def astronaut_people(models_ready, astronaut) -> list[Person]:
    return pose.detect_people(astronaut)


def _error(a: np.ndarray, b: np.ndarray, scale: float, mask=None) -> float:
    """Mean 2D landmark distance relative to ``scale``."""
    d = np.linalg.norm(a[:, :2] - b[:, :2], axis=1)
    return float((d if mask is None else d[mask]).mean() / scale)


def test_astronaut_one_upright_person_facing_camera(astronaut, astronaut_people):
    assert len(astronaut_people) == 1
    p = astronaut_people[0]
    h, w = astronaut.shape[:2]
    assert p.landmarks.shape == (33, 3) and p.world.shape == (33, 3)
    assert p.visibility.shape == p.presence.shape == (33,)
    assert p.score >= 0.5 and p.flag >= 0.5
    assert p.visibility[[L_SHOULDER, R_SHOULDER]].min() > 0.9
    lm = p.landmarks[:, :2]
    # Upright: nose above shoulders above hips; she faces the camera, so her left is image right.
    assert lm[POSE["nose"], 1] < lm[[L_SHOULDER, R_SHOULDER], 1].min()
    assert lm[[L_SHOULDER, R_SHOULDER], 1].max() < lm[[L_HIP, R_HIP], 1].min()
    assert lm[L_SHOULDER, 0] > lm[R_SHOULDER, 0] + 0.1 * w
    assert lm[L_HIP, 0] > lm[R_HIP, 0]
    assert lm[POSE["left_eye"], 0] > lm[POSE["right_eye"], 0]
    # The face is in the upper-left quarter of the photo; shoulders are in the picture.
    assert 0.15 * w < lm[POSE["nose"], 0] < 0.45 * w and lm[POSE["nose"], 1] < 0.4 * h
    assert np.all((lm[[L_SHOULDER, R_SHOULDER]] > 0) & (lm[[L_SHOULDER, R_SHOULDER]] < (w, h)))
    # World landmarks: metres around the hips, head up (negative y), shoulders ~0.3-0.5 m apart.
    world = p.world
    assert abs(world[[L_HIP, R_HIP]].mean(axis=0)).max() < 0.1
    assert world[POSE["nose"], 1] < -0.3
    assert 0.2 < np.linalg.norm(world[L_SHOULDER] - world[R_SHOULDER]) < 0.6


def test_no_person_in_coffee(models_ready):
    coffee = pytest.importorskip("skimage.data").coffee()
    assert pose.detect_people(coffee) == []


def test_rotated_image_gives_the_same_skeleton(astronaut, astronaut_people):
    """The crop follows the body's rotation: a 90°-rotated photo yields the rotated landmarks."""
    ref = astronaut_people[0]
    h = astronaut.shape[0]
    rotated = np.ascontiguousarray(np.rot90(astronaut, k=-1))  # clockwise: (x, y) -> (h - 1 - y, x)
    people = pose.detect_people(rotated)
    assert len(people) == 1
    expected = np.stack([h - 1 - ref.landmarks[:, 1], ref.landmarks[:, 0]], axis=1)
    assert _error(people[0].landmarks, expected, ref.torso_size, ref.visibility > 0.5) < 0.08
    # World landmarks follow the image axes too: image (dx, dy) -> (-dy, dx).
    world = np.stack([-ref.world[:, 1], ref.world[:, 0], ref.world[:, 2]], axis=1)
    assert np.linalg.norm(people[0].world - world, axis=1).mean() < 0.15  # metres; wrong sign: ~0.9


def test_mirrored_image_gives_the_mirrored_skeleton(astronaut, astronaut_people):
    """A mirrored frontal person still faces the camera, so the sides swap: the new left shoulder
    (still on the image's right) is where the mirrored right shoulder was."""
    ref = astronaut_people[0]
    w = astronaut.shape[1]
    people = pose.detect_people(np.ascontiguousarray(astronaut[:, ::-1]))
    assert len(people) == 1
    lm = people[0].landmarks
    assert lm[L_SHOULDER, 0] > lm[R_SHOULDER, 0]
    for left, right in ((L_SHOULDER, R_SHOULDER), (L_HIP, R_HIP), (POSE["left_eye"], POSE["right_eye"])):
        assert abs(lm[left, 0] - (w - 1 - ref.landmarks[right, 0])) < 0.1 * ref.torso_size


def _distinct(people: list[Person]) -> bool:
    """No two people share their torso (mean of shoulders and hips)."""
    centres = [p.landmarks[[L_SHOULDER, R_SHOULDER, L_HIP, R_HIP], :2].mean(axis=0) for p in people]
    return all(
        np.linalg.norm(centres[i] - centres[j]) > 0.3 * min(people[i].torso_size, people[j].torso_size)
        for i in range(len(people))
        for j in range(i)
    )


@pytest.mark.parametrize(("name", "at_least"), [("real/bus.jpg", 2), ("real/insightface_t1.jpg", 3)])
def test_group_photos_give_several_distinct_people(shared_data, models_ready, name, at_least):
    image = load_image(shared_data / name)
    people = pose.detect_people(image)
    assert at_least <= len(people) <= 6
    assert _distinct(people)
    assert [p.score for p in people] == sorted((p.score for p in people), reverse=True)
    assert all(p.flag >= pose.MIN_FLAG for p in people)
    capped = pose.detect_people(image, max_people=2)
    assert len(capped) == 2


def test_rescan_finds_the_person_the_first_pass_misses(shared_data, models_ready):
    """On bus.jpg BlazePose's detector reports one of the people in front of the bus; blacking
    him out and scanning again finds the second one."""
    image = load_image(shared_data / "real/bus.jpg")
    first = pose.detect_people(image, rescans=0)
    both = pose.detect_people(image)
    assert len(first) == 1 and len(both) >= 2
    hips = sorted(float(p.landmarks[[L_HIP, R_HIP], 0].mean()) for p in both)
    assert hips[1] - hips[0] > 0.5 * first[0].torso_size


# Includes sunbathing_08, which MediaPipe finds only with its exact (bilinear) detector letterbox.
AGREEMENT_SAMPLE = ["real/bus.jpg", "real/messi5.jpg", "gen/hastings_sc_sunbathing_08.png", "ai/handrefiner_3.jpg"]


def test_landmarks_agree_with_mediapipe_reference(shared_data, models_ready):
    if not REFERENCE.is_file():
        pytest.skip("no MediaPipe reference file")
    images = json.loads(REFERENCE.read_text())["images"]
    for name in AGREEMENT_SAMPLE:
        mp = np.asarray(images[name]["pose"]["landmarks"])
        people = pose.detect_people(load_image(shared_data / name))
        torso = np.linalg.norm(mp[[L_SHOULDER, R_SHOULDER], :2] - mp[[L_HIP, R_HIP], :2], axis=1).mean()
        visible = mp[:, 3] > 0.5
        best = min(people, key=lambda p: _error(p.landmarks, mp, torso, visible))
        assert _error(best.landmarks, mp, torso, visible) < 0.03, name
        assert np.abs(best.visibility - mp[:, 3]).max() < 0.05, name


def _person(landmarks: np.ndarray) -> Person:
    ones = np.ones(33, dtype=np.float32)
    return Person(landmarks, ones, ones, None, score=0.9, flag=1.0, roi=(0, 0, 1, 1, 0))


def test_same_person_is_relative_to_torso():
    rng = np.random.default_rng(0)
    lm = np.zeros((33, 3))
    lm[:, :2] = rng.uniform(0, 100, (33, 2))
    lm[[L_SHOULDER, R_SHOULDER], :2] = [[60, 100], [20, 100]]
    lm[[L_HIP, R_HIP], :2] = [[60, 200], [20, 200]]  # torso 100 px
    a = _person(lm)
    assert pose.same_person(a, _person(lm + (10, 5, 0)))
    assert not pose.same_person(a, _person(lm + (50, 0, 0)))


def test_heatmap_refinement_moves_to_the_confident_peak():
    heatmap = np.full((64, 64, 2), -10.0, dtype=np.float32)
    heatmap[20, 30, 0] = heatmap[20, 31, 0] = 5.0  # landmark 0: confident peak between cols 30 and 31
    heatmap[40, 10, 1] = -1.0  # landmark 1: weak (sigmoid < 0.5): left alone
    xy = np.array([[29 / 64, 21 / 64], [12 / 64, 41 / 64]], dtype=np.float32)
    out = pose._refine_from_heatmap(xy, heatmap)
    assert out[0] == pytest.approx([30.5 / 64, 20 / 64], abs=0.2 / 64)
    assert np.array_equal(out[1], xy[1])


def test_roi_is_centred_on_hips_and_upright():
    roi = pose.roi_from_keypoints(np.array([[100.0, 300.0], [100.0, 200.0], [0, 0], [0, 0]]))
    assert (roi.cx, roi.cy, roi.width, roi.height) == pytest.approx((100, 300, 250, 250))
    assert roi.rotation == pytest.approx(0.0)
    lying = pose.roi_from_keypoints(np.array([[100.0, 300.0], [200.0, 300.0], [0, 0], [0, 0]]))
    assert abs(lying.rotation) == pytest.approx(np.pi / 2)
