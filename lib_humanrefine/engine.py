"""Run stage: each planned step goes to a Host as an InpaintRequest; the result is composited with
the step's feathered mask, the part is re-diagnosed, the best of N candidates (different seeds)
is kept, and the step is reverted unless that candidate beats the original by a margin.

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
from .detect.geometry import overlap_of_smaller
from .diagnose import DEFAULT_THRESHOLD, diagnose_image
from .hosts.base import Host, InpaintRequest
from .plan import Plan, PlanOptions, Step, make_plan, step_inputs

SEAM_TEXT = "seamless, natural skin and lighting"


@dataclass
class EngineOptions:
    margin: float = 0.05  # a candidate must score this much lower than the original to be kept
    threshold: float = DEFAULT_THRESHOLD
    tta: bool = True


@dataclass
class StepResult:
    index: int
    kind: str
    part: str
    before: float
    after: float | None  # the best candidate's score (None when the host produced nothing)
    accepted: bool
    candidate_scores: list[float] = field(default_factory=list)
    reason: str = ""

    def describe(self) -> dict:
        return {
            "index": self.index, "kind": self.kind, "part": self.part, "before": round(self.before, 3),
            "after": None if self.after is None else round(self.after, 3), "accepted": self.accepted,
            "candidates": [round(s, 3) for s in self.candidate_scores], "reason": self.reason,
        }  # fmt: skip


@dataclass
class RefineResult:
    image: np.ndarray
    steps: list[StepResult]
    changed: np.ndarray  # uint8 mask: union of accepted steps' regions
    plans: list[Plan]


Scorer = Callable[[np.ndarray, Step], float]


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


def rediagnose_part(image: np.ndarray, step: Step, threshold: float = DEFAULT_THRESHOLD, tta: bool = True) -> float:
    """The step's part scored again: diagnose the window around it and take the worst part of the
    same kind overlapping the step's region; 1.0 when that part is no longer found at all."""
    window = score_window(step, image.shape)
    view = crop_image(image, window)
    _detections, diagnosis = diagnose_image(view, threshold=threshold, tta=tta)
    bx0, by0, bx1, by1 = step.box
    region = (bx0 - window.x0, by0 - window.y0, bx1 - window.x0, by1 - window.y0)
    kind = {"hand": "hand", "face": "face"}.get(step.kind, "body")
    scores = [p.score for p in diagnosis.parts if p.kind == kind and overlap_of_smaller(p.box, region) > 0.2]
    return max(scores) if scores else 1.0


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
    )  # fmt: skip
    feather_px = max(2.0, 0.04 * max(step.crop.width, step.crop.height))
    out = _paste(image, step, _checked(host.inpaint(request)), step.mask, feather_px)
    if step.seam_denoise > 0 and step.ring.any():
        crop2 = crop_image(out, step.crop, step.size)
        ring_mask = crop_image(step.ring, step.crop, step.size, cv2.INTER_NEAREST)
        seam = InpaintRequest(
            image=crop2, mask=ring_mask, size=step.size, prompt=f"{step.prompt}, {SEAM_TEXT}",
            negative_prompt=step.negative_prompt, seed=seed + 1, steps=step.steps, cfg_scale=step.cfg_scale,
            denoising_strength=step.seam_denoise,
        )  # fmt: skip
        out = _paste(out, step, _checked(host.inpaint(seam)), step.ring, feather_px / 2)
    return out


def run_step(image: np.ndarray, step: Step, host: Host, scorer: Scorer, margin: float) -> tuple[np.ndarray, StepResult]:
    before = scorer(image, step)
    best_image, best_score, scores = None, None, []
    errors = []
    for c in range(step.candidates):
        try:
            candidate = run_candidate(image, step, host, step.seed + 7919 * c)
        except Exception as exc:  # a failing host must not cost the user the image
            errors.append(f"{exc.__class__.__name__}: {exc}")
            continue
        score = scorer(candidate, step)
        scores.append(score)
        if best_score is None or score < best_score:
            best_image, best_score = candidate, score
    result = StepResult(step.index, step.kind, step.part.label(), before, best_score, False, scores)
    if best_image is not None and best_score <= before - margin:
        result.accepted = True
        result.reason = f"score {before:.2f} -> {best_score:.2f}"
        return best_image, result
    if best_score is None:
        result.reason = f"kept the original: the host failed ({errors[0]})"
    else:
        result.reason = f"kept the original: best candidate {best_score:.2f} vs {before:.2f} (margin {margin:.2f})"
    return image, result


def refine(
    image: np.ndarray,
    host: Host,
    plan_options: PlanOptions | None = None,
    options: EngineOptions | None = None,
    scorer: Scorer | None = None,
) -> RefineResult:
    """Diagnose, plan, and run: coarse steps first; if any was accepted, the image is diagnosed
    and planned again before the fine steps (the limbs, and so the hands, may have moved)."""
    plan_options = plan_options or PlanOptions()
    options = options or EngineOptions()
    score = scorer or (lambda img, step: rediagnose_part(img, step, options.threshold, options.tta))
    current = image
    changed = np.zeros(image.shape[:2], np.uint8)
    results: list[StepResult] = []
    plans: list[Plan] = []

    def planned() -> Plan:
        detections, diagnosis = diagnose_image(current, threshold=options.threshold, tta=options.tta)
        plan = make_plan(current, detections, diagnosis, plan_options)
        plans.append(plan)
        return plan

    plan = planned()
    coarse = [s for s in plan.steps if s.kind == "pose"]
    for step in coarse:
        current, result = run_step(current, step, host, score, options.margin)
        results.append(result)
        if result.accepted:
            changed = np.maximum(changed, np.maximum(step.mask, step.ring))
    fine = [s for s in plan.steps if s.kind != "pose"]
    if any(r.accepted for r in results):
        fine = [s for s in planned().steps if s.kind != "pose"]
    for step in fine:
        current, result = run_step(current, step, host, score, options.margin)
        results.append(result)
        if result.accepted:
            changed = np.maximum(changed, np.maximum(step.mask, step.ring))
    return RefineResult(current, results, changed, plans)
