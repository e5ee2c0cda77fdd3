"""The learned check: CLIP image embeddings of the whole image and of each part, scored by trained heads.

Whether an image is malformed comes from the image head (calibrated probability); which part is
to blame from the part heads: each part gets a learned signal of ``image score x its share``,
where the most suspicious part's share is 1 and the others' shrink with their part-head probability. The landmark
signals stay, weighted by what training measured they add (``Heads.landmark_weight``).

Optional by design: without onnxruntime, the encoder file or usable heads, ``learned_check``
returns a one-line note and the diagnosis keeps its landmark signals.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import models
from ..errors import HumanRefineError
from . import heads as heads_mod
from .encoder import Encoder, square_crop, whole_image
from .heads import CONTEXT, PRESETS, Heads, part_shares

__all__ = ["LearnedResult", "learned_check", "part_crop", "sensitivity_threshold", "status"]

ENV_HEADS = "HUMANREFINE_HEADS"
USER_HEADS = "learned_heads.npz"  # in the models folder: a user's retrained heads win over the bundled ones
MAX_PART_CROPS = 5  # parts embedded per image (people first, then faces, then hands; larger first)
# The presets on the landmark-only score (no encoder). On the development images these flag 27 %,
# 22 % and 21 % of the normal ones (bench --no-learned reports it): a fifth of normal images score
# 1.0, so without the encoder no threshold holds the presets' false-alarm targets.
LANDMARK_THRESHOLDS = {"strict": 0.7, "balanced": 0.9, "relaxed": 1.0}
KIND_WORDS = {"hand": "hand", "face": "face", "body": "person"}


@dataclass
class LearnedResult:
    image_score: float  # calibrated probability that the image shows a malformed person
    part_scores: list[float | None]  # learned signal score per part (None: not embedded)
    part_logits: list[float | None]
    image_embedding: np.ndarray  # (512,)
    part_embeddings: list[np.ndarray | None]
    landmark_signals: list[list[float]]  # per part, the landmark signals' scores before weighting
    landmark_weight: float


_lock = threading.Lock()
_checked: dict[tuple, tuple[Heads | None, str | None]] = {}
_encoders: dict[str, Encoder | str] = {}  # encoder file -> session, or why it did not load
_heads_override: Path | None = None


def set_heads_path(path: str | os.PathLike | None) -> None:
    """Use this heads file for the process (the CLI's ``--heads``)."""
    global _heads_override
    _heads_override = Path(path) if path else None


def heads_path() -> Path:
    """``set_heads_path`` > ``$HUMANREFINE_HEADS`` > ``<models folder>/learned_heads.npz`` > the bundled heads."""
    if _heads_override is not None:
        return _heads_override
    if os.environ.get(ENV_HEADS):
        return Path(os.environ[ENV_HEADS])
    user = models.models_dir() / USER_HEADS
    return user if user.is_file() else heads_mod.BUNDLED


def ready() -> tuple[Heads | None, str | None]:
    """(heads, None) when the learned check can run (heads usable, encoder file intact, onnxruntime
    importable), else (None, one-line note); loads no encoder. Cached per models folder and heads file."""
    key = (str(models.models_dir()), str(heads_path()))
    with _lock:
        if key not in _checked:
            _checked[key] = _check(heads_path())
        return _checked[key]


def _check(path: Path) -> tuple[Heads | None, str | None]:
    try:
        heads = heads_mod.load(path, encoder_sha256=models.MODELS[models.ENCODER].sha256)
    except HumanRefineError as exc:
        return None, f"learned check off: {exc}"
    try:
        models.model_path(models.ENCODER)
    except HumanRefineError:
        return None, f"learned check off: the CLIP encoder is missing or corrupt; run: {models.FETCH_COMMAND}"
    if importlib.util.find_spec("onnxruntime") is None:
        return None, "learned check off: onnxruntime is not installed (pip install onnxruntime==1.23.2)"
    return heads, None


def status() -> tuple[Encoder | None, Heads | None, str | None]:
    """(encoder, heads, None) when the learned check can run, else (None, None, one-line note).
    The encoder loads once per process (per models folder)."""
    heads, note = ready()
    if heads is None:
        return None, None, note
    key = str(models.model_path(models.ENCODER))
    with _lock:
        if key not in _encoders:
            try:
                _encoders[key] = Encoder(key)
            except Exception as exc:  # onnxruntime cannot load the file: report, never fail the diagnosis
                _encoders[key] = f"learned check off: the encoder did not load ({exc.__class__.__name__})"
        encoder = _encoders[key]
    if isinstance(encoder, str):
        return None, None, encoder
    return encoder, heads, None


def forget() -> None:
    """Drop the loaded encoder and heads (tests; after retraining)."""
    with _lock:
        _checked.clear()
        _encoders.clear()


def part_crop(image: np.ndarray, part, heads: Heads | None = None) -> np.ndarray:
    """The 224 px square the part heads see for ``part`` (anything with ``kind`` and ``box``).

    Save crops with this function to add a user's verdicts as ``part`` rows of a training folder."""
    context = (heads.context if heads else CONTEXT).get(part.kind, CONTEXT["hand"])
    return square_crop(image, part.box, context)


def crop_order(parts) -> list[int]:
    """Indices of the parts to embed: people, then faces, then hands, larger first; at most MAX_PART_CROPS."""
    rank = {"body": 0, "face": 1, "hand": 2}

    def area(p):
        x0, y0, x1, y1 = p.box
        return (x1 - x0) * (y1 - y0)

    order = sorted(range(len(parts)), key=lambda i: (rank.get(parts[i].kind, 3), -area(parts[i])))
    return order[:MAX_PART_CROPS]


def noisy_or(scores) -> float:
    keep = 1.0
    for s in scores:
        keep *= 1.0 - min(max(float(s), 0.0), 1.0)
    return 1.0 - keep


def score_features(
    heads: Heads, image_embedding: np.ndarray, kinds: list[str], part_embeddings: list, landmark_signals: list
) -> tuple[float, list[float | None], list[float | None], list[float]]:
    """(image probability, learned score per part, part logits, fused part scores) from stored features.

    ``landmark_signals``: per part, the landmark signals' scores. The diagnosis computes the same
    numbers through Signals (``learned_check`` + ``Part.score``); bench and training use this."""
    p_image = heads.image_probability(image_embedding)
    embedded = [i for i, e in enumerate(part_embeddings) if e is not None]
    logits = heads.part_logits([kinds[i] for i in embedded], np.array([part_embeddings[i] for i in embedded]))
    shares = part_shares(logits)
    learned: list[float | None] = [None] * len(kinds)
    part_logit: list[float | None] = [None] * len(kinds)
    for n, i in enumerate(embedded):
        learned[i] = p_image * float(shares[n])
        part_logit[i] = float(logits[n])
    fused = []
    for i in range(len(kinds)):
        weighted = [heads.landmark_weight * s for s in landmark_signals[i]]
        fused.append(noisy_or(weighted + ([learned[i]] if learned[i] is not None else [])))
    return p_image, learned, part_logit, fused


def image_score(p_image: float, fused: list[float]) -> float:
    """The image's score: its highest part score, or the image probability when no part was found."""
    return max(fused) if fused else p_image


def embed_image_and_parts(
    encoder: Encoder, image: np.ndarray, parts, context: dict[str, float] | None = None
) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """The whole image's embedding (mean of it and its mirror image, renormalised) and each embedded
    part's (None past ``MAX_PART_CROPS``). Training and the diagnosis both embed through here."""
    whole = whole_image(image)
    order = crop_order(parts)
    crops = [whole, whole[:, ::-1].copy()]
    for i in order:
        crops.append(square_crop(image, parts[i].box, (context or CONTEXT).get(parts[i].kind, CONTEXT["hand"])))
    embeds = encoder.embed(crops).embeds
    image_embedding = embeds[0] + embeds[1]
    image_embedding /= max(float(np.linalg.norm(image_embedding)), 1e-6)
    part_embeddings: list[np.ndarray | None] = [None] * len(parts)
    for n, i in enumerate(order):
        part_embeddings[i] = embeds[n + 2]
    return image_embedding, part_embeddings


def learned_check(image: np.ndarray, parts) -> tuple[LearnedResult | None, str | None]:
    """Embed the image and its parts and score them; (None, note) when the check is off."""
    encoder, heads, note = status()
    if encoder is None or heads is None:
        return None, note
    image_embedding, part_embeddings = embed_image_and_parts(encoder, image, parts, heads.context)
    landmark = [[s.score for s in p.signals] for p in parts]
    kinds = [p.kind for p in parts]
    p_image, learned, logits, _fused = score_features(heads, image_embedding, kinds, part_embeddings, landmark)
    result = LearnedResult(
        p_image, learned, logits, image_embedding, part_embeddings, landmark, heads.landmark_weight
    )  # fmt: skip
    return result, None


def sensitivity_threshold(preset: str, learned: bool = True) -> float:
    """The threshold a sensitivity preset stands for: strict flags more, relaxed fewer.

    Calibrated on the development images' false-alarm rates (``heads.PRESET_FALSE_ALARMS``): the
    learned heads' own thresholds when the learned check runs, else the landmark-only ones."""
    if preset not in PRESETS:
        raise HumanRefineError(f"sensitivity must be one of {', '.join(PRESETS)}, got {preset!r}")
    if learned:
        heads, _note = ready()
        if heads is not None and preset in heads.thresholds:
            return heads.thresholds[preset]
    return LANDMARK_THRESHOLDS[preset]


def apply_sensitivity(diagnosis, sensitivity: str, threshold: float) -> float:
    """Set (and return) the diagnosis's threshold from the user's choice: the slider's ``threshold``
    when ``sensitivity`` is "threshold", else the preset's threshold for the scores this diagnosis
    actually has (learned, or landmark-only when the learned check did not run)."""
    if sensitivity != "threshold":
        threshold = sensitivity_threshold(sensitivity, learned=diagnosis.learned is not None)
    diagnosis.threshold = threshold
    return threshold
