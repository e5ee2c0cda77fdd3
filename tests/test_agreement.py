"""Agreement with MediaPipe's own runtime: metric/matching units on synthetic numbers, and our
detectors against the stored reference (``tests/data/mediapipe_reference.json``) on a few images.
The full 88-image report is ``tools/agreement.py``'s job."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data" / "mediapipe_reference.json"

_spec = importlib.util.spec_from_file_location("agreement", REPO / "tools" / "agreement.py")
agreement = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(agreement)

# A spread of folders and poses; keep it small (< 20 s with the real models).
SAMPLE = [
    "ai/handrefiner_1.jpg",
    "ai/foundhand_13.jpg",
    "real/hamer_test1.jpg",
    "real/meshgraphormer_3dpw_test4.jpg",
    "gen/hastings_sdxl_athlete_07.jpg",
    "gen/impact_simple_refined.png",
]


def _hand(x0=100.0, y0=50.0, size=40.0, seed=0) -> np.ndarray:
    pts = np.random.default_rng(seed).uniform(0, size, (21, 3))
    pts[0, :2], pts[1, :2] = (0, 0), (size, size)  # fixes the bbox to size x size
    return pts + (x0, y0, 0)


def _pose(torso=100.0) -> np.ndarray:
    """(33, 4) with visibility 1; shoulders 11/12 exactly ``torso`` above hips 23/24."""
    lm = np.zeros((33, 4))
    lm[:, 0] = np.arange(33) * 3.0 + 200
    lm[:, 1] = 300
    lm[:, 3] = 1.0
    lm[[11, 12], 1] = 300 - torso
    lm[[11, 23], 0] = 200
    lm[[12, 24], 0] = 240
    return lm


# --- metrics ---


def test_hand_size_is_bbox_diagonal():
    assert agreement.hand_size(_hand(size=30)) == pytest.approx(30 * math.sqrt(2))


def test_torso_size_is_mean_shoulder_hip_distance():
    lm = _pose(torso=100)
    lm[12, 1] = 300 - 60  # right side 60, left 100
    assert agreement.torso_size(lm) == pytest.approx(80)


def test_mean_distance_mask_and_empty():
    a = np.zeros((4, 3))
    b = np.array([[3, 4, 9], [0, 0, 0], [6, 8, 0], [100, 0, 0]], dtype=float)  # z is ignored
    assert agreement.mean_distance(a, b) == pytest.approx((5 + 0 + 10 + 100) / 4)
    assert agreement.mean_distance(a, b, [True, True, True, False]) == pytest.approx(5)
    assert math.isnan(agreement.mean_distance(a, b, [False] * 4))


def test_hand_error_relative_to_hand_size():
    ref = _hand(size=40)
    shift = 0.03 * agreement.hand_size(ref)
    assert agreement.hand_error(ref, ref + (shift, 0, 0)) == pytest.approx(0.03)
    assert agreement.hand_error(ref, ref) == 0


def test_pose_error_ignores_invisible_landmarks():
    ref = _pose(torso=100)
    ours = ref[:, :3].copy()
    ours[:, 1] += 2.0  # 2 % of the torso everywhere
    ref[0, 3] = 0.2
    ours[0] += (500, 500, 0)  # far off, but MediaPipe says it is not visible
    assert agreement.pose_error(ref, ours) == pytest.approx(0.02)
    ref[0, 3] = 0.9
    assert agreement.pose_error(ref, ours) > 0.05


# --- matching ---


def test_match_is_optimal_and_gated():
    cost = np.array([[0.01, 0.02], [0.02, 0.4]])  # greedy would take (0,0) then the poor (1,1)
    assert agreement.match(cost, max_cost=1.0) == [(0, 1), (1, 0)]
    assert agreement.match(np.array([[0.01, 0.9]]), max_cost=0.5) == [(0, 0)]
    assert agreement.match(np.array([[0.9]]), max_cost=0.5) == []
    assert agreement.match(np.zeros((0, 3))) == []
    assert agreement.match(np.zeros((2, 0))) == []


def test_match_greedy_without_scipy(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # import fails -> greedy fallback
    cost = np.array([[0.01, 0.02], [0.02, 0.4]])
    assert agreement.match(cost, max_cost=1.0) == [(0, 0), (1, 1)]
    assert agreement.match(np.array([[0.3, 0.1], [0.2, 0.9]]), max_cost=0.5) == [(0, 1), (1, 0)]


def test_summarize():
    s = agreement.summarize([0.01, 0.03, 0.08, float("nan")], threshold=0.05)
    assert s["n"] == 3
    assert s["median"] == pytest.approx(0.03)
    assert s["mean"] == pytest.approx(0.04)
    assert s["max"] == pytest.approx(0.08)
    assert s["within"] == pytest.approx(2 / 3)
    assert agreement.summarize([])["n"] == 0


def _record(hands, sides, pose=None) -> dict:
    return {
        "width": 640,
        "height": 480,
        "hands": [{"landmarks": h.tolist(), "side": s} for h, s in zip(hands, sides)],
        "pose": None if pose is None else {"landmarks": pose.tolist()},
    }


def test_compare_image_matches_hands_and_people():
    a, b = _hand(100, 50, seed=1), _hand(400, 300, seed=2)
    far = _hand(10, 400, seed=3)
    record = _record([a, b], ["left", "right"], _pose())
    # ours: reversed order, b slightly off and on the wrong side, one extra hand, two people
    ours = [(b + (1.0, 0, 0), "left"), (far, "right"), (a, "left")]
    people = [_pose()[:, :3] + (300, 0, 0), _pose()[:, :3] + (0, 3, 0)]
    r = agreement.compare_image(record, ours, people)
    assert (r["hands_mediapipe"], r["hands_ours"], len(r["hand_errors"])) == (2, 3, 2)
    assert r["hand_errors"][0] == pytest.approx(0)
    assert r["hand_errors"][1] == pytest.approx(1.0 / agreement.hand_size(b))
    assert r["side_agree"] == [True, False]
    assert r["pose_error"] == pytest.approx(0.03)

    s = agreement.summary({"x": r, "y": agreement.compare_image(_record([], []), [], [])})
    assert (s["hands"]["mediapipe_found"], s["hands"]["ours_found"], s["hands"]["matched"]) == (2, 3, 2)
    assert s["hands"]["side_agree"] == pytest.approx(0.5)
    assert (s["pose"]["n"], s["pose"]["mediapipe_found"], s["pose"]["ours_found"]) == (1, 1, 1)


def test_compare_image_unmatched_when_far():
    a = _hand(100, 50)
    r = agreement.compare_image(_record([a], ["left"], _pose()), [(a + (200, 0, 0), "left")], [_pose()[:, :3] + 500])
    assert r["hand_errors"] == [] and r["pose_error"] is None


# --- the tool end to end, with fake detectors ---


class _Fake:
    def __init__(self, landmarks, side="left"):
        self.landmarks, self.side, self.visibility = landmarks, side, np.ones(len(landmarks))


def test_tool_runs_with_fake_detectors(tmp_path, monkeypatch, capsys):
    a = _hand(10, 10)
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "imgs" / "one.png")
    ref = {"mediapipe_version": "x", "images": {"imgs/one.png": _record([a], ["left"], _pose()), "missing.png": {}}}
    (tmp_path / "ref.json").write_text(json.dumps(ref))

    def fake_hands(image, people=None):
        assert image.shape == (48, 64, 3)
        return [_Fake(a[:, :3] + (0.5, 0, 0))]

    def fake_people(image):
        return [_Fake(_pose()[:, :3])]

    monkeypatch.setattr(agreement, "load_detectors", lambda: (fake_hands, fake_people))
    out = tmp_path / "summary.json"
    args = ["--reference", str(tmp_path / "ref.json"), "--data", str(tmp_path), "--json", str(out)]
    assert agreement.main(args) == 0
    s = json.loads(out.read_text())["summary"]
    assert s["images"] == 1
    assert s["hands"]["n"] == 1 and s["hands"]["within"] == 1.0
    assert s["pose"]["n"] == 1 and s["pose"]["median"] == 0
    assert "imgs/one.png" in capsys.readouterr().out


# --- our detectors against MediaPipe's runtime ---


def test_reference_file_is_well_formed():
    ref = json.loads(REFERENCE.read_text())
    assert ref["mediapipe_version"] and len(ref["images"]) >= 80
    for rec in ref["images"].values():
        for h in rec["hands"]:
            assert np.shape(h["landmarks"]) == (21, 3) and h["side"] in ("left", "right")
        if rec["pose"] is not None:
            assert np.shape(rec["pose"]["landmarks"]) == (33, 4)


def test_agreement_with_mediapipe(shared_data, models_ready):
    try:
        detectors = agreement.load_detectors()
    except ImportError as exc:
        pytest.skip(f"detectors not importable: {exc}")
    ref = json.loads(REFERENCE.read_text())
    s = agreement.summary(agreement.evaluate(ref, shared_data, SAMPLE, detectors))
    hands, pose = s["hands"], s["pose"]
    assert hands["matched"] >= 0.8 * hands["mediapipe_found"] > 0, hands
    assert pose["matched"] >= 0.8 * pose["mediapipe_found"] > 0, pose
    assert hands["median"] < 0.05, hands
    assert pose["median"] < 0.05, pose
