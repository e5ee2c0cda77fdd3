import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO
from stand_in_host import BrokenHost, IdentityHost, ShiftHost
from synthetic import normal_hand, person, stretch_bone

from lib_humanrefine.conditions import masks
from lib_humanrefine.detect.types import Detections
from lib_humanrefine.diagnose import diagnose_detections
from lib_humanrefine.engine import EngineOptions, rediagnose_part, refine, run_step
from lib_humanrefine.plan import PlanOptions, make_plan


def scene(broken=True):
    """A synthetic 640x480 image with one person whose right hand is (or is not) malformed."""
    image = np.random.default_rng(0).integers(60, 200, (480, 640, 3), dtype=np.uint8)
    hand = normal_hand(scale=40, origin=(200.0, 300.0))
    if broken:
        stretch_bone(hand, "ring", 0, 3.0)
    det = Detections(640, 480, people=[], hands=[hand])
    return image, det, diagnose_detections(image, det, tta=False)


def test_clean_image_gets_no_steps_and_all_policy_gets_one_per_part():
    image, det, diagnosis = scene(broken=False)
    assert diagnosis.verdict == "ok"
    assert make_plan(image, det, diagnosis, PlanOptions()).steps == []
    every = make_plan(image, det, diagnosis, PlanOptions(policy="all"))
    assert [s.kind for s in every.steps] == ["hand"]


def test_flagged_hand_step_has_crop_masks_controls_and_work():
    image, det, diagnosis = scene()
    plan = make_plan(image, det, diagnosis, PlanOptions(prompt="a woman", steps=20, candidates=2))
    (step,) = plan.steps
    assert step.kind == "hand" and step.score == 1.0
    x0, y0, x1, y1 = step.box
    c = step.crop
    assert c.x0 <= x0 and c.y0 <= y0 and c.x1 >= x1 and c.y1 >= y1  # the crop holds the region
    assert max(step.size) == 512 and step.size[0] % 8 == 0 and step.size[1] % 8 == 0
    assert [k.kind for k in step.controls] == ["depth", "reference"]
    assert all(k.image.shape[:2] == (step.size[1], step.size[0]) for k in step.controls)
    assert 0.4 <= step.controls[0].weight <= 0.8  # HandRefiner's recommended control strength
    assert step.prompt.startswith("a woman, ") and "five fingers" in step.prompt
    latent = step.size[0] // 8 * step.size[1] // 8
    assert step.unet_work == 2 * latent * (int(20 * step.denoise) + int(20 * step.seam_denoise))
    assert plan.describe()["steps"][0]["unet_work"] == step.unet_work


def test_pose_steps_come_first_for_a_broken_arm():
    image = np.zeros((800, 1000, 3), np.uint8)
    p = person(500)
    p.world[15] = p.world[13] + (p.world[15] - p.world[13]) * 2.5  # left forearm 2.5x
    hand = stretch_bone(normal_hand(scale=30, origin=tuple(p.landmarks[16, :2])), "index", 0, 3.0)
    det = Detections(1000, 800, people=[p], hands=[hand])
    from lib_humanrefine.detect.link import link_hands

    link_hands(det.hands, det.people)
    plan = make_plan(image, det, diagnose_detections(image, det, tta=False), PlanOptions())
    assert [s.kind for s in plan.steps] == ["pose", "hand"]
    pose = plan.steps[0]
    assert [c.kind for c in pose.controls] == ["openpose", "reference"]
    assert pose.mask[int(p.landmarks[13, 1]), int(p.landmarks[13, 0])] == 255  # the left elbow is inside


def fixed_scorer(best_shift):
    """Scores a candidate by how far its masked pixels moved from ``best_shift`` (0 = the fix)."""

    base = {}

    def score(img, step):
        original = base.setdefault("image", img.astype(int))  # the first call scores the original
        moved = (img.astype(int) - original)[step.mask > 0].mean()
        return min(1.0, abs(moved - best_shift) / 50)

    return score


def test_best_candidate_is_kept_and_outside_pixels_are_untouched():
    image, det, diagnosis = scene()
    plan = make_plan(image, det, diagnosis, PlanOptions(candidates=3, seam_pass=False))
    step = plan.steps[0]
    host = ShiftHost()
    seeds = [step.seed + 7919 * c for c in range(3)]
    target = ShiftHost.shift(seeds[1])
    out, result = run_step(image, step, host, fixed_scorer(target), margin=0.05)
    assert result.accepted and len(result.candidate_scores) == 3
    assert np.argmin(result.candidate_scores) == 1 and [r.seed for r in host.requests] == seeds
    assert np.array_equal(out[step.mask == 0], image[step.mask == 0])  # bit-identical outside the mask
    core = masks.erode(step.mask, 15) > 0  # where the feathered alpha is 1
    moved = (out[core].astype(int) - image[core]).mean()  # the crop's resampling adds noise, not bias
    assert abs(moved - target) < 3  # the chosen seed's pixels


def test_no_improvement_reverts_to_the_exact_original():
    image, det, diagnosis = scene()
    step = make_plan(image, det, diagnosis, PlanOptions(seam_pass=False)).steps[0]
    out, result = run_step(image, step, ShiftHost(), lambda img, s: 0.5, margin=0.05)
    assert not result.accepted and out is image and "kept the original" in result.reason


def test_failing_host_keeps_the_image_and_says_why():
    image, det, diagnosis = scene()
    step = make_plan(image, det, diagnosis, PlanOptions()).steps[0]
    out, result = run_step(image, step, BrokenHost(), lambda img, s: 0.0, margin=0.05)
    assert not result.accepted and out is image and "ControlNet is not installed" in result.reason


def test_seam_stage_repaints_only_the_ring():
    image, det, diagnosis = scene()
    step = make_plan(image, det, diagnosis, PlanOptions()).steps[0]
    host = ShiftHost()
    out, result = run_step(image, step, host, fixed_scorer(ShiftHost.shift(step.seed)), margin=0.0)
    assert len(host.requests) == 2
    first, seam = host.requests
    assert first.controls and not seam.controls and seam.denoising_strength == step.seam_denoise
    assert (seam.mask > 0).sum() < (first.mask > 0).sum() * 2
    union = np.maximum(step.mask, step.ring)
    assert np.array_equal(out[union == 0], image[union == 0])


def test_refine_on_a_real_photo_with_an_identity_host_changes_nothing(models_ready, shared_data):
    from lib_humanrefine.images import load_image

    image = load_image(shared_data / "ai" / "handrefiner_1.jpg")
    result = refine(image, IdentityHost(), PlanOptions(policy="all"), EngineOptions(tta=False))
    assert result.steps, "policy 'all' plans a pass for every detected hand and face"
    assert not any(r.accepted for r in result.steps)
    assert np.array_equal(result.image, image) and not result.changed.any()


def test_rediagnose_finds_the_same_hand(models_ready, shared_data):
    from lib_humanrefine.detect import detect
    from lib_humanrefine.images import load_image

    image = load_image(shared_data / "real" / "hamer_test1.jpg")
    det = detect(image)
    diagnosis = diagnose_detections(image, det)
    plan = make_plan(image, det, diagnosis, PlanOptions(policy="all"))
    hand_steps = [s for s in plan.steps if s.kind == "hand"]
    assert hand_steps
    for step in hand_steps:
        again = rediagnose_part(image, step)
        assert again < 1.0  # the hand is found again in its own crop
        blank = image.copy()
        c = step.crop
        blank[c.y0 : c.y1, c.x0 : c.x1] = 128
        assert rediagnose_part(blank, step) == 1.0  # a hand painted over is a lost hand


def test_plan_cli_writes_every_file(models_ready, shared_data, tmp_path):
    out = tmp_path / "plan"
    result = subprocess.run(
        [sys.executable, "-m", "lib_humanrefine", "plan", str(shared_data / "ai" / "handrefiner_1.jpg"),
         "--out", str(out), "--policy", "all", "--prompt", "a man"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plan = json.loads((out / "plan.json").read_text())
    assert plan["steps"] and (out / "overview.png").is_file()
    for step in plan["steps"]:
        n = step["index"]
        expected = {"mask", "ring", "reference"} | ({"depth"} if step["kind"] == "hand" else set())
        assert expected <= set(step["files"])
        for name in expected:
            assert (out / f"step{n}_{name}.png").is_file()
        assert len(step["box"]) == 4 and step["unet_work"] > 0
    assert "vs" in result.stdout and plan["baseline_unet_work"] > 0


@pytest.mark.parametrize("bad", [["--steps", "0"], ["--policy", "some"]])
def test_plan_cli_rejects_bad_options(bad, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lib_humanrefine", "plan", "x.png", *bad], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
