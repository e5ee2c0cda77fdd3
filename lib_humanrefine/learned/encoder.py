"""The CLIP ViT-B/16 image tower (INT8 ONNX) run with onnxruntime on the CPU.

One session per process. Crops are square regions of the image (padded with CLIP's mean colour
where they leave it) resized to 224 px with area interpolation; the diagnosis embeds the whole
image letterboxed, and its mirror image.

Each crop runs as its own batch of one: the model quantizes its activations dynamically with one
scale per tensor, so in a batch every crop's embedding depends on the other crops (cosine 0.96
between the same crop alone and in a batch of six). One at a time, a crop's embedding is a
function of its pixels only, and on two CPU cores it is no slower than batching.

The same per-tensor quantization makes the embedding jumpy under re-compression (cosine down to
0.88 between a picture and its WebP q80 copy), so the whole image is embedded twice, as is and
mirrored, and the two embeddings averaged (``learned.embed_image``). Blurring the crops
instead steadied the scores more but took away most of what separates malformed from normal
generated people (development images, cross-validated: AUROC on generated images 0.55 vs 0.60).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

SIZE = 224
GRID = 14  # 224 / 16 patches per side
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
PAD = tuple(round(float(v) * 255) for v in MEAN)


@dataclass
class Embedded:
    """Per crop: the 512-d CLIP image embedding (L2-normalised) and the 14x14 patch tokens (768-d)."""

    embeds: np.ndarray  # (N, 512) float32
    patches: np.ndarray  # (N, 14, 14, 768) float32


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


def to_tensor(crops: list[np.ndarray]) -> np.ndarray:
    batch = np.stack(crops).astype(np.float32) / 255.0
    return np.ascontiguousarray(((batch - MEAN) / STD).transpose(0, 3, 1, 2))


class Encoder:
    def __init__(self, path: str, threads: int = 2):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Threads spin between the ops of a run (about 10 % faster per crop than sleeping on these 2
        # cores) and stop the moment the run returns, so that between runs they leave the cores
        # LiteRT's detectors and the WebUI share alone, as with spinning off.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        options.add_session_config_entry("session.force_spinning_stop", "1")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.lock = threading.Lock()

    def embed(self, crops: list[np.ndarray]) -> Embedded:
        """Embed SIZE x SIZE RGB uint8 crops, each on its own (see the module's docstring)."""
        embeds, patches = [], []
        with self.lock:
            for crop in crops:
                embed, tokens = self.session.run(None, {self.input_name: to_tensor([crop])})
                embeds.append(embed[0])
                patches.append(tokens[0, 1:, :].reshape(GRID, GRID, -1))
        if not crops:
            return Embedded(np.zeros((0, 512), np.float32), np.zeros((0, GRID, GRID, 768), np.float32))
        embeds = np.array(embeds, np.float32)
        embeds /= np.maximum(np.linalg.norm(embeds, axis=1, keepdims=True), 1e-6)
        return Embedded(embeds, np.array(patches, np.float32))
