import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from conftest import REPO
from stand_in_host import BrokenHost, IdentityHost, ShiftHost
from synthetic import normal_hand, person, stretch_bone

from lib_humanrefine.conditions import masks
from lib_humanrefine.detect.types import Detections
from lib_humanrefine.diagnose import diagnose_detections
from lib_humanrefine.engine import EngineOptions, apply_candidate, refine, run_step
from lib_humanrefine.hosts.base import HostInterrupted
from lib_humanrefine.plan import PartChoice, PlanOptions, make_plan
from lib_humanrefine.verify import Judge, Measures
from lib_humanrefine.verify.anatomy import Found
from lib_humanrefine.verify.pixels import PixelChange


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


def measured(presence=1.0, error=0.0, colour=0.0, seam=0.0, detail=1.0, **found) -> Measures:
    """What a judge might measure of one image of a step (made up; the decisions are the real judge's)."""
    return Measures(found=Found(presence, error, **found), pixels=PixelChange(colour, seam, detail))


class ScriptedJudge(Judge):
    """The real judge's decisions on made-up measurements: ``script(candidate, step)`` (or the next
    of a list) is what a candidate measures; the original measures as ``original``."""

    def __init__(self, script, original: Measures | None = None, **kwargs):
        super().__init__(**kwargs)
        if not callable(script):
            answers = iter(script)
            script = lambda _img, _step: next(answers)  # noqa: E731
        self.script = script
        self.original = original or measured()
        self.image = None

    def reference(self, image, step):
        self.image = image
        return self.original

    def measure(self, original, candidate, step, reference):
        return self.script(candidate, step)


def fixed_judge(best_shift):
    """Measures a candidate by how far its masked pixels moved from ``best_shift``: the skeleton error
    grows with the distance, so the candidate shifted by ``best_shift`` follows its skeleton best."""

    def script(img, step):
        moved = (img.astype(int) - judge.image.astype(int))[step.mask > 0].mean()
        return measured(error=min(0.1, abs(moved - best_shift) / 500))

    judge = ScriptedJudge(script)
    return judge


def constant_judge(**values):
    return ScriptedJudge(lambda _img, _step: measured(**values))


def test_best_candidate_is_kept_and_outside_pixels_are_untouched():
    image, det, diagnosis = scene()
    plan = make_plan(image, det, diagnosis, PlanOptions(candidates=3, seam_pass=False))
    step = plan.steps[0]
    host = ShiftHost(spread=50)  # three plainly different candidates
    seeds = [step.seed + 7919 * c for c in range(3)]
    target = host.shift(seeds[1])
    out, result = run_step(image, step, host, fixed_judge(target))
    assert result.accepted and len(result.candidates) == 3 and result.chosen == 1
    assert [r.seed for r in host.requests] == seeds and result.reason == "fixed (3/3 candidates passed)"
    assert np.array_equal(out[step.mask == 0], image[step.mask == 0])  # bit-identical outside the mask
    core = masks.erode(step.mask, 15) > 0  # where the feathered alpha is 1
    moved = (out[core].astype(int) - image[core]).mean()  # the crop's resampling adds noise, not bias
    assert abs(moved - target) < 3  # the chosen seed's pixels


def test_a_part_the_diagnosis_has_no_opinion_about_is_fixed_when_it_is_found_on_its_skeleton():
    """The old rule (keep only if the score drops by a margin) never kept a fix of a part scoring 0."""
    image, det, diagnosis = scene(broken=False)
    step = make_plan(image, det, diagnosis, PlanOptions(policy="all", seam_pass=False)).steps[0]
    assert step.score == 0.0
    out, result = run_step(image, step, ShiftHost(), constant_judge(error=0.05))
    assert result.accepted and out is not image and result.after.found.skeleton_error == 0.05


@pytest.mark.parametrize(
    "candidate, reason",
    [
        (measured(presence=0.1), "hand not found again (presence 0.10 < 0.50)"),
        (measured(side="left", side_score=0.95), "the right hand became a left hand"),
        (measured(error=0.4), "skeleton moved 0.40 > 0.15"),
        (measured(colour=6.0), "colour shifted at the seam (ΔE 6.0 > 4.2)"),
        (measured(seam=5.0), "seam: the surroundings no longer match (5.0 > 3.8)"),
        (measured(detail=0.2), "blurred (detail 0.20 < 0.40)"),
    ],
)
def test_a_candidate_that_fails_a_check_is_reverted_and_the_reason_names_it(candidate, reason):
    image, det, diagnosis = scene(broken=False)
    step = make_plan(image, det, diagnosis, PlanOptions(policy="all", seam_pass=False, candidates=2)).steps[0]
    original = measured(side="right", side_score=0.97)
    out, result = run_step(image, step, ShiftHost(), ScriptedJudge([candidate, candidate], original))
    assert not result.accepted and out is image
    assert result.reason == f"kept: {reason}" and result.passed == 0
    assert result.phrase() == f"right hand kept: {reason}"
    # verification off keeps the best candidate whatever the checks say (ADetailer-like)
    judge = ScriptedJudge([candidate, candidate], original)
    out, result = run_step(image, step, ShiftHost(), judge, EngineOptions(verify=False))
    assert result.accepted and result.reason == "fixed (not verified)"


def test_a_face_that_became_someone_else_is_reverted_with_the_distance():
    image, det, diagnosis = scene(broken=False)
    step = make_plan(image, det, diagnosis, PlanOptions(policy="all", seam_pass=False)).steps[0]
    step.kind = "face"  # the judge decides by the step's kind; the scripted numbers stand for a face
    swapped = Measures(found=Found(0.99, 0.02), identity=0.71, pixels=PixelChange(0.3, 0.4, 1.0))
    out, result = run_step(image, step, ShiftHost(), ScriptedJudge([swapped]))
    assert not result.accepted and result.reason == "kept: candidate changed identity (0.71 > 0.45)"
    assert result.candidates[0].check == "identity" and result.candidates[0].describe()["identity"] == 0.71


def test_candidates_failing_differently_are_all_named():
    image, det, diagnosis = scene(broken=False)
    step = make_plan(image, det, diagnosis, PlanOptions(policy="all", seam_pass=False, candidates=2)).steps[0]
    judge = ScriptedJudge([measured(colour=6.0), measured(presence=0.0)])
    _out, result = run_step(image, step, ShiftHost(), judge)
    assert result.reason == (
        "kept: no candidate passed (colour shifted at the seam (ΔE 6.0 > 4.2); "
        "hand not found again (presence 0.00 < 0.50))"
    )


def test_failing_host_keeps_the_image_and_says_why():
    image, det, diagnosis = scene()
    step = make_plan(image, det, diagnosis, PlanOptions()).steps[0]
    out, result = run_step(image, step, BrokenHost(), constant_judge())
    assert not result.accepted and out is image and "ControlNet is not installed" in result.reason


def test_seam_stage_repaints_only_the_ring():
    image, det, diagnosis = scene()
    step = make_plan(image, det, diagnosis, PlanOptions()).steps[0]
    host = ShiftHost()
    out, result = run_step(image, step, host, fixed_judge(host.shift(step.seed)))
    assert len(host.requests) == 2
    first, seam = host.requests
    assert first.controls and not seam.controls and seam.denoising_strength == step.seam_denoise
    assert (seam.mask > 0).sum() < (first.mask > 0).sum() * 2
    union = np.maximum(step.mask, step.ring)
    assert np.array_equal(out[union == 0], image[union == 0])


def two_hand_scene():
    image = np.random.default_rng(1).integers(60, 200, (480, 640, 3), dtype=np.uint8)
    hands = [normal_hand(scale=40, origin=(150.0, 300.0)), normal_hand(scale=40, origin=(450.0, 300.0))]
    det = Detections(640, 480, people=[], hands=hands)
    return image, det, diagnose_detections(image, det, tta=False)


def test_interrupt_between_steps_keeps_what_was_accepted(monkeypatch):
    image, det, diagnosis = two_hand_scene()
    monkeypatch.setattr("lib_humanrefine.engine.diagnose_image", lambda img, **kw: (det, diagnosis))
    calls = []

    def stop():  # the user presses Interrupt while the second hand's pass runs
        calls.append(1)
        return "interrupted" if len(calls) >= 4 else None

    host = ShiftHost()
    result = refine(image, host, PlanOptions(policy="all", seam_pass=False), judge=constant_judge(), should_stop=stop)
    assert result.stopped == "interrupted" and len(host.requests) == 2  # the second pass was cut short
    first, second = result.steps
    assert first.accepted and not second.accepted and second.reason == "not finished" and second.candidates == []
    plan = result.plans[0]
    untouched = np.maximum(plan.steps[0].mask, plan.steps[0].ring) == 0
    assert np.array_equal(result.image[untouched], image[untouched])  # the cut-short pass left no trace
    assert result.summary().endswith("(stopped: interrupted)") and "fixed" in result.summary()


def test_a_host_reporting_interruption_stops_the_run(monkeypatch):
    image, det, diagnosis = two_hand_scene()
    monkeypatch.setattr("lib_humanrefine.engine.diagnose_image", lambda img, **kw: (det, diagnosis))

    class SkippingHost:
        def inpaint(self, request):
            raise HostInterrupted("skipped")

    result = refine(image, SkippingHost(), PlanOptions(policy="all"), judge=constant_judge())
    assert result.stopped == "skipped" and np.array_equal(result.image, image)


def test_progress_names_part_and_candidate_and_kept_candidates_can_be_swapped(monkeypatch):
    image, det, diagnosis = two_hand_scene()
    monkeypatch.setattr("lib_humanrefine.engine.diagnose_image", lambda img, **kw: (det, diagnosis))
    seen = []
    result = refine(
        image, ShiftHost(), PlanOptions(policy="all", candidates=2, seam_pass=False),
        EngineOptions(keep_candidates=True), judge=constant_judge(), progress=seen.append,
    )  # fmt: skip
    assert seen == ["right hand 1/2", "right hand 2/2", "right hand 1/2", "right hand 2/2"]
    step, outcome = result.plans[0].steps[0], result.steps[0]
    other = outcome.candidates[1 - outcome.chosen]
    swapped = apply_candidate(result.image, step, other)
    c = step.crop
    inside = step.mask[c.y0 : c.y1, c.x0 : c.x1] > 0
    assert np.array_equal(swapped[c.y0 : c.y1, c.x0 : c.x1][inside], other.patch[inside])
    outside = np.maximum(step.mask, step.ring) == 0
    assert np.array_equal(swapped[outside], result.image[outside])


def test_summary_line_reads_like_the_issue_asks():
    image, det, diagnosis = scene()
    step = make_plan(image, det, diagnosis, PlanOptions(candidates=3, seam_pass=False)).steps[0]
    judge = ScriptedJudge([measured(error=0.1), measured(presence=0.0), measured(error=0.05)])
    _out, fixed = run_step(image, step, ShiftHost(), judge)
    assert fixed.phrase() == "right hand fixed (2/3 candidates passed)" and fixed.chosen == 2  # nearest its skeleton


def test_refine_on_a_real_photo_with_an_identity_host_changes_nothing_outside_accepted_regions(
    models_ready, shared_data
):
    from lib_humanrefine.images import load_image

    image = load_image(shared_data / "ai" / "handrefiner_1.jpg")
    result = refine(image, IdentityHost(), PlanOptions(policy="all"), EngineOptions(tta=False))
    assert result.steps, "policy 'all' plans a pass for every detected hand and face"
    # the identity host returns the crop itself: parts are found again where they were
    assert any(r.accepted for r in result.steps)
    for r in result.steps:
        if r.accepted:
            assert r.after.found
    region = result.changed > 0
    diff = np.abs(result.image.astype(int) - image.astype(int))
    assert not diff[~region].any() and diff[region].mean() < 4  # only resampling noise inside


def test_the_judge_finds_an_unchanged_hand_again_and_rejects_it_moved_or_painted_over(models_ready, shared_data):
    from lib_humanrefine.detect import detect
    from lib_humanrefine.images import load_image

    image = load_image(shared_data / "real" / "hamer_test1.jpg")
    det = detect(image)
    diagnosis = diagnose_detections(image, det)
    plan = make_plan(image, det, diagnosis, PlanOptions(policy="all"))
    hand_steps = [s for s in plan.steps if s.kind == "hand"]
    assert hand_steps
    judge = Judge()
    for step in hand_steps:
        original = judge.reference(image, step)
        again = judge.measure(image, image, step, original)
        assert original.found.presence > 0.5 and again.found.skeleton_error < 0.05  # its own crop: the same skeleton
        assert judge.decide(again, original, step.kind).passed
        shifted = image.copy()  # the hand's pixels moved by a third of its size: the skeleton no longer fits
        c = step.crop
        dx = int(step.part_size / 3)
        shifted[c.y0 : c.y1, c.x0 + dx : c.x1] = image[c.y0 : c.y1, c.x0 : c.x1 - dx]
        moved = judge.decide(judge.measure(image, shifted, step, original), original, step.kind)
        assert moved.check in ("found", "side", "skeleton", "seam")  # lost, off its skeleton, or a visible seam
        blank = image.copy()
        blank[c.y0 : c.y1, c.x0 : c.x1] = 128
        painted = judge.decide(judge.measure(image, blank, step, original), original, step.kind)
        assert painted.check == "found" and painted.reason.startswith("hand not found again")


def test_policy_off_kinds_strengths_and_explicit_choices():
    image, det, diagnosis = two_hand_scene()
    assert make_plan(image, det, diagnosis, PlanOptions(policy="off")).steps == []
    assert make_plan(image, det, diagnosis, PlanOptions(policy="all", kinds=("face", "pose"))).steps == []
    plan = make_plan(image, det, diagnosis, PlanOptions(policy="all", strength={"hand": 0.7, "face": 0.3, "pose": 0.6}))
    assert [s.denoise for s in plan.steps] == [0.7, 0.7]  # no severity bump for a normal hand
    picked = make_plan(
        image, det, diagnosis,
        PlanOptions(policy="off", choices=[PartChoice(1, denoise=0.42, candidates=3, control_weight=0.8)]),
    )  # fmt: skip
    (step,) = picked.steps
    assert step.part is diagnosis.parts[1] and step.denoise == 0.42 and step.candidates == 3
    assert step.controls[0].kind == "depth" and step.controls[0].weight == 0.8
    no_controls = make_plan(
        image, det, diagnosis, PlanOptions(choices=[PartChoice(0, control_weight=0.0, reference_weight=0.0)])
    )
    assert no_controls.steps[0].controls == []


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
    assert "the work of one pass per detected hand and face" in result.stdout and plan["baseline_unet_work"] > 0


@pytest.mark.parametrize("bad", [["--steps", "0"], ["--policy", "some"]])
def test_plan_cli_rejects_bad_options(bad, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lib_humanrefine", "plan", "x.png", *bad], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_of_two_equally_broken_hands_the_larger_is_fixed_first():
    image = np.random.default_rng(0).integers(60, 200, (480, 640, 3), dtype=np.uint8)
    small = stretch_bone(normal_hand(scale=30, origin=(150.0, 300.0)), "ring", 0, 3.0)
    large = stretch_bone(normal_hand(scale=45, origin=(450.0, 300.0)), "ring", 0, 3.0)
    det = Detections(640, 480, people=[], hands=[small, large])
    diagnosis = diagnose_detections(image, det, tta=False)
    assert diagnosis.parts[0].score == diagnosis.parts[1].score == 1.0
    steps = make_plan(image, det, diagnosis, PlanOptions()).steps
    assert [s.part.index for s in steps] == [1, 0]


def test_a_coarse_step_is_judged_by_its_anatomy_not_by_its_rings_pixels():
    """A pose step regenerates a whole limb on purpose: its ring's coarse picture may change."""
    judge = Judge()
    changed = measured(colour=9.0, seam=9.0, detail=0.1)
    assert judge.decide(changed, measured(), "pose").passed
    assert judge.decide(measured(error=0.5), measured(), "pose").check == "skeleton"
    assert judge.decide(changed, measured(), "hand").check == "colour"


def test_the_severity_bump_goes_to_flagged_parts_only_so_a_tags_strength_is_the_one_used():
    image, det, diagnosis = scene()  # one malformed hand
    hand = diagnosis.parts[0]
    assert hand.score > 0
    strength = {"hand": 0.45, "face": 0.35, "pose": 0.6}  # e.g. <humanrefine:hands:0.45>
    below = make_plan(
        image, det, replace(diagnosis, threshold=hand.score + 0.01), PlanOptions(policy="all", strength=strength)
    )
    assert below.steps[0].denoise == 0.45  # not flagged: exactly the strength asked for
    at = make_plan(image, det, replace(diagnosis, threshold=hand.score), PlanOptions(policy="all", strength=strength))
    assert at.steps[0].denoise == round(min(0.95, 0.45 + 0.3 * hand.score), 3)  # flagged: more, the worse it scores
