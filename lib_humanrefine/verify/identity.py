"""Is the refined face still the same person? dlib's ResNet face descriptor (128 numbers per face,
trained so that one person's photos lie within 0.6 of each other) of the face before and after.

Both descriptors are taken from the same aligned face chip: the 5-point aligner runs on the
original only, and the candidate's chip is cut where the original's was. Aligning each image on
its own adds the aligner's jitter to the distance (development images: an unchanged face then
measured up to 0.2 away from itself, against 0.04 with one alignment), and a candidate that moved
the face is compared with what is now where the face was — which is what the picture shows.

Optional like the learned check: it needs the ``dlib-bin`` runtime and two model files (the
descriptor and its 5-point aligner) from ``models fetch``; without them the judge says "identity
not checked" and decides on the other checks.
"""

from __future__ import annotations

import importlib.util
import threading

import numpy as np

from .. import models
from ..deps import pip_install_command
from ..errors import HumanRefineError

DLIB = "dlib-bin==20.0.1.post1"

_lock = threading.Lock()
_loaded: dict[str, object] = {}  # models folder -> FaceIdentity, or the one-line note why not


class FaceIdentity:
    """The aligner and the descriptor network, loaded once per process."""

    def __init__(self):
        import dlib  # lazily: only the judge of a face step needs it

        self._dlib = dlib
        self._aligner = dlib.shape_predictor(str(models.model_path(models.FACE_ALIGNER)))
        self._network = dlib.face_recognition_model_v1(str(models.model_path(models.FACE_DESCRIPTOR)))

    def align(self, image: np.ndarray, box):
        """The face's five alignment points inside ``box`` (x0, y0, x1, y1, image pixels) of an RGB image."""
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        rect = self._dlib.rectangle(x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))
        with _lock:  # dlib's objects are not documented as thread-safe
            return self._aligner(np.ascontiguousarray(image, dtype=np.uint8), rect)

    def descriptor(self, image: np.ndarray, alignment) -> np.ndarray:
        """The descriptor of the face chip ``alignment`` (from ``align``) cuts out of ``image``."""
        with _lock:
            chip = self._network.compute_face_descriptor(np.ascontiguousarray(image, dtype=np.uint8), alignment, 0)
        return np.asarray(chip, np.float32)


def status() -> tuple[FaceIdentity | None, str | None]:
    """(identity, None) when the identity check can run, else (None, one-line note)."""
    key = str(models.models_dir())
    with _lock:
        if key not in _loaded:
            _loaded[key] = _load()
        found = _loaded[key]
    return (found, None) if isinstance(found, FaceIdentity) else (None, str(found))


def _load() -> FaceIdentity | str:
    if importlib.util.find_spec("dlib") is None:
        return f"identity not checked: dlib is not installed ({pip_install_command(DLIB)})"
    try:
        models.model_path(models.FACE_DESCRIPTOR)
        models.model_path(models.FACE_ALIGNER)
    except HumanRefineError:
        return f"identity not checked: the face descriptor model is missing; run: {models.fetch_command()}"
    try:
        return FaceIdentity()
    except Exception as exc:  # a dlib build that cannot read the files: say so, never fail the refinement
        return f"identity not checked: dlib could not load the face models ({exc.__class__.__name__})"


def forget() -> None:
    """Drop the loaded models (tests)."""
    with _lock:
        _loaded.clear()


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32)))
