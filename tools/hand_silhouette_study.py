"""Skin outside the rendered five-finger outline, per hand: separation of malformed hands from
normal ones, on all images and on generated images only (development aid).

    python tools/hand_silhouette_study.py --data ../shared/data [--cache dets.pkl] [--show out_dir]

Positives: hands inside a FoundHand mask (in_mask >= 0.5) and hands in ai/handrefiner_*;
negatives: hands in label-0 images; other hands are left out of the per-hand figures.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signal_table import mask_fraction

from lib_humanrefine.bench import auroc, load_labels
from lib_humanrefine.conditions.hand_depth import palm_length, render_hand_depth
from lib_humanrefine.detect import detect
from lib_humanrefine.detect.types import Box, Hand
from lib_humanrefine.diagnose.types import Signal, ramp
from lib_humanrefine.images import load_image

FEATURES = ("extra", "excess", "missing", "score")


# --- Skin outside the five-finger outline -------------------------------------------------------
# The skeleton always has five fingers, so a sixth finger, a blob or webbing shows only in the
# pixels: segment the hand by its own colour and compare with the five-finger solid rendered from
# the landmarks (conditions.hand_depth). Kept here, out of the library: on the development set it
# did not tell malformed generated hands from normal ones (per-hand AUROC 0.37-0.48 generated-only).
CROP_PX = 128  # long side of the analysed crop
MARGIN = 0.55  # crop margin around the landmarks, palm lengths
TOLERANCE = 0.12  # outline dilation for landmark error, palm lengths
REACH = 0.6  # skin is looked for this close to the outline; beyond it is background, palm lengths
FOREARM_CUT = 0.15  # this far past the wrist (palm lengths) is forearm, not hand
# Ramps start near the 90th percentile of normal hands >= 60 px (development set): excess p90 0.32,
# extra finger-like parts p90 1.3.
EXCESS_START, EXCESS_FULL = 0.32, 0.7  # skin outside the outline / outline area
EXTRA_START, EXTRA_FULL = 1.3, 3.0  # finger-like parts in the skin minus those in the outline
MIN_SILHOUETTE_PX = 60.0  # below this hand size the colour segmentation is too coarse


def _disk(radius: float) -> np.ndarray:
    r = max(round(radius), 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _fingers(mask: np.ndarray, s: float) -> int:
    """Finger-like parts of a mask: thin pieces (gone after an opening wider than a finger) at least
    a third of a palm length ``s`` long."""
    opened = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, _disk(0.16 * s)).astype(bool)
    thin = cv2.morphologyEx((mask & ~opened).astype(np.uint8), cv2.MORPH_OPEN, _disk(0.03 * s))
    n, _, stats, _ = cv2.connectedComponentsWithStats(thin, connectivity=8)
    return int(sum(max(stats[k, 2], stats[k, 3]) >= 0.33 * s for k in range(1, n)))


def silhouette_measure(image: np.ndarray, hand: Hand, exclude: list[Box] | None = None) -> dict | None:
    """Colour-segment the hand in its crop and compare with the rendered five-finger outline.

    ``exclude``: image boxes (other hands, faces) left out. Returns None for a degenerate crop, else
    excess (skin outside the outline / outline area), extra (finger-like parts of the skin minus those
    of the outline), missing (outline share without skin) and the crop-sized masks."""
    lm = hand.landmarks.astype(np.float64)
    scale = palm_length(lm)
    lo, hi = lm[:, :2].min(axis=0) - MARGIN * scale, lm[:, :2].max(axis=0) + MARGIN * scale
    factor = CROP_PX / float(max(hi - lo))
    width, height = (max(round(float(v) * factor), 8) for v in hi - lo)
    box = (float(lo[0]), float(lo[1]), float(lo[0] + width / factor), float(lo[1] + height / factor))
    outline = render_hand_depth([lm], box, (width, height)) > 0
    if outline.sum() < 50:
        return None
    warp = np.array([[factor, 0, -lo[0] * factor], [0, factor, -lo[1] * factor]], np.float32)
    crop = cv2.warpAffine(image[..., :3], warp, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    s = scale * factor  # palm length in crop pixels

    # usable pixels: inside the image, not past the wrist, not on another hand or face
    def px(point) -> tuple[int, int]:
        return round(float(point[0] - lo[0]) * factor), round(float(point[1] - lo[1]) * factor)

    valid = np.zeros((height, width), np.uint8)
    cv2.rectangle(valid, px((0, 0)), px((image.shape[1] - 1, image.shape[0] - 1)), 1, -1)
    for other in exclude or []:
        cv2.rectangle(valid, px(other[:2]), px(other[2:]), 0, -1)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    wrist, axis = (lm[0, :2] - lo) * factor, lm[0, :2] - lm[9, :2]
    axis = axis / (np.linalg.norm(axis) or 1.0)
    valid = valid.astype(bool) & ((xs - wrist[0]) * axis[0] + (ys - wrist[1]) * axis[1] <= FOREARM_CUT * s)

    # colour model: a joint Lab histogram of the outline's interior against everything well away from it
    u8 = outline.astype(np.uint8)
    core = cv2.erode(u8, _disk(0.03 * s)).astype(bool) & valid
    dist = cv2.distanceTransform(1 - u8, cv2.DIST_L2, 3)  # crop pixels to the outline
    near = dist <= REACH * s
    far = ~near & valid
    if core.sum() < 30 or far.sum() < 30:
        return None
    lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB)
    bins = (lab[..., 0] >> 5).astype(np.int32) * 256 + (lab[..., 1] >> 4) * 16 + (lab[..., 2] >> 4)
    fg = np.bincount(bins[core], minlength=2048).astype(np.float32) / core.sum()
    bg = np.bincount(bins[far], minlength=2048).astype(np.float32) / far.sum()
    skin = cv2.GaussianBlur((fg / (fg + bg + 1e-3))[bins], (5, 5), 0) > 0.5
    skin = cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_OPEN, _disk(0.03 * s))

    # the skin connected to the outline's interior
    _, labels = cv2.connectedComponents(skin, connectivity=8)
    touching = np.unique(labels[core & skin.astype(bool)])
    hand_mask = np.isin(labels, touching[touching > 0]) & near & valid
    excess = hand_mask & (dist > TOLERANCE * s)
    inside = outline & valid
    return {
        "excess": float(excess.sum()) / float(outline.sum()),
        "extra": _fingers(hand_mask, s) - _fingers(inside, s),
        "missing": float((inside & ~hand_mask).sum()) / max(float(inside.sum()), 1.0),
        "crop": crop, "outline": outline, "hand_mask": hand_mask, "excess_mask": excess,
    }  # fmt: skip


def silhouette_signal(image: np.ndarray, hand: Hand, exclude: list[Box] | None = None) -> Signal:
    """Skin the five-finger outline cannot explain: extra finger-like parts or area outside it."""
    m = silhouette_measure(image, hand, exclude)
    if m is None:
        return Signal("silhouette", 0.0, 0.0, "hand crop too small to segment", "hand")
    score = max(ramp(m["extra"], EXTRA_START, EXTRA_FULL), ramp(m["excess"], EXCESS_START, EXCESS_FULL))
    score *= min(1.0, hand.size / MIN_SILHOUETTE_PX) ** 2
    extra = f", {m['extra']} more finger-like part(s) than the skeleton" if m["extra"] > 0 else ""
    reason = (
        f"skin outside the five-finger outline: {m['excess'] * 100:.0f}% of the hand{extra} (extra or fused finger?)"
    )
    return Signal("silhouette", round(m["excess"], 3), score, reason, "hand")


def detections(data: Path, cache: Path | None) -> list[dict]:
    if cache and cache.is_file():
        return pickle.loads(cache.read_bytes())
    rows = []
    for item in load_labels(data / "labels.csv", data):
        det = detect(load_image(item.path))
        mask = item.path.with_name(item.path.stem + "_mask.jpg")
        rows.append({"path": str(item.path.relative_to(data)), "label": item.label, "kind": item.kind,
                     "det": det, "in_mask": [mask_fraction(mask, h.box) for h in det.hands]})  # fmt: skip
    if cache:
        cache.write_bytes(pickle.dumps(rows))
    return rows


def hand_label(row: dict, i: int) -> int | None:
    """1 malformed, 0 normal, None unknown (a hand in a malformed image outside the marked region)."""
    if row["label"] == 0:
        return 0
    if "handrefiner_" in row["path"]:
        return 1
    frac = row["in_mask"][i]
    return 1 if frac is not None and frac >= 0.5 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--show", type=Path, help="write crop | outline | skin panels here")
    parser.add_argument("--no-exclude", action="store_true", help="do not mask other hands and faces")
    args = parser.parse_args()
    table, times = [], []
    for row in detections(args.data, args.cache):
        image = load_image(args.data / row["path"])
        det = row["det"]
        for i, hand in enumerate(det.hands):
            label = hand_label(row, i)
            others = [] if args.no_exclude else [h.box for j, h in enumerate(det.hands) if j != i]
            others += [] if args.no_exclude else [f.box for f in det.faces]
            start = time.perf_counter()
            m = silhouette_measure(image, hand, others)
            times.append((time.perf_counter() - start) * 1000)
            if m is not None:
                m["score"] = silhouette_signal(image, hand, others).score
            gen = row["path"].startswith(("ai/", "gen/"))
            table.append((row["path"], i, label, gen, hand.size, m))
            if args.show and m is not None:
                args.show.mkdir(parents=True, exist_ok=True)
                panel = np.hstack([m["crop"], _gray(m["outline"]), _overlay(m)])
                name = f"{label}_{m['excess']:.2f}_{Path(row['path']).stem}_{i}.png"
                cv2.imwrite(str(args.show / name), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    print(f"{len(table)} hands, {np.median(times):.2f} ms median, {np.percentile(times, 95):.2f} ms p95 per hand")
    for path, i, label, gen, size, m in table:
        vals = " ".join(f"{k}={m[k]:.3f}" for k in FEATURES if m and k in m) if m else "none"
        print(f"{label!s:4} {'gen' if gen else '   '} {size:5.0f} {path[:42]:42} {i} {vals}")
    for feature in FEATURES:
        print(feature, _aurocs(table, feature))


def _aurocs(table, feature) -> str:
    out = []
    for name, keep in (
        ("all", lambda r: True),
        ("gen", lambda r: r[3]),
        ("all>=80px", lambda r: r[4] >= 80),
        ("gen>=80px", lambda r: r[3] and r[4] >= 80),
    ):
        rows = [r for r in table if r[2] is not None and keep(r)]
        v = np.array([r[5][feature] if r[5] and feature in r[5] else 0.0 for r in rows])
        y = np.array([r[2] for r in rows])
        out.append(f"{name} {auroc(v, y):.3f} (n+ {int(y.sum())}, n- {int((y == 0).sum())})")
    return "; ".join(out)


def _gray(mask: np.ndarray) -> np.ndarray:
    return np.repeat(mask[..., None].astype(np.uint8) * 255, 3, axis=2)


def _overlay(m: dict) -> np.ndarray:
    out = m["crop"][..., :3].copy() // 2
    out[m["hand_mask"]] = (0, 160, 0)
    out[m["excess_mask"]] = (255, 0, 0)
    return out


if __name__ == "__main__":
    main()
