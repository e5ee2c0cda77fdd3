"""Run stage: each planned step goes to a Host as an InpaintRequest; the result is composited with
the step's feathered mask and **verified**; the best verified candidate (different seeds) is kept,
otherwise the step reverts.

Verification works even when the diagnosis has no opinion about a part (a normal-looking hand
scores 0 before and after): a candidate passes when

1. the part is detected again where it was (a hand, a face mesh, the person's pose);
2. its re-detected keypoints follow the skeleton the controls asked for — HandRefiner's adaptive
   check: the mean distance between re-estimated and intended keypoints, divided by the part's
   size, exceeds the original's own re-detection error by no more than a limit per kind;
3. its diagnosis score is not worse than the original's by more than a margin.

Passing candidates are ranked by score, then by skeleton error. With verification off the best
candidate by score is kept whatever the checks say (ADetailer-like behaviour).

Pixels outside the union of accepted steps' masks are never written: compositing uses alphas
whose support lies inside each step's mask, and a rejected step leaves the image as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from .conditions import masks
from .conditions.crop import CropBox, crop_image
from .detect import Detections
from .detect.geometry import overlap_of_smaller
from .diagnose import DEFAULT_THRESHOLD, Diagnosis, diagnose_image
from .hosts.base import Host, HostInterrupted, InpaintRequest
from .plan import Plan, PlanOptions, Step, make_plan, step_inputs

SEAM_TEXT = "seamless, natural skin and lighting"
# How much farther (mean keypoint distance / part size) a candidate's re-detected skeleton may lie
# from the intended one than the original's own re-detection does. Re-detecting an unchanged part
# in its window already differs from the full-image detection (development images: hands p50 0.03,
# p90 0.20; faces p50 0.02, p90 0.06), so the limit is added to the original's own error.
SKELETON_LIMITS = {"hand": 0.15, "face": 0.1, "pose": 0.15}


@dataclass
class EngineOptions:
    margin: float = 0.05  # a candidate may score at most this much worse than the original
    threshold: float = DEFAULT_THRESHOLD
    tta: bool = True
    verify: bool = True  # False: keep the best-scoring candidate without the checks
    skeleton_limits: dict[str, float] = field(default_factory=lambda: dict(SKELETON_LIMITS))
    keep_candidates: bool = False  # keep every candidate's pixels (the tab shows them)
    learned: bool = True  # the learned check when the image is diagnosed again to re-plan


@dataclass
class Check:
    """What re-detection says about a part in one image."""

    found: bool
    score: float  # the part's diagnosis score (1.0 when it is not found)
    skeleton_error: float | None = None  # mean keypoint distance / part size; None = not measurable

    def describe(self) -> dict:
        err = None if self.skeleton_error is None else round(self.skeleton_error, 3)
        return {"found": self.found, "score": round(self.score, 3), "skeleton_error": err}


Checker = Callable[[np.ndarray, Step], Check]
Progress = Callable[[str], None]
StopCheck = Callable[[], "str | None"]  # a reason ("interrupted", "skipped") to stop, or None


@dataclass
class Candidate:
    seed: int
    check: Check | None = None  # None: the host failed
    passed: bool = False
    reason: str = ""  # why it failed the checks (or the host error)
    patch: np.ndarray | None = field(default=None, repr=False)  # the step's crop of this candidate

    def describe(self) -> dict:
        out = {"seed": self.seed, "passed": self.passed, "reason": self.reason}
        if self.check is not None:
            out.update(self.check.describe())
        return out


@dataclass
class StepResult:
    index: int
    kind: str
    part: str
    before: Check
    accepted: bool = False
    chosen: int | None = None  # index into candidates of the kept one
    candidates: list[Candidate] = field(default_factory=list)
    reason: str = ""
    crop: CropBox | None = None
    step: Step | None = field(default=None, repr=False)  # what ran (the tab swaps candidates with it)

    @property
    def after(self) -> Check | None:
        return None if self.chosen is None else self.candidates[self.chosen].check

    @property
    def passed(self) -> int:
        return sum(c.passed for c in self.candidates)

    def phrase(self) -> str:
        """A few words for the one-line summary, e.g. ``P1 left hand fixed (2/3 candidates passed)``."""
        return f"{self.part} {self.reason}"

    def describe(self) -> dict:
        return {
            "index": self.index, "kind": self.kind, "part": self.part, "accepted": self.accepted,
            "chosen": self.chosen, "reason": self.reason, "before": self.before.describe(),
            "candidates": [c.describe() for c in self.candidates],
            "crop": None if self.crop is None else self.crop.as_list(),
        }  # fmt: skip


@dataclass
class RefineResult:
    image: np.ndarray
    steps: list[StepResult]
    changed: np.ndarray  # uint8 mask: union of accepted steps' regions
    plans: list[Plan]
    stopped: str | None = None  # "interrupted" / "skipped" when the run was cut short

    def summary(self) -> str:
        """One line for the infotext: what happened to each step."""
        if not self.steps:
            return "nothing to fix" if not self.stopped else f"not run: {self.stopped}"
        text = ", ".join(r.phrase() for r in self.steps)
        return f"{text} (stopped: {self.stopped})" if self.stopped else text

    def describe(self) -> dict:
        return {
            "summary": self.summary(), "stopped": self.stopped, "steps": [r.describe() for r in self.steps],
            "accepted": sum(r.accepted for r in self.steps), "changed_pixels": int((self.changed > 0).sum()),
        }  # fmt: skip


# --- checking a part ------------------------------------------------------------------------


def score_window(step: Step, shape) -> CropBox:
    """Where a part is re-diagnosed: its crop, grown to the part's whole box for coarse steps
    (a limb alone does not show the pose model a person)."""
    crop = step.crop
    if step.kind != "pose":
        return crop
    x0, y0, x1, y1 = step.part.box
    pad = 0.15 * max(x1 - x0, y1 - y0)
    h, w = shape[:2]
    return CropBox(
        max(0, min(crop.x0, int(x0 - pad))), max(0, min(crop.y0, int(y0 - pad))),
        min(w, max(crop.x1, int(x1 + pad))), min(h, max(crop.y1, int(y1 + pad))),
    )  # fmt: skip


def skeleton_error(found: np.ndarray, intended: np.ndarray | None, size: float) -> float | None:
    """Mean distance between corresponding keypoints (NaN rows skipped) divided by ``size``."""
    if intended is None or size <= 0 or found.shape[0] != intended.shape[0]:
        return None
    both = np.isfinite(found).all(axis=1) & np.isfinite(intended).all(axis=1)
    if both.sum() < 3:
        return None
    return float(np.linalg.norm(found[both] - intended[both], axis=1).mean() / size)


def _part_keypoints(detections, part) -> np.ndarray | None:
    """The re-detected part's 2D keypoints in the window's pixels (NaN where not visible)."""
    if part.kind == "hand":
        return detections.hands[part.index].landmarks[:, :2]
    if part.kind == "face":
        landmarks = detections.faces[part.index].landmarks
        return None if landmarks is None else landmarks[:, :2]
    person = detections.people[part.index]
    return np.where((person.visibility >= 0.5)[:, None], person.landmarks[:, :2], np.nan)


def check_part(image: np.ndarray, step: Step, threshold: float = DEFAULT_THRESHOLD, tta: bool = True) -> Check:
    """Diagnose the window around the step's part and find that part again: among parts of the
    same kind overlapping the step's region, the one whose keypoints lie closest to the intended
    skeleton (or the worst-scoring one when that cannot be measured)."""
    if step.kind == "region":  # drawn by the user: no detector to ask; the user compares
        return Check(True, 0.0)
    window = score_window(step, image.shape)
    view = crop_image(image, window)
    # Landmark signals only: the learned check judges whole images, and a crop window's score moves
    # by 0.05-0.2 with unrelated pixel changes, which would make "no worse" a coin toss.
    detections, diagnosis = diagnose_image(view, threshold=threshold, tta=tta, learned=False)
    bx0, by0, bx1, by1 = step.box
    region = (bx0 - window.x0, by0 - window.y0, bx1 - window.x0, by1 - window.y0)
    kind = {"hand": "hand", "face": "face"}.get(step.kind, "body")
    same = [p for p in diagnosis.parts if p.kind == kind and overlap_of_smaller(p.box, region) > 0.2]
    if not same:
        return Check(False, 1.0)
    intended = None if step.keypoints is None else step.keypoints - (window.x0, window.y0)
    measured = []
    for part in same:
        points = _part_keypoints(detections, part)
        error = None if points is None else skeleton_error(points, intended, step.part_size)
        measured.append((part, error))
    with_error = [m for m in measured if m[1] is not None]
    part, error = min(with_error, key=lambda m: m[1]) if with_error else max(measured, key=lambda m: m[0].score)
    return Check(True, part.score, error)


def rediagnose_part(image: np.ndarray, step: Step, threshold: float = DEFAULT_THRESHOLD, tta: bool = True) -> float:
    """The step's part scored again; 1.0 when that part is no longer found at all."""
    return check_part(image, step, threshold, tta).score


def judge(candidate: Check, before: Check, step: Step, options: EngineOptions) -> str:
    """Empty when the candidate passes the checks, else the first reason it fails."""
    if not candidate.found:
        return f"{step.kind if step.kind != 'pose' else 'person'} not found again"
    limit = options.skeleton_limits.get(step.kind)
    if limit is not None and candidate.skeleton_error is not None:
        allowed = limit + (before.skeleton_error or 0.0)
        if candidate.skeleton_error > allowed:
            return f"skeleton moved {candidate.skeleton_error:.2f} > {allowed:.2f}"
    if candidate.score > before.score + options.margin:
        return f"scores worse {candidate.score:.2f} vs {before.score:.2f}"
    return ""


# --- running a step -------------------------------------------------------------------------


def _paste(image: np.ndarray, step: Step, generated: np.ndarray, region: np.ndarray, feather_px: float) -> np.ndarray:
    """Composite a generated crop (any size) into a copy of ``image`` within ``region``."""
    crop = step.crop
    back = cv2.resize(generated, (crop.width, crop.height), interpolation=cv2.INTER_AREA)
    alpha = masks.feather(region[crop.y0 : crop.y1, crop.x0 : crop.x1], feather_px)
    out = image.copy()
    out[crop.y0 : crop.y1, crop.x0 : crop.x1] = masks.composite(
        image[crop.y0 : crop.y1, crop.x0 : crop.x1], back, alpha
    )
    return out


def _checked(result: np.ndarray) -> np.ndarray:
    array = np.asarray(result)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(
            f"host returned an image of shape {array.shape} and type {array.dtype}; expected H x W x 3 uint8"
        )
    return array


def run_candidate(image: np.ndarray, step: Step, host: Host, seed: int) -> np.ndarray:
    """Stage 1 (the part, with its controls) and, for fine steps, stage 2 (the seam ring)."""
    crop, crop_mask = step_inputs(image, step)
    request = InpaintRequest(
        image=crop, mask=crop_mask, size=step.size, prompt=step.prompt, negative_prompt=step.negative_prompt,
        seed=seed, steps=step.steps, cfg_scale=step.cfg_scale, denoising_strength=step.denoise, controls=step.controls,
        label=step.part.label(),
    )  # fmt: skip
    feather_px = max(2.0, 0.04 * max(step.crop.width, step.crop.height))
    out = _paste(image, step, _checked(host.inpaint(request)), step.mask, feather_px)
    if step.seam_denoise > 0 and step.ring.any():
        crop2 = crop_image(out, step.crop, step.size)
        ring_mask = crop_image(step.ring, step.crop, step.size, cv2.INTER_NEAREST)
        seam = InpaintRequest(
            image=crop2, mask=ring_mask, size=step.size, prompt=f"{step.prompt}, {SEAM_TEXT}",
            negative_prompt=step.negative_prompt, seed=seed + 1, steps=step.steps, cfg_scale=step.cfg_scale,
            denoising_strength=step.seam_denoise, label=f"{step.part.label()} seam",
        )  # fmt: skip
        out = _paste(out, step, _checked(host.inpaint(seam)), step.ring, feather_px / 2)
    return out


class Stopped(Exception):
    """The user interrupted or skipped: keep the image as it is."""

    def __init__(self, reason: str, result: StepResult | None = None):
        super().__init__(reason)
        self.reason = reason
        self.result = result  # the step that was running, with what it had done


def _stop_check(should_stop: StopCheck | None) -> None:
    reason = should_stop() if should_stop else None
    if reason:
        raise Stopped(reason)


def run_step(
    image: np.ndarray, step: Step, host: Host, checker: Checker, options: EngineOptions | None = None,
    progress: Progress | None = None, should_stop: StopCheck | None = None,
) -> tuple[np.ndarray, StepResult]:  # fmt: skip
    """Try ``step.candidates`` seeds; keep the best verified candidate, else the original.
    Raises ``Stopped`` (before or right after a candidate, which is then discarded) when asked."""
    options = options or EngineOptions()
    result = StepResult(step.index, step.kind, step.part.label(), checker(image, step), crop=step.crop, step=step)
    try:
        return _run_candidates(image, step, host, checker, options, progress, should_stop, result)
    except Stopped as stop:
        result.reason = "not finished"
        raise Stopped(stop.reason, result) from None


def _run_candidates(image, step, host, checker, options, progress, should_stop, result):
    images: list[np.ndarray | None] = []
    for c in range(step.candidates):
        seed = step.seed + 7919 * c
        if progress:
            progress(f"{step.part.label()} {c + 1}/{step.candidates}")
        _stop_check(should_stop)
        candidate = Candidate(seed)
        try:
            out = run_candidate(image, step, host, seed)
        except HostInterrupted as exc:
            raise Stopped(exc.reason) from None
        except Exception as exc:  # a failing host must not cost the user the image
            candidate.reason = f"host failed ({exc.__class__.__name__}: {exc})"
            result.candidates.append(candidate)
            images.append(None)
            continue
        _stop_check(should_stop)  # a pass cut short by the user is not a candidate
        candidate.check = checker(out, step)
        candidate.reason = judge(candidate.check, result.before, step, options)
        candidate.passed = not candidate.reason
        if options.keep_candidates:
            candidate.patch = crop_image(out, step.crop)
        result.candidates.append(candidate)
        images.append(out)
    ran = [i for i, c in enumerate(result.candidates) if c.check is not None]
    eligible = [i for i in ran if result.candidates[i].passed or not options.verify]
    n = len(result.candidates)
    if eligible:
        best = min(eligible, key=lambda i: (result.candidates[i].check.score, _error_key(result.candidates[i])))
        result.accepted, result.chosen = True, best
        verified = options.verify and step.kind != "region"
        passed = f"{result.passed}/{n} candidates passed" if verified else "not verified"
        result.reason = f"fixed ({passed})"
        return images[best], result
    if not ran:
        result.reason = f"kept: the host failed ({result.candidates[0].reason.removeprefix('host failed (')[:-1]})"
    else:
        reasons = sorted({result.candidates[i].reason for i in ran})
        result.reason = f"kept: no candidate passed ({'; '.join(reasons)})"
    return image, result


def _error_key(candidate: Candidate) -> float:
    error = candidate.check.skeleton_error if candidate.check else None
    return float("inf") if error is None else error


def refine(
    image: np.ndarray,
    host: Host,
    plan_options: PlanOptions | None = None,
    options: EngineOptions | None = None,
    checker: Checker | None = None,
    progress: Progress | None = None,
    should_stop: StopCheck | None = None,
    initial: tuple[Detections, Diagnosis] | None = None,
    extra_steps: list[Step] | None = None,
) -> RefineResult:
    """Diagnose (or take ``initial``, the image's detections and diagnosis), plan, and run: coarse
    steps first; if any was accepted, the image is diagnosed and planned again before the fine
    steps (the limbs, and so the hands, may have moved). Interrupt/skip (``should_stop``) ends the
    run between candidates, keeping what was accepted. ``extra_steps`` (regions the user drew) run
    last."""
    plan_options = plan_options or PlanOptions()
    options = options or EngineOptions()
    check = checker or (lambda img, step: check_part(img, step, options.threshold, options.tta))
    current = image
    changed = np.zeros(image.shape[:2], np.uint8)
    results: list[StepResult] = []
    plans: list[Plan] = []

    def planned(known: tuple[Detections, Diagnosis] | None = None) -> Plan:
        detections, diagnosis = known or diagnose_image(
            current, threshold=options.threshold, tta=options.tta, learned=options.learned
        )
        plan = make_plan(current, detections, diagnosis, plan_options)
        plans.append(plan)
        return plan

    def run(steps: list[Step]) -> None:
        nonlocal current, changed
        for step in steps:
            current, result = run_step(current, step, host, check, options, progress, should_stop)
            results.append(result)
            if result.accepted:
                changed = np.maximum(changed, np.maximum(step.mask, step.ring))

    stopped = None
    try:
        plan = planned(initial)
        run([s for s in plan.steps if s.kind == "pose"])
        fine = [s for s in plan.steps if s.kind != "pose"]
        if any(r.accepted for r in results) and plan_options.choices is None:
            fine = [s for s in planned().steps if s.kind != "pose"]
        run(fine)
        run(list(extra_steps or []))
    except Stopped as stop:
        stopped = stop.reason
        if stop.result is not None:
            results.append(stop.result)
    return RefineResult(current, results, changed, plans, stopped)


def apply_candidate(image: np.ndarray, step: Step, candidate: Candidate) -> np.ndarray:
    """Put another kept candidate of ``step`` into ``image`` (the tab's "use this candidate"),
    within the step's region only."""
    if candidate.patch is None:
        raise ValueError("this candidate's pixels were not kept")
    crop = step.crop
    region = np.maximum(step.mask, step.ring)[crop.y0 : crop.y1, crop.x0 : crop.x1] > 0
    out = image.copy()
    view = out[crop.y0 : crop.y1, crop.x0 : crop.x1]
    view[region] = candidate.patch[region]
    return out
