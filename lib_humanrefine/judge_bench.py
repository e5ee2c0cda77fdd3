"""The judge benchmark (``bench --judge``): does verification keep what it should and reject what
it should?

For each development image the real engine plans a pass for every hand and face (policy
``all``); a stand-in host answers each pass's first request with a candidate made in code from
the request's own crop (``candidates``: benign re-encodes and the bad candidates users meet) and
returns the seam pass's crop as it came. The engine composites the candidate as it would a
generated one, and the judge measures it against the original.

The judge's fitted limits (identity, colour, seam, detail) are then chosen on every group of
images but one and applied to the held-out group, so no limit is ever fitted on the images it is
scored on; groups are prompts and sources (``training.data``). The table gives, per candidate
and part kind, the share the judge accepted (benign: should be about 1; bad: about 0), held out
and with the shipped limits. Published before/after pairs (``*_original``/``*_refined``,
``*_before``/``*_after``) are judged too: is the published fix kept?
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from .conditions.crop import crop_image
from .engine import run_candidate
from .hosts.base import InpaintRequest
from .plan import PlanOptions, Step, make_plan
from .verify import Judge, Limits, Measures
from .verify import candidates as made

# Which candidates each fitted limit is there to catch, how many of them it must catch on the
# training groups, and which way it points (">": reject above the limit, "<": below). The anatomy
# checks' limits are not fitted: MediaPipe's presence threshold and HandRefiner-style skeleton limits.
FITTED = {
    "identity": (("other face",), 0.95, ">"),
    "colour": (("colour cast",), 0.90, ">"),
    "seam": (("shifted",), 0.90, ">"),
    "detail": (("blur",), 0.90, "<"),
}
BENIGN_KEPT = 0.99  # a fitted limit never rejects more than 1 % of the benign candidates it was fitted on
PART_KINDS = ("hand", "face")
PAIRS = (("_original", "_refined"), ("_before", "_after"))


@dataclass
class Row:
    """One candidate of one step, measured."""

    image: str
    group: str
    kind: str  # the step's kind: hand / face
    candidate: str  # a name in candidates.MAKERS
    bad: bool
    measures: Measures
    reference: Measures


class MadeUpHost:
    """Answers a step's first request with ``maker``'s candidate; later requests (the seam pass)
    get their crop back unchanged."""

    def __init__(self, maker: made.Maker, context: made.Context):
        self.maker, self.context, self.calls = maker, context, 0

    def inpaint(self, request: InpaintRequest) -> np.ndarray:
        self.calls += 1
        return self.maker(request.image, self.context) if self.calls == 1 else request.image.copy()


def crop_context(step: Step, rng: np.random.Generator) -> made.Context:
    """The step's keypoints and size in the pixels of the crop a host receives."""
    sx, sy = step.size[0] / step.crop.width, step.size[1] / step.crop.height
    points = None if step.keypoints is None else (step.keypoints - (step.crop.x0, step.crop.y0)) * (sx, sy)
    return made.Context(points, step.part_size * sx, rng)


def _mesh_shape(landmarks: np.ndarray) -> np.ndarray:
    points = landmarks[:, :2] - landmarks[:, :2].mean(axis=0)
    return points / max(float(np.linalg.norm(points)), 1e-6)


def _pose_gap(a: np.ndarray, b: np.ndarray) -> float:
    """How differently two normalised meshes are posed: the residual after rotating and scaling ``b``
    onto ``a`` at best (orthogonal Procrustes)."""
    u, s, vt = np.linalg.svd(b.T @ a)
    return float(np.linalg.norm(a - (b @ (u @ vt)) * s.sum()))


@dataclass
class _Face:
    group: str
    image: np.ndarray
    landmarks: np.ndarray


def donor_for(landmarks: np.ndarray, group: str, faces: list[_Face]) -> made.Donor | None:
    """Another group's face posed most like this one, so the swap is a plausible other person."""
    others = [f for f in faces if f.group != group]
    if not others:
        return None
    shape = _mesh_shape(landmarks)
    best = min(others, key=lambda f: _pose_gap(shape, _mesh_shape(f.landmarks)))
    return made.Donor(best.image, best.landmarks)


def collect(
    samples, judge: Judge | None = None, names: Iterable[str] | None = None, progress: TextIO | None = None
) -> list[Row]:
    """Measure every candidate of every hand and face step of ``samples`` (``training.data.Sample``)."""
    from .diagnose import diagnose_image
    from .images import load_image

    judge = judge or Judge()
    names = list(names or made.MAKERS)
    planned = []
    for sample in samples:
        image = load_image(sample.path)
        detections, diagnosis = diagnose_image(image, learned=False)
        plan = make_plan(image, detections, diagnosis, PlanOptions(policy="all"))
        steps = [s for s in plan.steps if s.kind in PART_KINDS]
        if steps:
            planned.append((sample, image, steps))
    faces = [
        _Face(sample.group, image, step.keypoints)
        for sample, image, steps in planned for step in steps if step.kind == "face" and step.keypoints is not None
    ]  # fmt: skip
    rows: list[Row] = []
    start = time.perf_counter()
    for n, (sample, image, steps) in enumerate(planned):
        others = [im for s, im, _ in planned if s.group != sample.group]
        for step in steps:
            reference = judge.reference(image, step)
            donor = (
                None
                if step.kind != "face" or step.keypoints is None
                else donor_for(step.keypoints, sample.group, faces)
            )
            for name in names:
                if not made.applies(name, step.kind) or (name == "other face" and donor is None):
                    continue
                context = crop_context(step, np.random.default_rng(1000 * n + step.index))
                context.donor, context.other = donor, others[(n + step.index) % len(others)] if others else None
                if name == "other picture" and context.other is None:
                    continue
                candidate = run_candidate(image, step, MadeUpHost(made.MAKERS[name], context), step.seed)
                measures = judge.measure(image, candidate, step, reference)
                rows.append(Row(str(sample.path), sample.group, step.kind, name, name in made.BAD, measures, reference))
        if progress is not None:
            progress.write(f"judge bench: {n + 1}/{len(planned)} images, {time.perf_counter() - start:.0f} s\n")
    return rows


# --- fitting and scoring --------------------------------------------------------------------


def value(row: Row, check: str) -> float | None:
    m = row.measures
    if check == "identity":
        return m.identity
    return None if m.pixels is None else float(getattr(m.pixels, check))


def fit_limit(benign: np.ndarray, bad: np.ndarray, catch: float, direction: str) -> float:
    """The loosest limit that still rejects ``catch`` of the bad values, unless that would reject
    more than 1 % of the benign ones (then the benign values decide). Loosest, because a real fix
    changes its part more than a re-encode does: a tight limit would throw good fixes away."""
    sign = 1.0 if direction == ">" else -1.0
    benign, bad = sign * np.asarray(benign, float), sign * np.asarray(bad, float)
    limit = float(np.quantile(bad, 1.0 - catch)) if len(bad) else np.inf
    if len(benign):
        limit = max(limit, float(np.quantile(benign, BENIGN_KEPT)))
    return sign * limit


def fit(rows: list[Row], base: Limits | None = None) -> Limits:
    """The fitted limits from ``rows``; the others as in ``base``."""
    base = base or Limits()
    fitted = {}
    for check, (targets, catch, direction) in FITTED.items():
        benign = [v for r in rows if not r.bad and (v := value(r, check)) is not None]
        bad = [v for r in rows if r.candidate in targets and (v := value(r, check)) is not None]
        fitted[check] = (
            round(fit_limit(np.array(benign), np.array(bad), catch, direction), 3) if bad else getattr(base, check)
        )
    return replace(base, **fitted)


def decisions(rows: list[Row], limits: Limits) -> list[bool]:
    judge = Judge(limits)
    return [judge.decide(r.measures, r.reference, r.kind).passed for r in rows]


def held_out(rows: list[Row], base: Limits | None = None) -> tuple[list[bool], dict[str, Limits]]:
    """Each group's rows decided with limits fitted on the other groups' rows."""
    kept = [False] * len(rows)
    per_group = {}
    for group in sorted({r.group for r in rows}):
        inside = [i for i, r in enumerate(rows) if r.group == group]
        limits = fit([r for r in rows if r.group != group], base)
        per_group[group] = limits
        for i, ok in zip(inside, decisions([rows[i] for i in inside], limits)):
            kept[i] = ok
    return kept, per_group


def table(rows: list[Row], kept: list[bool]) -> list[dict]:
    """Per candidate (benign first) and part kind: how many were measured and the share kept."""
    out = []
    for name in made.MAKERS:
        line = {"candidate": name, "bad": name in made.BAD}
        for kind in PART_KINDS:
            picked = [k for r, k in zip(rows, kept) if r.candidate == name and r.kind == kind]
            line[kind] = {"n": len(picked), "kept": round(float(np.mean(picked)), 3) if picked else None}
        out.append(line)
    return out


def rejected_by(rows: list[Row], limits: Limits) -> dict[str, dict[str, int]]:
    """For each bad candidate, which check rejected it how often (the first failing check)."""
    judge = Judge(limits)
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        if r.bad:
            check = judge.decide(r.measures, r.reference, r.kind).check or "kept"
            out.setdefault(r.candidate, {}).setdefault(check, 0)
            out[r.candidate][check] += 1
    return out


def timings(rows: list[Row]) -> dict[str, dict[str, float]]:
    """Median milliseconds per candidate for each measure, per part kind."""
    out: dict[str, dict[str, float]] = {}
    for kind in PART_KINDS:
        measured = [r.measures.timings_ms for r in rows if r.kind == kind]
        names = sorted({name for t in measured for name in t})
        out[kind] = {name: round(float(np.median([t[name] for t in measured if name in t])), 1) for name in names}
    return out


# --- published pairs ------------------------------------------------------------------------


def find_pairs(folders: Iterable[Path]) -> list[tuple[Path, Path]]:
    """``X_original.*`` with ``X_refined.*`` (or ``_before``/``_after``) in the same folder."""
    pairs = []
    for folder in folders:
        files = {
            p.stem: p for p in sorted(Path(folder).rglob("*")) if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp")
        }
        for stem, path in files.items():
            for first, second in PAIRS:
                if stem.endswith(first) and (other := files.get(re.sub(f"{first}$", second, stem))) is not None:
                    pairs.append((path, other))
    return pairs


class PublishedFixHost:
    """Answers every request of a step (the part, then its seam ring) with the published fix's
    pixels of that crop, as if a host had generated them."""

    def __init__(self, fixed: np.ndarray, step: Step):
        self.fixed, self.step = fixed, step

    def inpaint(self, request: InpaintRequest) -> np.ndarray:
        return crop_image(self.fixed, self.step.crop, request.size)


def judge_pair(before: Path, after: Path, judge: Judge) -> list[dict]:
    """Each hand and face step of ``before`` with the published fix as its candidate, composited
    by the engine as a generated crop would be, then judged."""
    from .diagnose import diagnose_image
    from .images import load_image

    original, fixed = load_image(before), load_image(after)
    if fixed.shape != original.shape:
        fixed = cv2.resize(fixed, (original.shape[1], original.shape[0]), interpolation=cv2.INTER_AREA)
    detections, diagnosis = diagnose_image(original, learned=False)
    changed = np.abs(fixed.astype(int) - original.astype(int)).max(axis=2) > 8
    out = []
    for step in make_plan(original, detections, diagnosis, PlanOptions(policy="all")).steps:
        if step.kind not in PART_KINDS:
            continue
        if not (changed & (np.maximum(step.mask, step.ring) > 0)).any():
            out.append({"part": step.part.label(), "published fix": "does not touch this part"})
            continue
        candidate = run_candidate(original, step, PublishedFixHost(fixed, step), step.seed)
        reference = judge.reference(original, step)
        measures = judge.measure(original, candidate, step, reference)
        verdict = judge.decide(measures, reference, step.kind)
        out.append({
            "part": step.part.label(), "kept": verdict.passed, "reason": verdict.reason or "passed",
            **measures.describe(),
        })  # fmt: skip
    return out


def run_judge_bench(samples, folders, progress: TextIO | None = None, limits: Limits | None = None) -> dict:
    """The whole benchmark: the table held out and with ``limits`` (default: the shipped ones),
    what rejected each bad candidate, the limits fitted on everything, the published pairs, timings."""
    from .metrics import rss_mb
    from .verify import identity

    shipped = limits or Limits()
    rss_start = rss_mb()
    identity.status()  # load the face models first, to measure what they cost
    rss_identity = rss_mb() - rss_start
    judge = Judge(shipped)
    rows = collect(samples, judge, progress=progress)
    kept, per_group = held_out(rows, shipped)
    on_all = fit(rows, shipped)
    spread = {}
    for check in FITTED:
        values = [getattr(limits_of, check) for limits_of in per_group.values()]
        spread[check] = [round(min(values), 3), round(max(values), 3)]
    return {
        "images": len({r.image for r in rows}),
        "groups": len(per_group),
        "steps": {kind: len({id(r.reference) for r in rows if r.kind == kind}) for kind in PART_KINDS},
        "held_out": table(rows, kept),
        "shipped": table(rows, decisions(rows, shipped)),
        "rejected_by_shipped": rejected_by(rows, shipped),
        "limits_shipped": shipped.describe(),
        "limits_fitted_on_all": {check: getattr(on_all, check) for check in FITTED},
        "limits_held_out_range": spread,
        "published_pairs": [
            {"before": str(a), "after": str(b), "steps": judge_pair(a, b, judge)} for a, b in find_pairs(folders)
        ],
        "ms_per_candidate": timings(rows),
        "rss_mb": {"identity_models": round(rss_identity, 1), "end": round(rss_mb(), 1)},
    }


def format_table(result: dict) -> str:
    """The held-out table as Markdown: per candidate, the share kept for hands and faces."""
    lines = ["| candidate | should be | hands kept | faces kept |", "|---|---|---|---|"]
    for line in result["held_out"]:
        cells = []
        for kind in PART_KINDS:
            got = line[kind]
            cells.append("-" if got["kept"] is None else f"{got['kept']:.2f} ({got['n']})")
        lines.append(f"| {line['candidate']} | {'0' if line['bad'] else '1'} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)
