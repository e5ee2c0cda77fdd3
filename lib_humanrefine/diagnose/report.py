"""The diagnosis as JSON (``report.json``) and as one short infotext line."""

from __future__ import annotations

from .. import __version__
from .types import Diagnosis, Part

REPORT_VERSION = 1


def part_dict(part: Part) -> dict:
    return {
        "kind": part.kind,
        "side": part.side,
        "person": part.person,
        "box": [round(float(v), 1) for v in part.box],
        "focus": None if part.focus is None else [round(float(v), 1) for v in part.focus],
        "score": round(part.score, 3),
        "category": part.main_category,
        "reasons": part.reasons,
        "signals": {s.name: {"value": s.value, "score": round(s.score, 3)} for s in part.signals},
    }


def image_dict(diagnosis: Diagnosis, path: str | None = None) -> dict:
    return {
        "path": path,
        "width": diagnosis.width,
        "height": diagnosis.height,
        "verdict": diagnosis.verdict,
        "score": round(diagnosis.score, 3),
        "image_score": None if diagnosis.image_score is None else round(diagnosis.image_score, 3),
        "threshold": diagnosis.threshold,
        "people": diagnosis.people,
        "parts": [part_dict(p) for p in diagnosis.parts],
        "timings_ms": {k: round(v, 1) for k, v in diagnosis.timings_ms.items()},
        "notes": list(diagnosis.notes),
    }


def report_dict(images: list[dict], skipped: list[dict] | None = None, complete: bool = True) -> dict:
    """``skipped``: ``{"path", "error"}`` of each image that could not be diagnosed; ``complete`` is
    False when the run stopped early (interrupted, or an error every further image would hit)."""
    return {
        "version": REPORT_VERSION,
        "humanrefine": __version__,
        "complete": complete,
        "images": images,
        "skipped": skipped or [],
    }


def summary(diagnosis: Diagnosis, max_parts: int = 3) -> str:
    """One line for the image's infotext, e.g. ``suspect 0.82: P1 right hand 0.82 (ring finger ...)``.

    Commas and colons are avoided inside the value so WebUI infotext parsing stays intact.
    """
    head = f"{diagnosis.verdict} {diagnosis.score:.2f}"
    notes = "".join(f" [{note}]" for note in diagnosis.notes)
    flagged = diagnosis.flagged()[:max_parts]
    if not flagged:
        text = f"{head} ({len(diagnosis.people)} people; {len(diagnosis.parts)} parts checked){notes}"
        return text.replace(",", " ").replace(":", " ")
    items = []
    for part in flagged:
        reason = part.reasons[0] if part.reasons else part.main_category
        items.append(f"{part.label()} {part.score:.2f} ({reason})")
    return (head + " - " + "; ".join(items) + notes).replace(",", " ").replace(":", " ")
