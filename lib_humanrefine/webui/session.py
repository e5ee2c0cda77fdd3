"""What the HumanRefine tab does, without gradio: one ``Session`` per diagnosed image.

diagnose → the parts with what the diagnosis says and the defaults of their settings → refine the
picked parts (and drawn regions) through a host, keeping every candidate → show each step's
candidates with the verification's numbers → swap in another candidate or the original → keep the
result as the new image, save it with its infotext, or teach the diagnosis a verdict. The tab
(``tab.py``) only turns these into components.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .. import infotext
from ..conditions.crop import crop_image
from ..diagnose.types import Diagnosis
from ..engine import Candidate, RefineResult, StepResult, apply_candidate
from ..options import RESULT_INFOTEXT_KEY, ScriptArgs, Settings

MAX_PARTS = 12  # rows the tab shows; worse-scoring parts first
KIND_TEXT = {"hand": "hand", "face": "face", "body": "body", "region": "drawn region"}


@dataclass
class PartRow:
    """One part as the tab lists it, with the defaults of its settings."""

    index: int  # into Diagnosis.parts
    label: str  # "P1 left hand"
    kind: str
    category: str
    score: float
    reasons: list[str]
    flagged: bool  # preselected
    strength: float
    candidates: int
    control: float  # depth (hands), OpenPose (bodies) or reference (faces) weight
    control_label: str

    @property
    def title(self) -> str:
        return f"{self.label} · {self.category} · {self.score:.2f}"


@dataclass
class Pick:
    """A part the user ticked, with the values of its row."""

    part: int
    strength: float
    candidates: int
    control: float


@dataclass
class Session:
    image: np.ndarray  # the diagnosed image (H x W x 3 uint8)
    generation: infotext.Generation
    detections: object
    diagnosis: Diagnosis
    overlay: np.ndarray
    rows: list[PartRow] = field(default_factory=list)
    result: RefineResult | None = None
    report: dict | None = None
    seed: int | None = None  # the seed of the last refine
    used: infotext.Generation | None = None  # the prompts and sampling values of the last refine
    chosen: dict[int, int | None] = field(default_factory=dict)  # step index -> candidate (None = original)
    current: np.ndarray | None = None  # the refined image with the chosen candidates

    # --- refining ------------------------------------------------------------------------------

    def choices(self, picks: list[Pick]):
        from ..plan import PartChoice

        out = []
        for pick in picks:
            if not 0 <= pick.part < len(self.diagnosis.parts):
                raise ValueError(f"there is no part {pick.part}; diagnose the image again")
            face = self.diagnosis.parts[pick.part].kind == "face"
            out.append(PartChoice(
                part=pick.part, denoise=float(pick.strength), candidates=int(pick.candidates),
                control_weight=None if face else float(pick.control), reference_weight=float(pick.control) if face
                else None,
            ))  # fmt: skip
        return out

    def refine(
        self, picks: list[Pick], host, args: ScriptArgs, settings: Settings, model: str, prompt: str,
        negative_prompt: str, seed: int | None, steps: int, cfg_scale: float, extra_mask: np.ndarray | None = None,
        mask_strength: float = 0.5, progress: Callable[[str], None] | None = None,
        should_stop: Callable[[], str | None] | None = None,
    ) -> RefineResult:  # fmt: skip
        """Refine the picked parts (and drawn regions); every candidate's pixels are kept."""
        from ..service import refine_image

        if not picks and (extra_mask is None or not np.any(np.asarray(extra_mask) > 127)):
            raise ValueError("tick at least one part (or draw a mask) to refine")
        seed = random.randrange(2**32 - 1) if seed is None or seed < 0 else int(seed)
        result, report = refine_image(
            self.image, (self.detections, self.diagnosis), host, args, settings, prompt, negative_prompt, model,
            seed, steps, cfg_scale, choices=self.choices(picks), keep_candidates=True, extra_mask=extra_mask,
            mask_strength=mask_strength, progress=progress, should_stop=should_stop,
        )  # fmt: skip
        self.result, self.report, self.seed = result, report, seed
        h, w = self.image.shape[:2]
        self.used = infotext.Generation(prompt, negative_prompt, {
            "Steps": str(steps), "CFG scale": f"{cfg_scale:g}", "Seed": str(seed), "Size": f"{w}x{h}"})  # fmt: skip
        self.chosen = {r.index: r.chosen for r in result.steps}
        self.current = result.image
        return result

    def step(self, index: int) -> StepResult:
        if self.result is None:
            raise ValueError("refine first")
        for step in self.result.steps:
            if step.index == index:
                return step
        raise ValueError(f"there is no step {index}")

    def original_patch(self, step: StepResult) -> Candidate:
        return Candidate(seed=-1, passed=True, reason="the image as it was", patch=crop_image(self.image, step.crop))

    def choose(self, index: int, candidate: int | None) -> np.ndarray:
        """Put candidate ``candidate`` of step ``index`` (None: the original pixels) into the result."""
        step = self.step(index)
        if candidate is None:
            picked = self.original_patch(step)
        elif 0 <= candidate < len(step.candidates) and step.candidates[candidate].patch is not None:
            picked = step.candidates[candidate]
        else:
            raise ValueError(f"{step.part}: candidate {candidate} did not run")
        self.current = apply_candidate(self.current, step.step, picked)
        self.chosen[index] = candidate
        return self.current

    # --- what the tab shows ----------------------------------------------------------------------

    def step_name(self, step: StepResult) -> str:
        """The part's name as the rows show it; drawn regions numbered when there are several."""
        if step.kind == "region":
            regions = [s.index for s in self.result.steps if s.kind == "region"] if self.result else []
            return KIND_TEXT["region"] + (f" {regions.index(step.index) + 1}" if len(regions) > 1 else "")
        names = part_names(self.diagnosis)
        for i, part in enumerate(self.diagnosis.parts):
            if step.step is not None and step.step.part is part:
                return names[i]
        return step.part

    def step_phrase(self, step: StepResult) -> str:
        name = self.step_name(step)
        chosen = self.chosen.get(step.index, step.chosen)
        if chosen == step.chosen:
            return f"{name} {step.reason}"
        if chosen is None:
            return f"{name} kept as it was (chosen by hand)"
        return f"{name} candidate {chosen + 1} (chosen by hand)"

    def summary(self) -> str:
        if self.result is None:
            return ""
        if not self.result.steps:
            return self.result.summary()
        text = ", ".join(self.step_phrase(s) for s in self.result.steps)
        return f"{text} (stopped: {self.result.stopped})" if self.result.stopped else text

    def candidate_options(self, index: int) -> list[tuple[str, int | None]]:
        """(label, value) of what can be put in for step ``index``: the original, then each candidate that ran."""
        step = self.step(index)
        out: list[tuple[str, int | None]] = [("original", None)]
        for i, candidate in enumerate(step.candidates):
            if candidate.patch is not None:
                out.append((candidate_label(i, candidate), i))
        return out

    def candidate_pictures(self, index: int) -> list[tuple[np.ndarray, str]]:
        step = self.step(index)
        pictures = [(self.original_patch(step).patch, "original")]
        for i, candidate in enumerate(step.candidates):
            if candidate.patch is not None:
                pictures.append((candidate.patch, candidate_label(i, candidate)))
        return pictures

    def result_infotext(self) -> str:
        """The image's infotext with the refinement's one-line summary (replacing an older one); for
        an image without one, the prompts and values the refinement used."""
        base = self.generation if self.generation.params or self.used is None else self.used
        return infotext.compose(base, {RESULT_INFOTEXT_KEY: self.summary() or None})

    # --- teaching ----------------------------------------------------------------------------------

    def teach(self, folder, part: int | None, malformed: bool):
        """Write the part's crop (``None``: the whole image) and the verdict into the labels folder."""
        from .. import teach

        kind = "generated-user" if self.generation.generated else "user"
        if part is None:
            return teach.add(folder, self.image, int(malformed), "image", kind)
        if not 0 <= part < len(self.diagnosis.parts):
            raise ValueError(f"there is no part {part}; diagnose the image again")
        found = self.diagnosis.parts[part]
        crop = teach.part_crop(self.image, found.box, found.kind)
        return teach.add(folder, crop, int(malformed), found.kind, kind)


def part_names(diagnosis: Diagnosis) -> list[str]:
    """Each part's label ("P1 left hand"), numbered where two parts would read the same."""
    labels = [p.label() for p in diagnosis.parts]
    seen: dict[str, int] = {}
    names = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        names.append(f"{label} ({seen[label]})" if labels.count(label) > 1 else label)
    return names


def candidate_label(i: int, candidate: Candidate) -> str:
    """E.g. ``#2 seed 5043: passed (skeleton 0.05, colour ΔE 0.8, seam 1.1, detail 0.93)`` or
    ``#1 seed 4043: candidate changed identity (0.71 > 0.60)``."""
    head = f"#{i + 1} seed {candidate.seed}"
    if candidate.measures is None or not candidate.passed:
        return f"{head}: {candidate.reason}"
    numbers = ", ".join(f"{name} {text}" for name, text in candidate.measures.figures().items())
    return f"{head}: passed ({numbers})" if numbers else f"{head}: passed"


def part_rows(diagnosis: Diagnosis, args: ScriptArgs, settings: Settings) -> list[PartRow]:
    """The parts, worst first (at most MAX_PARTS), with the plan's defaults for their settings."""
    from ..plan import PlanOptions, part_denoise

    options = PlanOptions(strength={"hand": args.hand_strength, "face": args.face_strength, "pose": args.body_strength})
    control = {
        "hand": (settings.depth_weight, "Depth weight"),
        "face": (settings.reference_weight, "Reference weight"),
        "body": (settings.pose_weight, "OpenPose weight"),
    }
    order = diagnosis.worst_first()[:MAX_PARTS]
    names = part_names(diagnosis)
    rows = []
    for i in order:
        part = diagnosis.parts[i]
        weight, label = control.get(part.kind, control["body"])
        rows.append(PartRow(
            index=i, label=names[i], kind=part.kind, category=part.main_category, score=part.score,
            reasons=part.reasons, flagged=part.score >= diagnosis.threshold,
            strength=part_denoise(part, options, diagnosis.threshold), candidates=settings.candidates, control=weight,
            control_label=label,
        ))  # fmt: skip
    return rows


def diagnose(image: np.ndarray, text: str, args: ScriptArgs, settings: Settings) -> Session:
    from ..diagnose.overlay import draw_overlay
    from ..images import to_rgb_array
    from ..service import diagnose_for

    image = to_rgb_array(image)
    detections, diagnosis, args = diagnose_for(image, args, settings)
    session = Session(image, infotext.parse(text), detections, diagnosis, draw_overlay(image, detections, diagnosis))
    session.rows = part_rows(diagnosis, args, settings)
    return session
