"""The learned check's part of ``bench``: encoder memory, latency without it, verdict stability under
re-compression, the shipped heads' presets, and the cross-validated figures (``evaluate.crossval``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

import numpy as np

from .. import models
from .data import RECOMPRESSIONS, FolderInfo, Sample, fingerprint, recompressed
from .train import Features, features_from_diagnosis, resave_embeddings


class LearnedBench:
    def __init__(self, threshold: float):
        from ..bench import rss_mb
        from . import heads_path, status
        from .encoder import SIZE

        self.threshold = threshold
        before = rss_mb()
        encoder, heads, note = status()
        if encoder is not None:  # load and run once: the memory a WebUI process pays for the check
            encoder.embed([np.zeros((SIZE, SIZE, 3), np.uint8)])
        self.rss_mb_encoder = round(rss_mb() - before, 1) if encoder is not None else None
        self.encoder, self.heads, self.note, self.heads_file = encoder, heads, note, heads_path()
        self.features: list[Features] = []
        self.scores: list[tuple[float, int]] = []
        self.masks: dict[int, np.ndarray] = {}
        self.copies: dict[int, list[Features]] = {}  # the stability pass's copies, for the held-out swing
        self.in_training = 0
        self.swings: list[tuple[float, str]] = []
        self.no_learned_ms: list[float] = []
        self.info: dict[Path, FolderInfo] = {}
        self.labelled: dict[Path, list[Sample]] = {}  # per folder, the images bench scores, as labelled here

    def time_without_learned(self, image: np.ndarray, tta: bool) -> None:
        from ..diagnose import diagnose_image

        _d, diagnosis = diagnose_image(image, threshold=self.threshold, tta=tta, learned=False)
        self.no_learned_ms.append(diagnosis.timings_ms["total"])

    def add(self, item, image: np.ndarray, diagnosis, mask: np.ndarray | None, tta: bool, stability: bool) -> None:
        from ..diagnose import diagnose_image

        folder = item.folder or item.path.parent
        info = self.info.setdefault(folder, FolderInfo(folder))
        sample = Sample(item.path, item.label, "image", item.kind, info.group(item.path), info.severity(item.path))
        self.labelled.setdefault(folder, []).append(sample)
        self.scores.append((diagnosis.score, item.label))
        features = features_from_diagnosis(sample, diagnosis, mask)
        if features is None:
            return
        if self.heads is not None and len(self.heads.trained_images):
            self.in_training += fingerprint(item.path) in set(self.heads.trained_images.tolist())
        index = len(self.features)  # masks and copies are keyed by the image's place in features
        if mask is not None:
            self.masks[index] = mask
        self.features.append(features)
        features.resaves = resave_embeddings(self.encoder, image)  # the held-out heads train as ``train`` does
        if stability:
            scores = [diagnosis.score]  # the decoded pixels themselves = the PNG copy
            copies = []
            for fmt, options in RECOMPRESSIONS[1:]:
                _d, again = diagnose_image(recompressed(image, fmt, options), threshold=self.threshold, tta=tta)
                scores.append(again.score)
                copy = features_from_diagnosis(sample, again, mask)
                if copy is not None:
                    copies.append(copy)
            self.copies[index] = copies
            self.swings.append((max(scores) - min(scores), item.path.name))

    def between_features(self, progress: TextIO | None = None) -> list[Features]:
        """The images of the benchmarked folders that ``annotations.csv`` scores and the labels in use
        leave out, labelled by severity (``data.between_samples``): cross-validation trains on them as
        ``train`` does. Judged against the labels bench scores (``--labels`` or ``labels.csv``), so an
        image bench scores is never also one of them."""
        from .data import between_samples
        from .train import extract

        samples = [s for folder, labelled in self.labelled.items() for s in between_samples(folder, labelled)]
        return extract(samples, progress, self.encoder) if samples else []

    def figures(self, progress: TextIO | None = None) -> dict:
        from ..bench import _percentiles
        from ..errors import HumanRefineError
        from . import sensitivity_threshold

        thresholds = {
            p: sensitivity_threshold(p, learned=self.heads is not None) for p in ("strict", "balanced", "relaxed")
        }
        scores = np.array([s for s, _ in self.scores])
        labels = np.array([y for _, y in self.scores])
        presets = {
            p: {
                "threshold": t,
                "recall": round(float((scores[labels == 1] >= t).mean()), 4) if (labels == 1).any() else None,
                "false_alarms": round(float((scores[labels == 0] >= t).mean()), 4) if (labels == 0).any() else None,
            }
            for p, t in thresholds.items()
        }
        out: dict = {
            "learned": {
                "heads": str(self.heads_file),
                "note": self.note,
                "rss_mb_encoder": self.rss_mb_encoder,
                "images_the_heads_were_trained_on": self.in_training,
                "presets_on_these_images": presets,
            },
            "latency_1024px_le2_people_no_learned": _percentiles(self.no_learned_ms),
        }
        if self.swings:
            worst = max(self.swings)
            out["stability"] = {
                "formats": "PNG, JPEG q90, WebP q80",
                "images": len(self.swings),
                "worst_swing": round(worst[0], 4),
                "worst_image": worst[1],
                "mean_swing": round(float(np.mean([s for s, _ in self.swings])), 4),
                "images_over_0.1": sum(s > 0.1 for s, _ in self.swings),
            }
        if self.features:
            try:
                from .evaluate import crossval

                start = time.perf_counter()
                sha = models.MODELS[models.ENCODER].sha256
                between = self.between_features(progress)
                out["learned_cv"] = crossval(self.features + between, sha, self.masks, self.copies)
                out["learned_cv"]["trained_also_by_severity"] = len(between)
                if progress:
                    print(f"cross-validation: {time.perf_counter() - start:.0f} s", file=progress)
            except HumanRefineError as exc:  # scikit-learn is a development requirement
                out["learned_cv"] = {"skipped": str(exc)}
        return out
