"""Trained heads on CLIP embeddings, applied with plain numpy (scikit-learn is needed only to fit them).

A heads file (``.npz``, no pickles) holds one logistic head for the whole image, each part kind's
share of the blame when an image is malformed (hand, face, body), the calibration of the image
score, the weight the landmark signals keep next to the learned one, and the sensitivity presets'
thresholds. It is tied to the encoder it was trained on by the encoder's SHA-256: heads made for
another encoder are refused with one line.

Version 1 also had a logistic head per part kind on a crop around each part. Those heads told the
broken part no better than the kind shares do (leave-one-group-out on the 169 development images:
the top part's kind was the worst-annotated one in 41 % of the malformed annotated images, against
54 % with the kind shares; the FoundHand hand holding the mask was the top part in 9 of 13 either
way; image AUROC 0.72 against 0.70) and cost one encoder run per part (about 75 ms each, up to
five), so version 2 dropped them. Version 3 reads the embeddings of the float32 encoder (see
``dequantize``); version 2's came from the INT8 activations, with the mirror image averaged in.
Version 4 reads the embeddings of JPEG-steadied crops (``encoder.steadied``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import HumanRefineError

HEADS_VERSION = 4
PART_KINDS = ("hand", "face", "body")
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
    blame: dict[str, float] = field(default_factory=dict)  # kind -> share of the blame (top kind 1; absent: 1)
    platt: tuple[float, float] = (1.0, 0.0)  # calibrated image score = sigmoid(a * logit + b)
    landmark_weight: float = 1.0  # landmark signals' scores are multiplied by this next to the learned one
    thresholds: dict[str, float] = field(default_factory=dict)  # preset -> threshold on the image score
    info: dict = field(default_factory=dict)  # what it was trained on, measured figures
    trained_images: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))  # image fingerprints

    def image_probability(self, embedding: np.ndarray) -> float:
        a, b = self.platt
        return sigmoid(a * float(self.image.logit(embedding)) + b)

    def part_shares(self, kinds: list[str]) -> np.ndarray:
        """Each part's share of the image score: its kind's blame over the most blamed kind in this
        image (so the most suspect kind present gets the whole score; parts of one kind share alike)."""
        blame = np.array([self.blame.get(kind, 1.0) for kind in kinds], float)
        return blame / blame.max() if len(blame) else blame


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def write(heads: Heads, path: Path) -> None:
    """The heads as a compressed .npz (no pickles), written atomically."""
    meta = {
        "version": HEADS_VERSION,
        "encoder_sha256": heads.encoder_sha256,
        "platt": list(heads.platt),
        "landmark_weight": heads.landmark_weight,
        "thresholds": heads.thresholds,
        "blame": heads.blame,
        "image_bias": heads.image.b,
        "info": heads.info,
    }
    arrays = {"meta": np.array(json.dumps(meta, sort_keys=True)), "image_w": heads.image.w.astype(np.float32)}
    arrays["trained_images"] = heads.trained_images.astype(np.uint64)
    from ..atomic import npz_bytes, write_bytes

    write_bytes(Path(path), npz_bytes(**arrays))


def retrain_command(path: Path) -> str:
    """The command that writes new heads over ``path`` with the models folder in force (DIR: the
    user's labelled folders)."""
    from .. import models

    return models.cli_command(["train", "--data", "DIR...", "--out", str(path)])


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
        raise BadHeads(
            f"learned heads {path.name} are version {version}, this HumanRefine reads {HEADS_VERSION}; "
            f"retrain them with: {retrain_command(path)}"
        )
    if encoder_sha256 and meta.get("encoder_sha256") != encoder_sha256:
        raise BadHeads(
            f"learned heads {path.name} were trained for another encoder "
            f"(SHA-256 {str(meta.get('encoder_sha256'))[:12]}…); retrain them with: {retrain_command(path)}"
        )
    return Heads(
        encoder_sha256=meta["encoder_sha256"],
        image=Linear(arrays["image_w"].astype(np.float64), float(meta["image_bias"])),
        blame={k: float(v) for k, v in meta["blame"].items()},
        platt=tuple(meta["platt"]),
        landmark_weight=float(meta["landmark_weight"]),
        thresholds={k: float(v) for k, v in meta["thresholds"].items()},
        info=meta.get("info", {}),
        trained_images=arrays.get("trained_images", np.zeros(0, np.uint64)),
    )
