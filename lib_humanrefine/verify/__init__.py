"""Verify stage: the judge that keeps a candidate fix or reverts the step.

Under the default policy every hand and face is repainted, and the judge is all that stands
between the user and a worse picture. It measures the candidate against the original where the
step may write and keeps it only when every check passes; the first that fails is the reason
given, with its number ("candidate changed identity (0.71 > 0.60)"):

1. found — the part is still there: the landmark model, run on the crop its detector found it
   in, is at least half as sure of it as of the original's (``anatomy``).
2. side — a hand is still the same hand (not mirrored into the other one).
3. skeleton — its keypoints still follow the skeleton the controls asked for (HandRefiner's
   check), no farther than the original's own by a limit per kind.
4. identity — a face is still the same person (dlib's face descriptor; optional).
5. colour — no colour cast across the seam ring (``pixels``).
6. seam — the ring's coarse picture still continues its surroundings.
7. detail — the part is not blurred or smeared.

The limits come from the judge benchmark (``judge_bench``, ``bench --judge``): bad and
benign candidates made in code from the development images, thresholds fitted on other groups of
images than those they are scored on. Checks 5-7 apply to hands and faces, the steps the
benchmark measured; a coarse (pose) step is judged by checks 1-3. The diagnosis's own part score
is no check: its landmark signals are at chance on images the project never saw.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields

import numpy as np

from ..plan import Step
from . import identity as identity_mod
from .anatomy import Found, refind
from .pixels import PixelChange, pixel_change

__all__ = ["Judge", "Limits", "Measures", "Verdict"]

# The step kinds whose colour, seam and detail lines the benchmark measured. A coarse (pose) step
# regenerates a whole limb on purpose, so its ring's coarse picture is meant to change; it keeps
# the anatomy checks (its numbers are still measured and reported).
PIXEL_CHECKED = ("hand", "face")


@dataclass(frozen=True)
class Limits:
    """Where each check draws its line (see the module docstring for what each measures).

    identity, colour, seam and detail are fitted by ``bench --judge`` on the development images
    (all 19 groups; fitted on 18 at a time they move by under 0.04, colour 0.3): each the loosest
    line that still rejects the share of its bad candidates the judge must catch (other faces 95 %,
    colour casts, shifted patches and blur 90 %) without rejecting more than 1 % of the benign
    ones. The anatomy lines are not fitted: half the original's presence, and the skeleton limits
    of HandRefiner-style verification (mean keypoint distance / part size, above the original's).
    """

    presence: float = 0.5  # found: at least this share of the original's presence
    side_score: float = 0.8  # side: both the original and the candidate this sure, of opposite hands
    skeleton: dict = field(default_factory=lambda: {"hand": 0.15, "face": 0.1, "pose": 0.15})
    identity: float = 0.45  # dlib descriptor distance (dlib's own same-person line is 0.6)
    colour: float = 4.24  # CIELAB ΔE of the mean change over the seam ring
    seam: float = 3.81  # mean ΔE of the coarse change over the seam ring
    detail: float = 0.40  # the core's fine detail against the original's, at least

    def describe(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Measures:
    """Everything the judge measured of one image of a step (the original or a candidate)."""

    found: Found | None = None  # None: nothing to look for (a region the user drew)
    identity: float | None = None  # descriptor distance to the original's face (None: not a face / not checked)
    pixels: PixelChange | None = None  # None for the original itself
    descriptor: np.ndarray | None = field(default=None, repr=False)  # the original face's
    alignment: object = field(default=None, repr=False)  # where the original face's chip was cut (dlib)
    notes: list[str] = field(default_factory=list)  # e.g. "identity not checked: ..."
    timings_ms: dict[str, float] = field(default_factory=dict, repr=False)  # per check

    def describe(self) -> dict:
        out: dict = {}
        if self.found is not None:
            out.update(self.found.describe())
        if self.identity is not None:
            out["identity"] = round(self.identity, 3)
        if self.pixels is not None:
            out.update(self.pixels.describe())
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    def figures(self) -> dict[str, str]:
        """The judge's numbers as short texts for a person, in check order (the tab's columns)."""
        out: dict[str, str] = {}
        if self.found is not None and self.found.skeleton_error is not None:
            out["skeleton"] = f"{self.found.skeleton_error:.2f}"
        if self.identity is not None:
            out["identity"] = f"{self.identity:.2f}"
        if self.pixels is not None:
            out["colour"] = f"ΔE {self.pixels.colour:.1f}"
            out["seam"] = f"{self.pixels.seam:.1f}"
            out["detail"] = f"{self.pixels.detail:.2f}"
        return out


@dataclass
class Verdict:
    passed: bool
    check: str = ""  # the check that decided a rejection ("" when passed)
    value: float | None = None
    limit: float | None = None
    reason: str = ""  # one phrase with the numbers; "" when passed


class Judge:
    """Measures and decides; one per refinement (the identity model loads once per process)."""

    def __init__(self, limits: Limits | None = None, identity: bool = True):
        self.limits = limits or Limits()
        self.identity = identity

    # --- measuring --------------------------------------------------------------------------

    def reference(self, image: np.ndarray, step: Step) -> Measures:
        """The original's own numbers, measured once per step."""
        out = Measures()
        if step.kind == "region":
            return out
        out.found = _timed(out, "anatomy", refind, image, step)
        if step.kind == "face" and self.identity:
            model, note = identity_mod.status()
            if model is None:
                out.notes.append(note or "identity not checked")
            else:
                out.alignment = _timed(out, "identity", model.align, image, step.part.box)
                out.descriptor = _timed(out, "identity", model.descriptor, image, out.alignment)
        return out

    def measure(self, original: np.ndarray, candidate: np.ndarray, step: Step, reference: Measures) -> Measures:
        """A candidate's numbers against the original (``reference``: the original's own)."""
        out = Measures(notes=list(reference.notes))
        if step.kind == "region":
            return out
        out.found = _timed(out, "anatomy", refind, candidate, step)
        out.pixels = _timed(out, "pixels", pixel_change, original, candidate, step)
        if reference.descriptor is not None:
            model, _ = identity_mod.status()
            descriptor = _timed(out, "identity", model.descriptor, candidate, reference.alignment)
            out.identity = identity_mod.distance(descriptor, reference.descriptor)
        return out

    # --- deciding ---------------------------------------------------------------------------

    def decide(self, measures: Measures, reference: Measures, kind: str) -> Verdict:
        """Every check in order for a step of ``kind``; the first that fails decides, with its number."""
        if kind == "region":  # drawn by the user: no detector to ask; the user compares
            return Verdict(True)
        checks = (self._found, self._side, self._skeleton, self._identity, self._pixels)
        for check in checks:
            verdict = check(measures, reference, kind)
            if verdict is not None:
                return verdict
        return Verdict(True)

    def _found(self, m: Measures, ref: Measures, kind: str) -> Verdict | None:
        need = self.limits.presence * (ref.found.presence if ref.found else 1.0)
        presence = m.found.presence if m.found else 0.0
        if presence >= need:
            return None
        name = "person" if kind == "pose" else kind
        return Verdict(False, "found", presence, need, f"{name} not found again (presence {presence:.2f} < {need:.2f})")

    def _side(self, m: Measures, ref: Measures, kind: str) -> Verdict | None:
        a, b = ref.found, m.found
        if kind != "hand" or not a or not b or a.side is None or b.side is None or a.side == b.side:
            return None
        sure = self.limits.side_score
        if (a.side_score or 0) < sure or (b.side_score or 0) < sure:
            return None
        return Verdict(False, "side", b.side_score, sure, f"the {a.side} hand became a {b.side} hand")

    def _skeleton(self, m: Measures, ref: Measures, kind: str) -> Verdict | None:
        limit = self.limits.skeleton.get(kind)
        error = m.found.skeleton_error if m.found else None
        if limit is None or error is None:
            return None
        own = ref.found.skeleton_error if ref.found and ref.found.skeleton_error is not None else 0.0
        if error <= limit + own:
            return None
        return Verdict(False, "skeleton", error, limit + own, f"skeleton moved {error:.2f} > {limit + own:.2f}")

    def _identity(self, m: Measures, ref: Measures, kind: str) -> Verdict | None:
        if m.identity is None or m.identity <= self.limits.identity:
            return None
        text = f"candidate changed identity ({m.identity:.2f} > {self.limits.identity:.2f})"
        return Verdict(False, "identity", m.identity, self.limits.identity, text)

    def _pixels(self, m: Measures, ref: Measures, kind: str) -> Verdict | None:
        if m.pixels is None or kind not in PIXEL_CHECKED:
            return None
        colour, seam, detail = m.pixels.colour, m.pixels.seam, m.pixels.detail
        limits = self.limits
        if colour > limits.colour:
            return Verdict(False, "colour", colour, limits.colour,
                           f"colour shifted at the seam (ΔE {colour:.1f} > {limits.colour:.1f})")  # fmt: skip
        if seam > limits.seam:
            return Verdict(False, "seam", seam, limits.seam,
                           f"seam: the surroundings no longer match ({seam:.1f} > {limits.seam:.1f})")  # fmt: skip
        if detail < limits.detail:
            text = f"blurred (detail {detail:.2f} < {limits.detail:.2f})"
            return Verdict(False, "detail", detail, limits.detail, text)
        return None


def _timed(measures: Measures, name: str, fn, *args, **kwargs):
    start = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    finally:
        measures.timings_ms[name] = measures.timings_ms.get(name, 0.0) + (time.perf_counter() - start) * 1000.0
