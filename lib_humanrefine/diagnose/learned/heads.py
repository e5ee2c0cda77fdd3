"""Trained heads on CLIP embeddings, applied with plain numpy (scikit-learn is needed only to fit them).

A heads file (``.npz``, no pickles) holds one logistic head for the whole image, each part kind's
share of the blame when an image is malformed (hand, face, body), a head that tells from the whole
image which kind is the worst in it (``KindHead``, version 5), the calibration of the image score,
the weight the landmark signals keep next to the learned one, and the sensitivity presets'
thresholds. It is tied to the encoder it was trained on by the encoder's SHA-256: heads made for
another encoder are refused with one line.

Version 1 also had a logistic head per part kind on a crop around each part. Those heads told the
broken part no better than the kind shares do (leave-one-group-out on the 169 development images:
the top part's kind was the worst-annotated one in 41 % of the malformed annotated images, against
54 % with the kind shares; the FoundHand hand holding the mask was the top part in 9 of 13 either
way; image AUROC 0.72 against 0.70) and cost one encoder run per part (about 75 ms each, up to
five), so version 2 dropped them. Version 3 reads the embeddings of the float32 encoder (see
``dequantize``); version 2's came from the INT8 activations, with the mirror image averaged in.
Version 4 reads the embeddings of JPEG-steadied crops (``encoder.steadied``). Version 5 adds the
kind head; version 4 files still load, without it (the counted shares alone decide the kind).
Version 6 is a plain probe (no re-save directions projected out, no landmark weight in the image
score, presets set on normal generated images) and carries the curvature of its training loss
(``prior``), so that ``train`` can add a user's labels to the bundled training without its images;
version 4 and 5 files still load.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import HumanRefineError

HEADS_VERSION = 6
READABLE_VERSIONS = (4, 5, 6)  # 4: no kind head; 6: the training's curvature (``prior``) where it was fitted
PART_KINDS = ("hand", "face", "body")
PRESETS = ("strict", "balanced", "relaxed")
# Largest share of the development images' normal people each preset may flag (false alarms).
PRESET_FALSE_ALARMS = {"strict": 0.20, "balanced": 0.10, "relaxed": 0.05}
BUNDLED = Path(__file__).with_name("heads.npz")
# How a kind the kind head finds less likely than another present one is demoted: its share is the
# top share times (its probability / the likeliest's) ** KIND_POWER. The head names the *worst* kind,
# and most malformed pictures have more than one bad kind, so the full ratio (power 1) demoted broken
# hands below the presets. Held out (leave one group out, 169 development images, the balanced
# preset; chosen on these same folds among 0.25, 0.5 and 1): the worst-annotated kind on top 41 of 59
# annotated images at 0.5 and 1 (40 at 0.25; counted shares alone 35); part AUROC hands 0.695 /
# people 0.822 at 0.5, 0.680 / 0.808 at 1, 0.699 / 0.815 counted; malformed parts flagged 47 of 210
# at 0.5, 42 at 1, 44 counted; normal parts flagged 12 of 304 at 0.5 and 1, 18 counted.
KIND_POWER = 0.5


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
class KindHead:
    """Which part kind is the worst in a malformed image, from its embedding: a multinomial logistic
    head over the kinds training had examples of (``kinds``; logits = w . x + b, one row per kind)."""

    kinds: tuple[str, ...]
    w: np.ndarray  # (len(kinds), 512)
    b: np.ndarray  # (len(kinds),)

    def probabilities(self, x: np.ndarray) -> dict[str, float]:
        logits = self.w @ np.asarray(x, np.float64) + self.b
        p = np.exp(logits - logits.max())
        return dict(zip(self.kinds, (p / p.sum()).tolist()))


@dataclass
class Heads:
    encoder_sha256: str
    image: Linear
    blame: dict[str, float] = field(default_factory=dict)  # kind -> share of the blame (top kind 1; absent: 1)
    platt: tuple[float, float] = (1.0, 0.0)  # calibrated image score = sigmoid(a * logit + b)
    landmark_weight: float = 0.0  # landmark signals' scores are multiplied by this next to the learned one
    thresholds: dict[str, float] = field(default_factory=dict)  # preset -> threshold on the image score
    info: dict = field(default_factory=dict)  # what it was trained on, measured figures
    trained_images: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))  # image fingerprints
    kind: KindHead | None = None  # which kind is worst in this image (None: the counted shares alone)
    # F (rows x 513, float16) with F^T F the image head's training-loss curvature over [w, b]
    # (``training.train.prior_factor``); None where no user labels can be added (older or taught heads)
    prior: np.ndarray | None = None

    def image_probability(self, embedding: np.ndarray) -> float:
        a, b = self.platt
        return sigmoid(a * float(self.image.logit(embedding)) + b)

    def part_shares(self, kinds: list[str], embedding: np.ndarray | None = None) -> np.ndarray:
        """Each part's share of the image score: its kind's blame over the most blamed kind in this
        image (so the most suspect kind present gets the whole score; parts of one kind share alike).

        With the kind head and the image's ``embedding``, the kinds present that the head knows are
        ranked by its probabilities instead of the counted shares: the likeliest keeps the highest
        counted share among them, the others that times (their probability over the likeliest's) **
        KIND_POWER. The other kinds (e.g. faces, which no training image had as its worst) keep their
        counted share."""
        blame = {kind: self.blame.get(kind, 1.0) for kind in kinds}
        if self.kind is not None and embedding is not None:
            p = self.kind.probabilities(embedding)
            known = [kind for kind in blame if kind in p]
            if known:
                top, likeliest = max(blame[k] for k in known), max(p[k] for k in known)
                blame.update({k: top * (p[k] / likeliest) ** KIND_POWER for k in known})
        shares = np.array([blame[kind] for kind in kinds], float)
        return shares / shares.max() if len(shares) else shares


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
    arrays = {"image_w": heads.image.w.astype(np.float32), "trained_images": heads.trained_images.astype(np.uint64)}
    if heads.kind is not None:
        meta["kind_head_kinds"] = list(heads.kind.kinds)
        arrays.update(kind_w=heads.kind.w.astype(np.float32), kind_b=heads.kind.b.astype(np.float32))
    if heads.prior is not None:
        arrays["image_prior"] = heads.prior.astype(np.float16)
    arrays = {"meta": np.array(json.dumps(meta, sort_keys=True)), **arrays}  # meta first, as before
    from ...atomic import npz_bytes, write_bytes

    write_bytes(Path(path), npz_bytes(**arrays))


def retrain_command(path: Path) -> str:
    """The command that writes new heads over ``path`` with the models folder in force (DIR: the
    user's labelled folders)."""
    from ... import models

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
    if meta.get("version") not in READABLE_VERSIONS:
        version = meta.get("version")
        readable = " and ".join(str(v) for v in READABLE_VERSIONS)
        raise BadHeads(
            f"learned heads {path.name} are version {version}, this HumanRefine reads versions {readable}; "
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
        kind=_kind_head(meta, arrays, path),
        prior=_prior(arrays, path),
    )


def _prior(arrays: dict, path: Path) -> np.ndarray | None:
    """The file's training curvature (None where it has none); BadHeads when it does not fit the head."""
    prior = arrays.get("image_prior")
    if prior is None:
        return None
    if prior.ndim != 2 or prior.shape[1] != len(arrays["image_w"]) + 1:
        raise BadHeads(f"learned heads {path} cannot be read (prior)")
    return prior


def _kind_head(meta: dict, arrays: dict, path: Path) -> KindHead | None:
    """The file's kind head (None in version 4 files); BadHeads when its parts do not fit together."""
    if "kind_w" not in arrays:
        return None
    kinds = tuple(meta.get("kind_head_kinds") or ())
    w, b = arrays["kind_w"], arrays.get("kind_b")
    if (
        b is None
        or not set(kinds) <= set(PART_KINDS)
        or w.shape != (len(kinds), len(arrays["image_w"]))
        or b.shape != (len(kinds),)
    ):
        raise BadHeads(f"learned heads {path} cannot be read (kind head)")
    return KindHead(kinds, w.astype(np.float64), b.astype(np.float64))
