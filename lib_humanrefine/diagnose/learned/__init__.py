"""The learned check: the CLIP image embedding of the whole image, scored by trained heads.

Whether an image is malformed comes from the image head alone (a plain probe, calibrated); which
part is to blame from each kind's share of the blame and the landmark signals: each part gets a
learned signal of ``image score x its kind's share``, where the most blamed kind present has share
1 (``Heads.part_shares``: shares counted in training, with the kind head ranking hands and people
in each image), and among parts of one kind the landmark signals' own evidence goes first
(``diagnose.types.worst_first``). The landmark signals stay as reasons; their weight in the score
(``Heads.landmark_weight``) is 0 for heads version 6 (``training.train.LANDMARK_WEIGHT``).

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

from ... import models
from ...deps import install_command
from ...errors import HumanRefineError
from . import heads as heads_mod
from .encoder import Encoder, whole_image
from .heads import PRESETS, Heads

__all__ = ["LearnedResult", "learned_check", "sensitivity_threshold", "status"]

ENV_HEADS = "HUMANREFINE_HEADS"
USER_HEADS = "learned_heads.npz"  # in the models folder: a user's retrained heads win over the bundled ones
# The presets on the landmark-only score (no encoder). On the development images these flag 27 %,
# 22 % and 21 % of the normal ones (bench --no-learned reports it): a fifth of normal images score
# 1.0, so without the encoder no threshold holds the presets' false-alarm targets.
LANDMARK_THRESHOLDS = {"strict": 0.7, "balanced": 0.9, "relaxed": 1.0}
KIND_WORDS = {"hand": "hand", "face": "face", "body": "person"}


@dataclass
class LearnedResult:
    image_score: float  # calibrated probability that the image shows a malformed person
    part_scores: list[float]  # learned signal score per part: image score x the part's share
    part_shares: list[float]  # each part's share of the blame (its kind's, the most blamed kind present 1)
    image_embedding: np.ndarray  # (512,)
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
        return None, f"learned check off: the CLIP encoder is missing or corrupt; run: {models.fetch_command()}"
    if importlib.util.find_spec("onnxruntime") is None:
        return (
            None,
            f"learned check off: onnxruntime is not installed; install it with: {install_command('onnxruntime')}",
        )
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


def noisy_or(scores) -> float:
    keep = 1.0
    for s in scores:
        keep *= 1.0 - min(max(float(s), 0.0), 1.0)
    return 1.0 - keep


def score_features(
    heads: Heads, image_embedding: np.ndarray, kinds: list[str], landmark_signals: list
) -> tuple[float, list[float], list[float], list[float]]:
    """(image probability, learned score per part, share per part, fused part scores) from stored features.

    ``landmark_signals``: per part, the landmark signals' scores. The diagnosis computes the same
    numbers through Signals (``learned_check`` + ``Part.score``); bench and training use this."""
    p_image = heads.image_probability(image_embedding)
    shares = [float(s) for s in heads.part_shares(kinds, image_embedding)]
    learned = [p_image * share for share in shares]
    fused = [
        noisy_or([heads.landmark_weight * s for s in signals] + [score])
        for signals, score in zip(landmark_signals, learned)
    ]
    return p_image, learned, shares, fused


def embed_image(encoder: Encoder, image: np.ndarray) -> np.ndarray:
    """The whole image's embedding (letterboxed). Training and the diagnosis both embed here."""
    return encoder.embed([whole_image(image)])[0]


def learned_check(image: np.ndarray, parts) -> tuple[LearnedResult | None, str | None]:
    """Embed the image and score it and its parts; (None, note) when the check is off."""
    encoder, heads, note = status()
    if encoder is None or heads is None:
        return None, note
    image_embedding = embed_image(encoder, image)
    landmark = [[s.score for s in p.signals] for p in parts]
    p_image, learned, shares, _fused = score_features(heads, image_embedding, [p.kind for p in parts], landmark)
    return LearnedResult(p_image, learned, shares, image_embedding, landmark, heads.landmark_weight), None


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
