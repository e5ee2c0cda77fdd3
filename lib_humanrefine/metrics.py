"""Figures the benchmarks and the training share: separation (AUROC, recall at a false-alarm
rate), where a box falls in a labelled region, latency percentiles and resident memory. Imports
nothing of the package above it (bench, training and evaluation, the judge's benchmark all
import it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability a random positive outscores a random negative (ties count half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def recall_at_fpr(scores: np.ndarray, labels: np.ndarray, max_fpr: float = 0.10) -> tuple[float, float]:
    """Best recall over thresholds whose false-alarm rate is ≤ ``max_fpr``; returns (recall, threshold)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan"), float("nan")
    best = (0.0, float("inf"))
    for t in np.unique(np.concatenate([scores, [np.inf]])):
        if (neg >= t).mean() <= max_fpr:
            recall = float((pos >= t).mean())
            if recall > best[0]:
                best = (recall, float(t))
    return best


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, AttributeError):
        return 0.0


def region_mask(image_path: Path) -> np.ndarray | None:
    """The white region of ``<stem>_mask.(jpg|png)`` beside an image, as a boolean array."""
    from .images import load_image

    for suffix in (".jpg", ".png"):
        path = image_path.with_name(f"{image_path.stem}_mask{suffix}")
        if path.is_file():
            return load_image(path)[:, :, 0] > 127
    return None


def inside_fraction(mask: np.ndarray, box) -> float:
    """Fraction of a box's in-image area that lies in the mask's white region."""
    x0, y0, x1, y1 = (round(float(v)) for v in box)
    region = mask[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)]  # slicing clips the far sides too
    return float(region.mean()) if region.size else 0.0


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(float(np.percentile(values, 50)), 1),
        "p95": round(float(np.percentile(values, 95)), 1),
    }


def peak_mb() -> float | None:
    """The process's peak resident memory (Linux VmHWM) in MB (10^6 bytes, as rss_mb); None if unknown."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) * 1024 / 1e6 for line in fh if line.startswith("VmHWM:"))  # kB
    except (OSError, StopIteration, ValueError):
        return None


def reset_peak() -> bool:
    """Start the peak (VmHWM) again from the present resident memory (Linux ``clear_refs``)."""
    try:
        handle = os.open("/proc/self/clear_refs", os.O_WRONLY)  # a kernel control, not a file written
    except OSError:
        return False
    try:
        return os.write(handle, b"5") == 1
    except OSError:
        return False
    finally:
        os.close(handle)
