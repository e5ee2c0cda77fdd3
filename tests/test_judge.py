"""The judge (verify/): made-up candidates through the real engine and the real judge, its pixel
numbers on pixels we control, the limit-fitting rule and the benchmark's held-out split."""

from __future__ import annotations

import numpy as np
import pytest

from lib_humanrefine import judge_bench as benchmark
from lib_humanrefine.conditions import masks
from lib_humanrefine.engine import EngineOptions, run_candidate, run_step
from lib_humanrefine.plan import PlanOptions, Step, make_plan
from lib_humanrefine.verify import Judge, Limits, Measures, identity
from lib_humanrefine.verify import candidates as made
from lib_humanrefine.verify.anatomy import Found
from lib_humanrefine.verify.pixels import PixelChange, pixel_change


def planned(image, kind):
    from lib_humanrefine.diagnose import diagnose_image

    detections, diagnosis = diagnose_image(image, learned=False)
    steps = [s for s in make_plan(image, detections, diagnosis, PlanOptions(policy="all")).steps if s.kind == kind]
    assert steps, f"no {kind} step planned"
    return steps[0]


def verdicts(image, step, names, donor=None, other=None):
    """Each named candidate through the engine's compositing and the judge: {name: Verdict}."""
    judge = Judge()
    reference = judge.reference(image, step)
    out = {}
    for name in names:
        context = benchmark.crop_context(step, np.random.default_rng(7))
        context.donor, context.other = donor, other
        candidate = run_candidate(image, step, benchmark.MadeUpHost(made.MAKERS[name], context), step.seed)
        out[name] = judge.decide(judge.measure(image, candidate, step, reference), reference, step.kind)
    return out


# --- the whole judge on real pictures ---------------------------------------------------------


def test_a_face_keeps_its_benign_candidates_and_loses_the_bad_ones(models_ready, astronaut, grace_hopper):
    step = planned(astronaut, "face")
    donor_step = planned(grace_hopper, "face")
    donor = made.Donor(grace_hopper, donor_step.keypoints)
    bad = [name for name in made.BAD if made.applies(name, "face")]
    got = verdicts(astronaut, step, [*made.BENIGN, *bad], donor=donor, other=grace_hopper)
    assert all(got[name].passed for name in made.BENIGN), {n: got[n].reason for n in made.BENIGN}
    assert not any(got[name].passed for name in bad), {n: got[n].reason for n in bad}
    if identity.status()[0] is not None:  # dlib installed: the swap is told by identity
        assert got["other face"].check == "identity" and "changed identity" in got["other face"].reason
    assert got["colour cast"].check == "colour" and got["noise"].check in ("found", "identity", "colour", "seam")


def test_a_hand_keeps_its_benign_candidates_and_loses_the_bad_ones_it_can_see(models_ready, shared_data):
    from lib_humanrefine.images import load_image

    image = load_image(shared_data / "real" / "hamer_test1.jpg")
    other = load_image(shared_data / "real" / "opencvdoc_Hull_Original_Image.jpg")
    step = planned(image, "hand")
    seen = ["colour cast", "blur", "erased", "mirrored", "shifted", "noise", "other picture"]
    got = verdicts(image, step, [*made.BENIGN, *seen], other=other)
    assert all(got[name].passed for name in made.BENIGN), {n: got[n].reason for n in made.BENIGN}
    assert not any(got[name].passed for name in seen), {n: got[n].reason for n in seen}
    assert got["erased"].check == "found" and got["erased"].reason.startswith("hand not found again (presence")


def test_without_dlib_the_judge_says_identity_was_not_checked(models_ready, astronaut, monkeypatch):
    step = planned(astronaut, "face")
    monkeypatch.setattr(identity.importlib.util, "find_spec", lambda name: None)
    identity.forget()
    try:

        class Unchanged:
            def inpaint(self, request):
                return request.image.copy()

        _out, result = run_step(astronaut, step, Unchanged(), options=EngineOptions())
    finally:
        identity.forget()
    assert result.accepted and result.reason == "fixed (1/1 candidates passed; identity not checked)"
    note = result.before.notes[0]
    assert note.startswith("identity not checked: dlib is not installed") and "dlib-bin==20.0.1.post1" in note


# --- the pixel numbers --------------------------------------------------------------------------


def square_step(size=200, part=60) -> Step:
    """A step over a square part in the middle of a size x size picture, with its seam ring."""
    mask = np.zeros((size, size), np.uint8)
    c = size // 2
    mask[c - part // 2 - 15 : c + part // 2 + 15, c - part // 2 - 15 : c + part // 2 + 15] = 255
    from lib_humanrefine.conditions.crop import CropBox
    from lib_humanrefine.diagnose.types import Part

    return Step(
        index=0, kind="hand", part=Part("hand", "left", None, (0, 0, 1, 1), "hand"), category="hand", score=0.0,
        mask=mask, ring=masks.ring(mask, 10, 10), crop=CropBox(0, 0, size, size), size=(512, 512), controls=[],
        prompt="", negative_prompt="", denoise=0.5, seed=0, steps=20, cfg_scale=7.0, candidates=1, seam_denoise=0.3,
        part_size=float(part),
    )  # fmt: skip


def textured(size=200) -> np.ndarray:
    rng = np.random.default_rng(3)
    base = np.kron(rng.integers(60, 200, (size // 8, size // 8, 3)), np.ones((8, 8, 1)))
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def test_pixel_numbers_see_a_cast_a_moved_patch_and_a_blur_where_the_step_writes():
    import cv2

    image, step = textured(), square_step()
    region = np.maximum(step.mask, step.ring) > 0
    same = pixel_change(image, image, step)
    assert same.colour == 0 and same.seam == 0 and same.detail == pytest.approx(1.0)
    cast = image.copy()
    cast[region] = np.clip(cast[region] * np.array([1.35, 1.0, 0.7]), 0, 255).astype(np.uint8)
    assert pixel_change(image, cast, step).colour > 5
    moved = image.copy()
    moved[region] = np.roll(image, 16, axis=1)[region]  # the same colours, shifted
    change = pixel_change(image, moved, step)
    assert change.seam > 3 and change.colour < change.seam
    blurred = image.copy()
    blurred[region] = cv2.GaussianBlur(image, (0, 0), 4)[region]
    assert pixel_change(image, blurred, step).detail < 0.5
    outside = image.copy()
    outside[~region] = 0  # changes outside the region are not the candidate's
    assert pixel_change(image, outside, step).colour == 0


# --- fitting the limits -------------------------------------------------------------------------


def test_a_limit_is_the_loosest_that_still_catches_the_target_share_unless_benign_ones_would_fail():
    bad = np.linspace(1.0, 10.0, 10)  # 10 bad values
    assert benchmark.fit_limit(np.array([0.1, 0.2]), bad, 0.9, ">") == pytest.approx(np.quantile(bad, 0.1))
    # benign values reaching past that: the benign ones decide (no more than 1 % of them rejected)
    benign = np.linspace(0.0, 5.0, 101)
    assert benchmark.fit_limit(benign, bad, 0.9, ">") == pytest.approx(np.quantile(benign, 0.99))
    # "<" checks (detail): reject below the limit
    assert benchmark.fit_limit(np.array([0.9, 1.0]), np.array([0.1, 0.2, 0.3]), 0.5, "<") == pytest.approx(0.2)


def row(group, candidate, colour, kind="hand"):
    measures = Measures(found=Found(1.0, 0.0), pixels=PixelChange(colour, 0.0, 1.0))
    return benchmark.Row(
        "img", group, kind, candidate, candidate in made.BAD, measures, Measures(found=Found(1.0, 0.0))
    )


def test_held_out_limits_are_never_fitted_on_the_group_they_judge():
    rows = [row(g, "unchanged", 0.1) for g in "abc"] + [
        row(g, "colour cast", c) for g, c in zip("abc", (3.0, 3.0, 9.0))
    ]
    kept, per_group = benchmark.held_out(rows, Limits())
    # group c's casts are far stronger: its limit comes from a's and b's alone, theirs include c's
    assert per_group["c"].colour == pytest.approx(3.0)
    assert per_group["a"].colour == pytest.approx(np.quantile([3.0, 9.0], 0.1))
    # a's and b's weak casts pass a limit that c's strong one raised; c's cast fails a's and b's
    assert kept == [True, True, True, True, True, False]
    table = {line["candidate"]: line["hand"] for line in benchmark.table(rows, kept)}
    assert table["unchanged"] == {"n": 3, "kept": 1.0} and table["colour cast"] == {"n": 3, "kept": 0.667}


def test_published_pairs_are_found_by_name(tmp_path):
    for name in ("a_original.png", "a_refined.png", "b_before.jpg", "b_after.jpg", "c_original.png", "d_refined.png"):
        (tmp_path / name).write_bytes(b"")
    pairs = {(p.name, q.name) for p, q in benchmark.find_pairs([tmp_path])}
    assert pairs == {("a_original.png", "a_refined.png"), ("b_before.jpg", "b_after.jpg")}


def test_a_published_pair_is_judged_as_the_engine_would_composite_it(models_ready, astronaut, tmp_path):
    from PIL import Image

    step = planned(astronaut, "face")
    x0, y0, x1, y1 = (int(v) for v in step.part.box)
    cast = astronaut.copy()  # a "fix" that tints the face and its surroundings red
    cast[max(0, y0 - 40) : y1 + 40, max(0, x0 - 40) : x1 + 40] = np.clip(
        cast[max(0, y0 - 40) : y1 + 40, max(0, x0 - 40) : x1 + 40] * np.array([1.35, 1.0, 0.7]), 0, 255
    ).astype(np.uint8)
    Image.fromarray(astronaut).save(tmp_path / "a_original.png")
    Image.fromarray(cast).save(tmp_path / "a_refined.png")
    ((before, after),) = benchmark.find_pairs([tmp_path])
    face = next(s for s in benchmark.judge_pair(before, after, Judge()) if s["part"].endswith("face"))
    assert face["kept"] is False and face["reason"].startswith("colour shifted at the seam")
    Image.fromarray(astronaut).save(tmp_path / "a_refined.png")  # the "fix" changed nothing
    ((before, after),) = benchmark.find_pairs([tmp_path])
    assert all(
        s.get("published fix") == "does not touch this part" for s in benchmark.judge_pair(before, after, Judge())
    )
