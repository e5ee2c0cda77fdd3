"""Run stage: each planned step goes to a Host as an InpaintRequest; the result is composited with
the step's feathered mask and **verified** by the judge (``verify``): the part is found again on
the skeleton the controls asked for, a face is still the same person, no colour cast or seam
shows, nothing is blurred. The best passing candidate (different seeds) is kept — the one whose
skeleton lies closest to the intended one (HandRefiner's rule) — otherwise the step reverts, and
the reason names the check that decided, with its number. With verification off the candidate
closest to its skeleton is kept whatever the checks say (ADetailer-like behaviour).

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
from .diagnose import DEFAULT_THRESHOLD, Diagnosis, diagnose_image
from .hosts.base import Host, HostInterrupted, InpaintRequest
from .plan import Plan, PlanOptions, Step, make_plan, step_inputs
from .verify import Judge, Limits, Measures

SEAM_TEXT = "seamless, natural skin and lighting"


@dataclass
class EngineOptions:
    threshold: float = DEFAULT_THRESHOLD
    tta: bool = True
    verify: bool = True  # False: keep the candidate closest to its skeleton without the checks
    limits: Limits = field(default_factory=Limits)  # the judge's lines
    identity: bool = True  # the judge's identity check on faces (when dlib and its models are there)
    keep_candidates: bool = False  # keep every candidate's pixels (the tab shows them)
    learned: bool = True  # the learned check when the image is diagnosed again to re-plan


Progress = Callable[[str], None]
StopCheck = Callable[[], "str | None"]  # a reason ("interrupted", "skipped") to stop, or None


@dataclass
class Candidate:
    seed: int
    measures: Measures | None = None  # what the judge measured; None: the host failed
    passed: bool = False
    reason: str = ""  # why it failed the checks, with the number (or the host error)
    check: str = ""  # the check that rejected it ("found", "identity", "colour", ...)
    patch: np.ndarray | None = field(default=None, repr=False)  # the step's crop of this candidate

    def describe(self) -> dict:
        out = {"seed": self.seed, "passed": self.passed, "reason": self.reason}
        if self.check:
            out["check"] = self.check
        if self.measures is not None:
            out.update(self.measures.describe())
        return out


@dataclass
class StepResult:
    index: int
    kind: str
    part: str
    before: Measures  # the original part's own numbers
    accepted: bool = False
    chosen: int | None = None  # index into candidates of the kept one
    candidates: list[Candidate] = field(default_factory=list)
    reason: str = ""
    crop: CropBox | None = None
    step: Step | None = field(default=None, repr=False)  # what ran (the tab swaps candidates with it)

    @property
    def after(self) -> Measures | None:
        return None if self.chosen is None else self.candidates[self.chosen].measures

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
    image: np.ndarray, step: Step, host: Host, judge: Judge | None = None, options: EngineOptions | None = None,
    progress: Progress | None = None, should_stop: StopCheck | None = None,
) -> tuple[np.ndarray, StepResult]:  # fmt: skip
    """Try ``step.candidates`` seeds; keep the best verified candidate, else the original.
    Raises ``Stopped`` (before or right after a candidate, which is then discarded) when asked."""
    options = options or EngineOptions()
    judge = judge or Judge(options.limits, options.identity)
    before = judge.reference(image, step)
    result = StepResult(step.index, step.kind, step.part.label(), before, crop=step.crop, step=step)
    try:
        return _run_candidates(image, step, host, judge, options, progress, should_stop, result)
    except Stopped as stop:
        result.reason = "not finished"
        raise Stopped(stop.reason, result) from None


def _run_candidates(image, step, host, judge, options, progress, should_stop, result):
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
        candidate.measures = judge.measure(image, out, step, result.before)
        verdict = judge.decide(candidate.measures, result.before, step.kind)
        candidate.passed, candidate.reason, candidate.check = verdict.passed, verdict.reason, verdict.check
        if options.keep_candidates:
            candidate.patch = crop_image(out, step.crop)
        result.candidates.append(candidate)
        images.append(out)
    ran = [i for i, c in enumerate(result.candidates) if c.measures is not None]
    eligible = [i for i in ran if result.candidates[i].passed or not options.verify]
    n = len(result.candidates)
    if eligible:
        best = min(eligible, key=lambda i: _closeness(result.candidates[i].measures))
        result.accepted, result.chosen = True, best
        verified = options.verify and step.kind != "region"
        passed = f"{result.passed}/{n} candidates passed" if verified else "not verified"
        notes = "".join(f"; {note.split(':')[0]}" for note in result.before.notes) if verified else ""
        result.reason = f"fixed ({passed}{notes})"
        return images[best], result
    if not ran:
        result.reason = f"kept: the host failed ({result.candidates[0].reason.removeprefix('host failed (')[:-1]})"
    else:
        reasons = list(dict.fromkeys(result.candidates[i].reason for i in ran))
        said = reasons[0] if len(reasons) == 1 else f"no candidate passed ({'; '.join(reasons)})"
        result.reason = f"kept: {said}"
    return image, result


def _closeness(measures: Measures) -> tuple[float, float]:
    """How a candidate ranks among those that pass: nearest its intended skeleton first (HandRefiner
    keeps the control strength whose result follows the skeleton), then the least visible seam."""
    error = measures.found.skeleton_error if measures.found else None
    seam = measures.pixels.seam if measures.pixels else 0.0
    return (float("inf") if error is None else error, seam)


def refine(
    image: np.ndarray,
    host: Host,
    plan_options: PlanOptions | None = None,
    options: EngineOptions | None = None,
    judge: Judge | None = None,
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
    judge = judge or Judge(options.limits, options.identity)
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
            current, result = run_step(current, step, host, judge, options, progress, should_stop)
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
