"""Render the depth control image of every detected hand next to its photo crop (development aid)::

    .venv/bin/python tools/show_hand_depth.py [IMAGE ...] [--out hand_depth.png] [--size 512]

One row per hand: photo crop (HandRefiner's square crop, 1.6 x the landmark box), depth map, and the
depth blended over the photo with the landmark skeleton.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib_humanrefine.conditions.hand_depth import render_hand_depth
from lib_humanrefine.detect import detect
from lib_humanrefine.detect.types import HAND_CONNECTIONS
from lib_humanrefine.images import load_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT = ["real/hamer_test1.jpg", "real/opencvdoc_Histogram_Comparison_Source_0.jpg", "ai/handrefiner_1.jpg"]


def square_crop(landmarks: np.ndarray, factor: float = 1.6) -> tuple[float, float, float, float]:
    lo, hi = landmarks[:, :2].min(axis=0), landmarks[:, :2].max(axis=0)
    cx, cy = (lo + hi) / 2
    half = max(hi - lo) * factor / 2
    return (cx - half, cy - half, cx + half, cy + half)


def crop_image(image: np.ndarray, box, size: int) -> np.ndarray:
    x0, y0, x1, y1 = box
    s = size / (x1 - x0)
    m = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], dtype=np.float64)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_AREA, borderValue=(0, 0, 0))


def row(image: np.ndarray, landmarks: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    box = square_crop(landmarks)
    t = time.perf_counter()
    depth = render_hand_depth([landmarks], box, (size, size))
    ms = (time.perf_counter() - t) * 1000
    photo = crop_image(image, box, size)
    depth3 = np.repeat(depth[:, :, None], 3, axis=2)
    blend = (0.5 * photo + 0.5 * depth3).astype(np.uint8)
    s = size / (box[2] - box[0])
    pts = [(int((x - box[0]) * s), int((y - box[1]) * s)) for x, y in landmarks[:, :2]]
    for a, b in HAND_CONNECTIONS:
        cv2.line(blend, pts[a], pts[b], (255, 0, 0), 1, cv2.LINE_AA)
    for p in pts:
        cv2.circle(blend, p, 2, (0, 255, 0), -1)
    return np.concatenate([photo, depth3, blend], axis=1), ms


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="*")
    ap.add_argument("--out", default="hand_depth.png")
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args(argv)
    paths = [Path(p) for p in args.images] or [DATA / p for p in DEFAULT]
    rows = []
    for path in paths:
        image = load_image(path)
        for hand in detect(image).hands:
            r, ms = row(image, hand.landmarks, args.size)
            print(f"{path.name} {hand.side}: {ms:.1f} ms")
            rows.append(r)
    if not rows:
        print("no hands found")
        return 1
    cv2.imwrite(args.out, cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
