"""Trained heads on CLIP embeddings, applied with plain numpy (scikit-learn is needed only to fit them).

A heads file (``.npz``, no pickles) holds one logistic head for the whole image and one per part
kind (hand, face, body), the calibration of the image score, the weight the landmark signals keep
next to the learned one, and the sensitivity presets' thresholds. It is tied to the encoder it was
trained on by the encoder's SHA-256: heads made for another encoder are refused with one line.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import HumanRefineError

HEADS_VERSION = 1
PART_KINDS = ("hand", "face", "body")
# Square crop side = context x the part box's longer side (the image: letterboxed whole).
CONTEXT = {"hand": 2.0, "face": 2.0, "body": 1.1}
PRESETS = ("strict", "balanced", "relaxed")
# Largest share of the development images' normal people each preset may flag (false alarms).
PRESET_FALSE_ALARMS = {"strict": 0.20, "balanced": 0.10, "relaxed": 0.05}
BUNDLED = Path(__file__).with_name("heads.npz")


class BadHeads(HumanRefineError):
    """A heads file that cannot be used (unreadable, another version, another encoder)."""


@dataclass
class Linear:
    """A logistic head: logit = x . w + b."""

    w: np.ndarray
    b: float

    def logit(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float64) @ self.w + self.b


@dataclass
class Heads:
    encoder_sha256: str
    image: Linear
    parts: dict[str, Linear]  # kind -> head; a kind without training data is absent
    platt: tuple[float, float] = (1.0, 0.0)  # calibrated image score = sigmoid(a * logit + b)
    landmark_weight: float = 1.0  # landmark signals' scores are multiplied by this next to the learned one
    thresholds: dict[str, float] = field(default_factory=dict)  # preset -> threshold on the image score
    context: dict[str, float] = field(default_factory=lambda: dict(CONTEXT))
    info: dict = field(default_factory=dict)  # what it was trained on, measured figures
    trained_images: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))  # image fingerprints

    def image_probability(self, embedding: np.ndarray) -> float:
        a, b = self.platt
        return sigmoid(a * float(self.image.logit(embedding)) + b)

    def part_logits(self, kinds: list[str], embeddings: np.ndarray) -> np.ndarray:
        """One logit per part; 0 (no preference) for a kind without a head."""
        out = np.zeros(len(kinds))
        for i, kind in enumerate(kinds):
            head = self.parts.get(kind)
            if head is not None:
                out[i] = float(head.logit(embeddings[i]))
        return out


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def part_shares(logits: np.ndarray) -> np.ndarray:
    """Each part's share of the blame: its part-head probability over the most suspicious part's (top = 1).

    A ratio of probabilities, not of odds, so that two parts the heads rate alike keep alike scores
    and a slight change of one crop moves the others' scores only slightly."""
    if len(logits) == 0:
        return np.asarray(logits, float)
    probabilities = 1.0 / (1.0 + np.exp(-np.asarray(logits, float)))
    return probabilities / probabilities.max()


def write(heads: Heads, path: Path) -> None:
    """The heads as a compressed .npz (no pickles), written atomically."""
    meta = {
        "version": HEADS_VERSION,
        "encoder_sha256": heads.encoder_sha256,
        "platt": list(heads.platt),
        "landmark_weight": heads.landmark_weight,
        "thresholds": heads.thresholds,
        "context": heads.context,
        "image_bias": heads.image.b,
        "part_bias": {k: h.b for k, h in heads.parts.items()},
        "info": heads.info,
    }
    arrays = {"meta": np.array(json.dumps(meta, sort_keys=True)), "image_w": heads.image.w.astype(np.float32)}
    arrays.update({f"{k}_w": h.w.astype(np.float32) for k, h in heads.parts.items()})
    arrays["trained_images"] = heads.trained_images.astype(np.uint64)
    from ..atomic import npz_bytes, write_bytes

    write_bytes(Path(path), npz_bytes(**arrays))


def load(path: Path, encoder_sha256: str | None = None) -> Heads:
    """Read a heads file; BadHeads (one line) when it is unreadable, of another version or encoder."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {k: data[k] for k in data.files if k != "meta"}
    except (OSError, ValueError, KeyError) as exc:
        raise BadHeads(f"learned heads {path} cannot be read ({exc.__class__.__name__})") from None
    if meta.get("version") != HEADS_VERSION:
        version = meta.get("version")
        raise BadHeads(f"learned heads {path.name} are version {version}, this HumanRefine reads {HEADS_VERSION}")
    if encoder_sha256 and meta.get("encoder_sha256") != encoder_sha256:
        raise BadHeads(
            f"learned heads {path.name} were trained for another encoder "
            f"(SHA-256 {str(meta.get('encoder_sha256'))[:12]}…); retrain them with: python -m lib_humanrefine train"
        )
    return Heads(
        encoder_sha256=meta["encoder_sha256"],
        image=Linear(arrays["image_w"].astype(np.float64), float(meta["image_bias"])),
        parts={
            k: Linear(arrays[f"{k}_w"].astype(np.float64), float(b))
            for k, b in meta["part_bias"].items()
            if f"{k}_w" in arrays
        },
        platt=tuple(meta["platt"]),
        landmark_weight=float(meta["landmark_weight"]),
        thresholds={k: float(v) for k, v in meta["thresholds"].items()},
        context={k: float(v) for k, v in meta["context"].items()},
        info=meta.get("info", {}),
        trained_images=arrays.get("trained_images", np.zeros(0, np.uint64)),
    )
