"""The learned check's part of ``bench``: encoder memory (resident and its load-time peak), latency
without it, verdict stability under re-compression, the shipped heads' presets, and the
cross-validated figures (``evaluate.crossval``: prompt-grouped separation, held-out presets, the
teach loop), also printed as a table (``format_table``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

import numpy as np

from .. import models
from .data import RECOMPRESSIONS, FolderInfo, Sample, fingerprint, recompressed
from .train import Features, features_from_diagnosis


class LearnedBench:
    def __init__(self, threshold: float):
        from ..diagnose.learned import heads_path, status
        from ..diagnose.learned.encoder import SIZE
        from ..metrics import peak_mb, reset_peak, rss_mb

        self.threshold = threshold
        peak_known = reset_peak()
        before = rss_mb()
        encoder, heads, note = status()
        if encoder is not None:  # load and run once: the memory a WebUI process pays for the check
            encoder.embed([np.zeros((SIZE, SIZE, 3), np.uint8)])
        self.rss_mb_encoder = round(rss_mb() - before, 1) if encoder is not None else None
        peak = peak_mb()
        # the highest the process went above its memory before loading, while loading and running once
        self.peak_mb_encoder = round(peak - before, 1) if encoder is not None and peak_known and peak else None
        self.encoder, self.heads, self.note, self.heads_file = encoder, heads, note, heads_path()
        self.features: list[Features] = []
        self.scores: list[tuple[float, int]] = []
        self.masks: dict[int, np.ndarray] = {}
        self.copies: dict[int, list[Features]] = {}  # the stability pass's copies, for the held-out swing
        self.in_training = 0
        self.swings: list[tuple[float, str]] = []
        self.no_learned_ms: list[float] = []
        self.info: dict[Path, FolderInfo] = {}

    def time_without_learned(self, image: np.ndarray, tta: bool) -> None:
        from ..diagnose import diagnose_image

        _d, diagnosis = diagnose_image(image, threshold=self.threshold, tta=tta, learned=False)
        self.no_learned_ms.append(diagnosis.timings_ms["total"])

    def add(self, item, image: np.ndarray, diagnosis, mask: np.ndarray | None, tta: bool, stability: bool) -> None:
        from ..diagnose import diagnose_image

        folder = item.folder or item.path.parent
        info = self.info.setdefault(folder, FolderInfo(folder))
        sample = Sample(item.path, item.label, "image", item.kind, info.group(item.path), info.severity(item.path))
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

    def figures(self, progress: TextIO | None = None) -> dict:
        from ..diagnose.learned import sensitivity_threshold
        from ..errors import HumanRefineError
        from ..metrics import percentiles

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
                "peak_mb_encoder_load": self.peak_mb_encoder,
                "images_the_heads_were_trained_on": self.in_training,
                "presets_on_these_images": presets,
            },
            "latency_1024px_le2_people_no_learned": percentiles(self.no_learned_ms),
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
                out["learned_cv"] = crossval(self.features, sha, self.masks, self.copies)
                if progress:
                    print(f"cross-validation: {time.perf_counter() - start:.0f} s", file=progress)
            except HumanRefineError as exc:  # scikit-learn is a development requirement
                out["learned_cv"] = {"skipped": str(exc)}
        return out


def format_table(result: dict) -> str:
    """The learned check's figures of a ``bench`` result as text: memory and latency, the held-out
    separation per kind of image, the held-out presets and the teach loop's curve."""
    learned = result.get("learned") or {}
    cv = result.get("learned_cv") or {}
    lines = ["learned check"]
    with_check = result.get("latency_1024px_le2_people") or {}
    without = result.get("latency_1024px_le2_people_no_learned") or {}
    lines.append(
        f"  encoder memory: {learned.get('rss_mb_encoder')} MB resident after its first run, "
        f"peak {learned.get('peak_mb_encoder_load')} MB above the process's memory before loading"
    )
    lines.append(
        f"  latency ~1024 px, <= 2 people: p50 {with_check.get('p50')} ms with it, {without.get('p50')} ms without "
        f"(p95 {with_check.get('p95')} / {without.get('p95')}, n = {with_check.get('n')})"
    )
    if "skipped" in cv or not cv:
        lines.append(f"  cross-validation: {cv.get('skipped', 'not run')}")
        return "\n".join(lines)
    lines.append(f"  held out: {cv['protocol']}")
    lines.append(f"  {'images':32} {'AUROC':>6} {'recall@10%FA':>13} {'malformed':>10} {'normal':>7}   landmarks alone")
    names = {
        "generated_only": "generated only",
        "generated_malformed_vs_photos": "generated malformed vs photos",
        "prompt_groups": "prompt groups (generated)",
        "all": "all",
    }
    for key, name in names.items():
        if key in cv:
            s, lm = cv[key], cv["landmark_signals_alone"].get(key, {})
            lines.append(
                f"  {name:32} {s['auroc']:6.3f} {s['recall_at_fpr10']:13.2f} {s['n_pos']:10d} {s['n_neg']:7d}   "
                f"{lm.get('auroc', float('nan')):.3f} / {lm.get('recall_at_fpr10', float('nan')):.2f}"
            )
    lines.append(f"  {'preset (held out)':32} {'false alarms: generated':>24} {'photos':>7} {'recall':>7}")
    for preset, p in cv["presets_held_out"].items():
        lines.append(
            f"  {preset:32} {_pct(p['false_alarms_generated']):>24} {_pct(p['false_alarms_photos']):>7} "
            f"{_pct(p['recall']):>7}"
        )
    if "stability_held_out" in cv:
        s = cv["stability_held_out"]
        lines.append(
            f"  held-out swing between PNG, JPEG q90, WebP q80: worst {s['worst_swing']} ({s['worst_image']}), "
            f"mean {s['mean_swing']}, {s['images_over_0.1']} of {s['images']} over 0.1"
        )
    lines.append("  teach loop (k of a held-out group's pictures taught, the rest scored; AUROC gain over k = 0):")
    for k, t in (cv.get("teach") or {}).items():
        if not t.get("groups"):
            lines.append(f"    k = {k:>2}: {t.get('note')}")
            continue
        b = t["balanced_preset"]
        groups = ", ".join(
            f"{g.removeprefix('prompt:')} {v['auroc_before']:.2f}->{v['auroc_after']:.2f}"
            for g, v in t["per_group"].items()
        )
        lines.append(
            f"    k = {k:>2}: {t['auroc_gain']:+.3f} over {t['groups']} groups ({t['draws']} draws); balanced preset "
            f"false alarms {_pct(b['false_alarms_before'])} -> {_pct(b['false_alarms_after'])}, recall "
            f"{_pct(b['recall_before'])} -> {_pct(b['recall_after'])}; {groups}"
        )
    return "\n".join(lines)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"
