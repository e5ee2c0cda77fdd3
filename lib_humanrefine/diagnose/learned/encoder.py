"""The CLIP ViT-B/16 image tower run with onnxruntime on the CPU, with float32 activations.

The registry's file is an INT8 export that quantizes activations at run time; ``dequantize``
rewrites it so that every matrix product runs in float32 on the file's INT8 weights, turned into
float32 one matrix at a time as the model runs. The weights stay INT8 in memory (85 MB): the
encoder holds about 140–165 MB once it has run, and loading it raises the process by at most
190 MB; turning all weights into float32 once at load, as before, held 420–490 MB and peaked near
1.26 GB while loading, for the same embeddings (cosine 0.9999999) at the same speed. The INT8
activations cost accuracy (see ``dequantize``) and did not steady the verdicts under re-compression
either.

One session per process. A crop is a square region of the image (padded with CLIP's mean colour
where it leaves the image) resized to 224 px with area interpolation; the diagnosis embeds the
whole image, letterboxed. Every crop passes through JPEG at quality 60 before it is embedded
(``steadied``), so that how the picture was saved moves its score less. Crops run one at a time,
so that a crop's embedding is a function of its own pixels only, bit for bit.

Measured on the same grouped folds (leave one group out, heads retrained each time): steadying at
quality 60 halved the worst score swing between PNG, JPEG q90 and WebP q80 copies (0.23 to 0.13)
and raised the generated-only AUROC (0.61 to 0.63) and recall at 10 % false alarms (0.13 to 0.33),
at 0.02 of overall AUROC (photos are told from generated images partly by their compression).
Harder steadying (quality 50 or 40) lost separation. Not adopted: averaging the embedding of the
mirror image (or of zoomed and shifted copies) in, no better with float32 (image-head AUROC 0.763
against 0.765) at twice the time; blurring the crops, which took away most of what separates
malformed from normal generated people.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import cv2
import numpy as np

SIZE = 224
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
PAD = tuple(round(float(v) * 255) for v in MEAN)
# Every crop passes through JPEG at this quality before it is embedded (see steadied).
STEADY_QUALITY = 60


def whole_image(image: np.ndarray, size: int = SIZE) -> np.ndarray:
    """The whole image letterboxed into a square (nothing cut off)."""
    h, w = image.shape[:2]
    side = max(h, w)
    x0, y0 = (w - side) / 2, (h - side) / 2
    return region_crop(image, (x0, y0, x0 + side, y0 + side), size)


def region_crop(image: np.ndarray, square, size: int = SIZE) -> np.ndarray:
    """The square (x0, y0, x1, y1) of the image, padded where it leaves the image, as size x size RGB."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (round(float(v)) for v in square)
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    inside = image[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
    if inside.size == 0:
        return np.full((size, size, 3), PAD, np.uint8)
    padded = cv2.copyMakeBorder(
        np.ascontiguousarray(inside), max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0),
        cv2.BORDER_CONSTANT, value=PAD,
    )  # fmt: skip
    interp = cv2.INTER_AREA if padded.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(padded, (size, size), interpolation=interp)


def steadied(crop: np.ndarray, quality: int = STEADY_QUALITY) -> np.ndarray:
    """The crop (RGB uint8) after a JPEG round trip at this quality.

    CLIP reads compression artifacts: the same picture saved as PNG, JPEG q90 and WebP q80 moved
    the score by up to 0.23 with heads version 3. Compressing every crop once more, harder than any of
    those, gives all three nearly the same artifacts, so the embedding follows what is drawn.
    """
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(crop[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1] if ok else crop


def to_tensor(crops: list[np.ndarray]) -> np.ndarray:
    batch = np.stack(crops).astype(np.float32) / 255.0
    return np.ascontiguousarray(((batch - MEAN) / STD).transpose(0, 3, 1, 2))


def _session(ort, path: Path, options):
    """The rewritten model (``dequantize.float_model``) as an onnxruntime session, loaded from a
    temporary file deleted as soon as the session holds the weights: given the model's bytes,
    onnxruntime parses them into a second copy while our copy is still alive."""
    from ...atomic import scratch_file
    from .dequantize import float_model

    pieces, _rewritten = float_model(path.read_bytes())
    try:
        name = scratch_file(pieces, ".onnx")
    except OSError:  # no writable temporary folder: from the bytes
        return ort.InferenceSession(b"".join(pieces), options, providers=["CPUExecutionProvider"])
    del pieces
    try:
        return ort.InferenceSession(str(name), options, providers=["CPUExecutionProvider"])
    finally:
        with contextlib.suppress(OSError):
            os.remove(name)


class Encoder:
    def __init__(self, path: str, threads: int | None = None):
        """``threads``: onnxruntime's intra-op threads (default: the detectors', ``$HUMANREFINE_THREADS`` or 2)."""
        import onnxruntime as ort

        from ...detect import runtime

        threads = threads or runtime.NUM_THREADS

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Threads spin between the ops of a run (about 10 % faster per crop than sleeping on these 2
        # cores) and stop the moment the run returns, so that between runs they leave the cores
        # LiteRT's detectors and the WebUI share alone, as with spinning off.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        options.add_session_config_entry("session.force_spinning_stop", "1")
        self.session = _session(ort, Path(path), options)
        self.session.disable_fallback()  # CPU only: nothing to fall back to
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name  # image_embeds (N x 512)
        self.lock = threading.Lock()

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """The L2-normalised 512-d CLIP embeddings (N x 512) of SIZE x SIZE RGB uint8 crops, each run on its own."""
        with self.lock:
            embeds = [
                self.session.run([self.output_name], {self.input_name: to_tensor([steadied(c)])})[0][0] for c in crops
            ]
        embeds = np.array(embeds, np.float32).reshape(len(crops), -1)
        return embeds / np.maximum(np.linalg.norm(embeds, axis=1, keepdims=True), 1e-6)
