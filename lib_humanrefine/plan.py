"""Plan stage: a diagnosis becomes an ordered list of inpaint steps.

Coarse first — a flagged limb or body is regenerated under an OpenPose control drawn from the
detected skeleton, so the pose is kept and the anatomy regenerated (HumanRefiner's
coarse-to-fine) — then fine steps: each flagged hand with a hand depth map (HandRefiner) and a
reference of its own pixels (RealisHuman), each flagged face with a reference. Every step
carries its crop (context around the part, generated at the model's native size), masks,
prompts, denoising strength, seed and estimated UNet work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .conditions import masks
from .conditions.crop import NATIVE, CropBox, context_crop, crop_image
from .conditions.hand_depth import render_hand_depth
from .conditions.openpose import render_openpose
from .conditions.reference import reference_image
from .detect.faces import roi_of
from .detect.types import POSE, Detections
from .diagnose.types import Diagnosis, Part
from .hosts.base import Control

PART_TEXT = {  # (positive, negative) appended to the user's prompts
    "hand": (
        "detailed hand, five fingers, natural hand",
        "extra fingers, fused fingers, missing fingers, deformed hand",
    ),
    "face": ("detailed face, symmetric eyes, natural face", "deformed face, asymmetric eyes, distorted features"),
    "arm": ("natural arms, correct anatomy", "extra arms, missing arms, deformed arms, twisted limbs"),
    "leg": ("natural legs, correct anatomy", "extra legs, missing legs, deformed legs, twisted limbs"),
    "body": ("natural body, correct anatomy", "deformed body, extra limbs, bad anatomy"),
    "multi": ("separate people, natural bodies", "fused bodies, merged people, extra limbs"),
}
LIMB_JOINTS = {"arm": ("shoulder", "elbow", "wrist"), "leg": ("hip", "knee", "ankle", "foot_index")}
ADETAILER_DENOISE = 0.4  # ADetailer's default, for the every-part baseline
STEP_KINDS = ("pose", "hand", "face")
SEVERITY_BUMP = {"hand": 0.3, "face": 0.2, "pose": 0.0}  # extra denoise for a part scoring 1.0
MAX_DENOISE = 0.95


@dataclass
class PartChoice:
    """A part picked by hand (the tab), with optional per-part overrides of the plan options."""

    part: int  # index into Diagnosis.parts
    denoise: float | None = None
    candidates: int | None = None
    control_weight: float | None = None  # depth (hands) or OpenPose (bodies)
    reference_weight: float | None = None


@dataclass
class PlanOptions:
    prompt: str = ""
    negative_prompt: str = ""
    model: str = "sd15"  # a model family (hosts.families): native size 512 for "sd15", 1024 for "sdxl"...
    part_resolution: int = 0  # the long side a part is generated at; 0 = the model's native size
    seed: int = 0
    steps: int = 20
    cfg_scale: float = 7.0
    candidates: int = 1  # seeds tried per step; the engine keeps the best
    policy: str = "flagged"  # "flagged" | "all" (every detected hand and face, ADetailer-like) | "off"
    kinds: tuple[str, ...] = STEP_KINDS  # which step kinds may be planned ("pose" = bodies)
    strength: dict[str, float] = field(default_factory=lambda: {"hand": 0.5, "face": 0.35, "pose": 0.6})
    choices: list[PartChoice] | None = None  # explicit parts (the tab); overrides policy and kinds
    seam_pass: bool = True  # RealisHuman's second stage: repaint the ring around a fine part
    depth_weight: float = 0.55  # HandRefiner: 0.4-0.8 recommended, 0.55 in its evaluation
    pose_weight: float = 1.0
    reference_weight: float = 1.0
    reference_fidelity: float = 0.5


@dataclass
class Step:
    index: int
    kind: str  # "pose" (coarse) | "hand" | "face" | "region" (drawn by the user)
    part: Part = field(repr=False)
    category: str
    score: float
    mask: np.ndarray = field(repr=False)  # full image, uint8: the region this step may change
    ring: np.ndarray = field(repr=False)  # full image, uint8: the seam region of the second stage
    crop: CropBox
    size: tuple[int, int]  # generation (w, h)
    controls: list[Control]
    prompt: str
    negative_prompt: str
    denoise: float
    seed: int
    steps: int
    cfg_scale: float
    candidates: int
    seam_denoise: float  # 0 = no second stage
    keypoints: np.ndarray | None = field(default=None, repr=False)  # the skeleton the controls ask for
    part_size: float = 0.0  # the part's scale in pixels (hand size, face box side, torso)
    # the rotated crop (cx, cy, w, h, rotation) the part's detector found it in: verification looks
    # for the part again there, as MediaPipe tracks a part from frame to frame
    roi: tuple[float, float, float, float, float] | None = None

    @property
    def box(self) -> tuple[int, int, int, int]:
        """The region (image pixels) the step may change: its mask's bounding box."""
        return masks.bbox(np.maximum(self.mask, self.ring)) or (0, 0, 0, 0)

    @property
    def unet_work(self) -> int:
        """Latent pixels × sampling steps actually run (img2img runs steps × denoise), all candidates."""
        latent = (self.size[0] // 8) * (self.size[1] // 8)
        work = latent * effective_steps(self.steps, self.denoise)
        if self.seam_denoise > 0:
            work += latent * effective_steps(self.steps, self.seam_denoise)
        return work * self.candidates

    def describe(self) -> dict:
        return {
            "index": self.index,
            "kind": self.kind,
            "part": self.part.label(),
            "category": self.category,
            "score": round(self.score, 3),
            "box": list(self.box),
            "crop": self.crop.as_list(),
            "size": list(self.size),
            "controls": [c.describe() for c in self.controls],
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "denoise": round(self.denoise, 3),
            "seam_denoise": round(self.seam_denoise, 3),
            "seed": self.seed,
            "steps": self.steps,
            "cfg_scale": self.cfg_scale,
            "candidates": self.candidates,
            "unet_work": self.unet_work,
        }


@dataclass
class Plan:
    width: int
    height: int
    options: PlanOptions
    steps: list[Step]
    baseline_unet_work: int  # one ADetailer-style pass per detected hand and face

    @property
    def unet_work(self) -> int:
        return sum(s.unet_work for s in self.steps)

    def describe(self) -> dict:
        return {
            "version": 1,
            "width": self.width,
            "height": self.height,
            "model": self.options.model,
            "policy": self.options.policy,
            "unet_work": self.unet_work,
            "baseline_unet_work": self.baseline_unet_work,
            "steps": [s.describe() for s in self.steps],
        }


def effective_steps(steps: int, denoise: float) -> int:
    return max(1, int(steps * denoise))


def _join(*texts: str) -> str:
    return ", ".join(t.strip() for t in texts if t and t.strip())


def baseline_work(detections: Detections, options: PlanOptions) -> int:
    """UNet work of one inpaint pass per detected hand and face at the native square size and
    ADetailer's default denoise (its default policy)."""
    native = options.part_resolution or NATIVE[options.model]
    passes = len(detections.hands) + len(detections.faces)
    return passes * (native // 8) ** 2 * effective_steps(options.steps, ADETAILER_DENOISE)


# --- regions --------------------------------------------------------------------------------


def hand_mask(landmarks: np.ndarray, size: float, shape) -> np.ndarray:
    return masks.hull_mask(landmarks, shape, grow=0.3 * size)


def face_mask(part: Part, detections: Detections, shape) -> np.ndarray:
    face = detections.faces[part.index]
    x0, y0, x1, y1 = face.box
    grow = 0.1 * max(x1 - x0, y1 - y0)
    if face.landmarks is not None:
        return masks.hull_mask(face.landmarks, shape, grow)
    return masks.hull_mask(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), shape, grow)


def body_mask(part: Part, detections: Detections, shape) -> np.ndarray:
    """A flagged limb's region (both sides unless a signal names one), or the whole person."""
    person = detections.people[part.index]
    width = 0.35 * max(person.torso_size, 8.0)
    category = part.main_category
    if category in ("arm", "leg", "hand"):
        limb = "arm" if category in ("arm", "hand") else "leg"
        named = {s.name.split("_")[0] for s in part.signals if s.score > 0 and s.name.startswith(("left_", "right_"))}
        sides = sorted(named) or ["left", "right"]
        out = np.zeros(shape[:2], np.uint8)
        for side in sides:
            chain = [
                person.landmarks[POSE[f"{side}_{joint}"], :2]
                for joint in LIMB_JOINTS[limb]
                if person.visibility[POSE[f"{side}_{joint}"]] >= 0.3
            ]
            if chain:
                out = np.maximum(out, masks.limb_mask(np.array(chain), shape, width))
            for hand in detections.hands:  # a limb's step covers its hand too
                if limb == "arm" and hand.person == part.index and hand.extra.get("wrist") == side:
                    out = np.maximum(out, hand_mask(hand.landmarks, hand.size, shape))
        if out.any():
            return out
    visible = person.landmarks[person.visibility >= 0.3, :2]
    return masks.hull_mask(visible if len(visible) >= 3 else person.landmarks[:, :2], shape, width / 2)


# --- steps ----------------------------------------------------------------------------------


def _step_kind(part: Part) -> str:
    return {"hand": "hand", "face": "face"}.get(part.kind, "pose")


def _parts_to_refine(diagnosis: Diagnosis, options: PlanOptions) -> list[tuple[Part, PartChoice | None]]:
    """The parts to fix, coarse (pose) steps first, then hands, then faces, worst first."""
    if options.choices is not None:
        chosen = [(diagnosis.parts[c.part], c) for c in options.choices if 0 <= c.part < len(diagnosis.parts)]
    elif options.policy == "off":
        chosen = []
    elif options.policy == "all":
        chosen = [(p, None) for p in diagnosis.parts if p.kind in ("hand", "face") or p.score >= diagnosis.threshold]
    elif options.policy == "flagged":
        chosen = [(p, None) for p in diagnosis.flagged()]
    else:
        raise ValueError(f"unknown policy {options.policy!r}")
    if options.choices is None:
        chosen = [(p, c) for p, c in chosen if _step_kind(p) in options.kinds]
    order = {"pose": 0, "hand": 1, "face": 2}
    rank = {id(diagnosis.parts[i]): r for r, i in enumerate(diagnosis.worst_first())}
    return sorted(chosen, key=lambda pc: (order[_step_kind(pc[0])], rank.get(id(pc[0]), len(rank))))


def part_denoise(part: Part, options: PlanOptions, threshold: float) -> float:
    """The denoising strength a part gets by default: its kind's strength, and a part the diagnosis
    flags (score at or above ``threshold``) more the worse it scores; an unflagged part gets exactly
    its kind's strength (a strength written in a prompt tag is the one used)."""
    kind = _step_kind(part)
    severity = min(max(part.score, 0.0), 1.0) if part.score >= threshold else 0.0
    return round(min(MAX_DENOISE, options.strength.get(kind, 0.5) + SEVERITY_BUMP[kind] * severity), 3)


def make_step(
    index: int, part: Part, image: np.ndarray, detections: Detections, options: PlanOptions,
    choice: PartChoice | None = None, threshold: float = 1.0,
) -> Step | None:  # fmt: skip
    """One step for one part (flagged when its score reaches ``threshold``); None when the part has
    no usable region."""
    shape = image.shape
    kind = _step_kind(part)
    native = options.part_resolution or NATIVE[options.model]
    if kind == "hand":
        hand = detections.hands[part.index]
        region = hand_mask(hand.landmarks, hand.size, shape)
        context, ring_px = 0.6, 0.25 * hand.size
        keypoints, part_size, roi = hand.landmarks[:, :2].copy(), hand.size, hand.roi
    elif kind == "face":
        region = face_mask(part, detections, shape)
        x0, y0, x1, y1 = part.box
        context, ring_px = 0.5, 0.15 * max(x1 - x0, y1 - y0)
        face = detections.faces[part.index]
        keypoints = None if face.landmarks is None else face.landmarks[:, :2].copy()
        part_size = float(max(x1 - x0, y1 - y0))
        r = roi_of(face)
        roi = (r.cx, r.cy, r.width, r.height, r.rotation)
    else:
        region = body_mask(part, detections, shape)
        person = detections.people[part.index]
        context, ring_px = 0.25, 0.15 * person.torso_size
        keypoints = np.where((person.visibility >= 0.5)[:, None], person.landmarks[:, :2], np.nan)
        part_size, roi = max(person.torso_size, 1.0), person.roi
    box = masks.bbox(region)
    if box is None:
        return None
    crop, size = context_crop(box, shape, context, native)
    ring = masks.ring(region, grow=ring_px, shrink=ring_px)
    positive, negative = PART_TEXT["hand" if kind == "hand" else "face" if kind == "face" else part.main_category]
    controls: list[Control] = []
    crop_xyxy = (crop.x0, crop.y0, crop.x1, crop.y1)
    choice = choice or PartChoice(-1)
    control_weight = choice.control_weight
    if kind == "hand":
        near = [h.landmarks for h in detections.hands if _overlaps(h.box, crop_xyxy)]
        weight = options.depth_weight if control_weight is None else control_weight
        if weight > 0:
            controls.append(Control("depth", weight, 0.0, 1.0, image=render_hand_depth(near, crop_xyxy, size)))
    if kind == "pose":
        person = detections.people[part.index]
        hands = [(h.landmarks, h.side) for h in detections.hands if h.person == part.index]
        weight = options.pose_weight if control_weight is None else control_weight
        if weight > 0:
            skeleton = render_openpose([(person.landmarks, person.visibility)], hands, crop_xyxy, size)
            controls.append(Control("openpose", weight, 0.0, 1.0, image=skeleton))
    reference_weight = options.reference_weight if choice.reference_weight is None else choice.reference_weight
    if reference_weight > 0:
        controls.append(
            Control(
                "reference", reference_weight, 0.0, 1.0, fidelity=options.reference_fidelity,
                image=reference_image(image, region, crop, size),
            )
        )  # fmt: skip
    denoise = part_denoise(part, options, threshold) if choice.denoise is None else choice.denoise
    return Step(
        index=index, kind=kind, part=part, category=part.main_category, score=part.score,
        mask=region, ring=ring, crop=crop, size=size, controls=controls,
        prompt=_join(options.prompt, positive), negative_prompt=_join(options.negative_prompt, negative),
        denoise=round(denoise, 3), seed=options.seed + 1000 * (index + 1), steps=options.steps,
        cfg_scale=options.cfg_scale, candidates=max(1, choice.candidates or options.candidates),
        seam_denoise=0.3 if options.seam_pass and kind != "pose" else 0.0,
        keypoints=keypoints, part_size=float(part_size), roi=tuple(float(v) for v in roi),
    )  # fmt: skip


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def check_plan_inputs(image, diagnosis: Diagnosis, options: PlanOptions) -> np.ndarray:
    """The image as H x W x 3 uint8 RGB, or BadImage / BadArgument in one line for what make_plan cannot use."""
    from .errors import BadArgument, BadImage
    from .images import to_rgb_array

    image = to_rgb_array(image)
    if (image.shape[1], image.shape[0]) != (diagnosis.width, diagnosis.height):
        raise BadImage(
            f"the image is {image.shape[1]}x{image.shape[0]} but the diagnosis is of a "
            f"{diagnosis.width}x{diagnosis.height} image; plan the image that was diagnosed"
        )
    problems = []
    if options.model not in NATIVE:
        problems.append(f"model must be one of {', '.join(NATIVE)} (got {options.model!r})")
    if options.policy not in ("flagged", "all", "off"):
        problems.append(f"policy must be 'flagged', 'all' or 'off' (got {options.policy!r})")
    if not set(options.kinds) <= set(STEP_KINDS):
        problems.append(f"kinds must be among {', '.join(STEP_KINDS)} (got {options.kinds!r})")
    if not isinstance(options.part_resolution, int) or not (
        options.part_resolution == 0 or 64 <= options.part_resolution <= 4096
    ):
        problems.append(f"part_resolution must be 0 or 64-4096 (got {options.part_resolution!r})")
    for name, least in (("steps", 1), ("candidates", 1), ("seed", None)):
        value = getattr(options, name)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or (least and value < least):
            problems.append(f"{name} must be a whole number{f' of at least {least}' if least else ''} (got {value!r})")
    for name in ("cfg_scale", "depth_weight", "pose_weight", "reference_weight", "reference_fidelity"):
        value = getattr(options, name)
        if not isinstance(value, (int, float, np.number)) or not np.isfinite(value) or value < 0:
            problems.append(f"{name} must be a number of at least 0 (got {value!r})")
    if problems:
        raise BadArgument("plan options: " + "; ".join(problems))
    return image


def make_plan(image: np.ndarray, detections: Detections, diagnosis: Diagnosis, options: PlanOptions) -> Plan:
    image = check_plan_inputs(image, diagnosis, options)
    steps: list[Step] = []
    for part, choice in _parts_to_refine(diagnosis, options):
        step = make_step(len(steps), part, image, detections, options, choice, diagnosis.threshold)
        if step is not None:
            steps.append(step)
    return Plan(image.shape[1], image.shape[0], options, steps, baseline_work(detections, options))


def step_inputs(image: np.ndarray, step: Step) -> tuple[np.ndarray, np.ndarray]:
    """The crop and its mask at the generation size, as a host receives them."""
    return crop_image(image, step.crop, step.size), crop_image(step.mask, step.crop, step.size, cv2.INTER_NEAREST)


REGION_MIN_FRACTION = 0.0005  # drawn specks smaller than this share of the image are ignored
MAX_REGIONS = 4


def region_steps(
    image: np.ndarray, mask: np.ndarray, options: PlanOptions, first_index: int, denoise: float,
    candidates: int | None = None,
) -> list[Step]:  # fmt: skip
    """Steps for regions the user drew (the tab's extra mask, white = refine): one per connected
    area, largest first, at most MAX_REGIONS. Inpainted with the user's prompt and a reference of
    the region's own pixels; no detector checks them (kind ``region``), the user compares."""
    h, w = image.shape[:2]
    binary = (np.asarray(mask) > 127).astype(np.uint8)
    if binary.shape != (h, w):
        binary = cv2.resize(binary, (w, h), interpolation=cv2.INTER_NEAREST)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    areas = sorted(range(1, count), key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    keep = [i for i in areas if stats[i, cv2.CC_STAT_AREA] >= REGION_MIN_FRACTION * h * w][:MAX_REGIONS]
    native = options.part_resolution or NATIVE[options.model]
    steps = []
    for i in keep:
        region = np.where(labels == i, 255, 0).astype(np.uint8)
        box = masks.bbox(region)
        side = max(box[2] - box[0], box[3] - box[1])
        crop, size = context_crop(box, image.shape, 0.5, native)
        ring_px = 0.15 * side
        part = Part("region", None, None, tuple(float(v) for v in box), "region")
        controls = []
        if options.reference_weight > 0:
            reference = reference_image(image, region, crop, size)
            controls.append(Control("reference", options.reference_weight, 0.0, 1.0,
                                    fidelity=options.reference_fidelity, image=reference))  # fmt: skip
        index = first_index + len(steps)
        steps.append(Step(
            index=index, kind="region", part=part, category="region", score=0.0, mask=region,
            ring=masks.ring(region, grow=ring_px, shrink=ring_px), crop=crop, size=size, controls=controls,
            prompt=options.prompt, negative_prompt=options.negative_prompt, denoise=round(float(denoise), 3),
            seed=options.seed + 1000 * (index + 1), steps=options.steps, cfg_scale=options.cfg_scale,
            candidates=max(1, candidates or options.candidates), seam_denoise=0.3 if options.seam_pass else 0.0,
            part_size=float(side),
        ))  # fmt: skip
    return steps
