"""Diagnosis records: one ``Part`` per hand, face or body, each with an anomaly score in [0, 1],
an AbHuman-aligned category and the reasons that produced the score."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..detect.types import Box

# AbHuman's box-level classes (Abnormal Head/Neck/Body/Arm/Hand/Leg/Foot/Multi), lower-cased.
CATEGORIES = ("hand", "face", "head", "neck", "arm", "leg", "foot", "body", "multi")
KINDS = ("hand", "face", "body")


def ramp(value: float, start: float, full: float) -> float:
    """0 at ``start``, 1 at ``full`` (either direction), linear in between."""
    if full == start:
        return float(value >= full)
    return float(min(1.0, max(0.0, (value - start) / (full - start))))


@dataclass
class Signal:
    """One piece of evidence: a measured value, its anomaly score in [0, 1], and why."""

    name: str
    value: float
    score: float  # what it adds to the part's score (the learned check weights the landmark signals down)
    reason: str
    category: str = ""  # overrides the part's category when this signal dominates
    evidence: float | None = None  # its own score before any weighting (None: ``score`` is that)

    @property
    def strength(self) -> float:
        """How strongly the signal itself speaks, whatever weight it carries in the part's score."""
        return self.score if self.evidence is None else self.evidence


def worst_first(scores: list[float], kinds: list[str], boxes: list, evidence: list[float] | None = None) -> list[int]:
    """Part indices, worst first. Equal scores are common (the learned check gives every part of a
    kind the same score); they go hands, faces, bodies, then by the landmark signals' own ``evidence``
    (which stays out of the learned score), then the larger part first: the more visible one, and on
    the FoundHand images with two equally scored hands (3 of 13) the one holding the malformed region
    every time."""

    def key(i: int) -> tuple:
        x0, y0, x1, y1 = boxes[i]
        kind = KINDS.index(kinds[i]) if kinds[i] in KINDS else len(KINDS)
        return (-scores[i], kind, -(evidence[i] if evidence else 0.0), -(x1 - x0) * (y1 - y0))

    return sorted(range(len(scores)), key=key)


def combine(signals: list[Signal]) -> float:
    """Noisy-or: independent pieces of evidence add up, none can exceed 1."""
    keep = 1.0
    for s in signals:
        keep *= 1.0 - min(max(s.score, 0.0), 1.0)
    return 1.0 - keep


@dataclass
class Part:
    kind: str  # "hand" | "face" | "body"
    side: str | None  # "left" | "right" for hands, None otherwise
    person: int | None  # index into the image's people, None = unlinked
    box: Box
    category: str
    signals: list[Signal] = field(default_factory=list)
    index: int | None = None  # index into Detections.hands/faces (None for synthetic parts)
    focus: Box | None = None  # where inside the box the error most likely is (hands: the fingers); None: all of it

    REASON_MIN = 0.15  # signals weaker than this (``strength``) are kept in ``signals`` but not told as reasons

    @property
    def score(self) -> float:
        return combine(self.signals)

    @property
    def landmark_evidence(self) -> float:
        """The landmark signals' own evidence (noisy-or of their strengths), whatever weight they carry."""
        keep = 1.0
        for s in self.signals:
            if s.name != "learned":
                keep *= 1.0 - min(max(s.strength, 0.0), 1.0)
        return 1.0 - keep

    @property
    def reasons(self) -> list[str]:
        # what each adds to the score first, then (signals weighted alike, e.g. at 0) their own strength
        strong = [s for s in self.signals if s.strength >= self.REASON_MIN]
        strong.sort(key=lambda s: (-s.score, -s.strength))
        return [s.reason for s in strong]

    @property
    def main_category(self) -> str:
        strong = [s for s in self.signals if s.category and s.strength >= self.REASON_MIN]
        return max(strong, key=lambda s: (s.score, s.strength)).category if strong else self.category

    def label(self) -> str:
        who = f"P{self.person + 1} " if self.person is not None else ""
        side = f"{self.side} " if self.side else ""
        return f"{who}{side}{self.kind}"


@dataclass
class Diagnosis:
    width: int
    height: int
    parts: list[Part]
    threshold: float
    people: list[dict] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    image_score: float | None = None  # the learned check's image-level probability (None: not run)
    notes: list[str] = field(default_factory=list)  # one line each, e.g. why the learned check is off
    learned: object | None = field(default=None, repr=False)  # learned.LearnedResult (embeddings) when it ran

    @property
    def score(self) -> float:
        """The image's score: its highest part score (with the learned check, the image score, which the
        most blamed kind's parts carry); with no part found, the learned image score (else 0)."""
        if not self.parts:
            return self.image_score or 0.0
        return max(p.score for p in self.parts)

    @property
    def verdict(self) -> str:
        return "suspect" if self.score >= self.threshold else "ok"

    def worst_first(self) -> list[int]:
        """Indices into ``parts``, worst first (see ``worst_first``)."""
        parts = self.parts
        scores, kinds, boxes = [p.score for p in parts], [p.kind for p in parts], [p.box for p in parts]
        return worst_first(scores, kinds, boxes, [p.landmark_evidence for p in parts])

    def flagged(self) -> list[Part]:
        """The parts at or above the threshold, worst first."""
        return [self.parts[i] for i in self.worst_first() if self.parts[i].score >= self.threshold]
