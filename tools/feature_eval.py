"""Per-feature separation from a ``feature_study.py`` / ``signal_table.py`` CSV: image-level AUROC
(feature maxed over the image's parts of one kind; images without such a part get the lowest
value) on all images and on generated images only, and per-part AUROC (development aid).

    python tools/feature_eval.py features.csv [--kind hand]
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib_humanrefine.bench import auroc, recall_at_fpr

SKIP = {"image", "label", "image_kind", "kind", "side", "person", "box", "in_mask", "h_source"}


def _float(v: str) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def load(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def image_table(rows: list[dict], kind: str, feature: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(images, per-image max of the feature over parts of ``kind``, labels, generated flags)."""
    by_image: dict[str, list[float]] = defaultdict(list)
    meta = {}
    for r in rows:
        meta[r["image"]] = (int(r["label"]), r["image_kind"].startswith("generated"))
        v = _float(r.get(feature))
        if r["kind"] == kind and v is not None:
            by_image[r["image"]].append(v)
    floor = min((min(v) for v in by_image.values()), default=0.0)
    images = sorted(meta)
    values = np.array([max(by_image[i]) if by_image[i] else floor for i in images])
    labels = np.array([meta[i][0] for i in images])
    gen = np.array([meta[i][1] for i in images])
    return images, values, labels, gen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--kind", default=None)
    args = parser.parse_args()
    rows = load(args.csv)
    print(f"{'kind':5} {'feature':28} {'img_all':>7} {'rec10':>5} {'img_gen':>7} {'part':>5} {'part_gen':>8}")
    for kind in [args.kind] if args.kind else ["hand", "face", "body"]:
        part_rows = [r for r in rows if r["kind"] == kind]
        features = [k for k in dict.fromkeys(k for r in part_rows for k in r) if k not in SKIP]
        for f in features:
            vals = [(_float(r.get(f)), int(r["label"]), r["image_kind"].startswith("gen")) for r in part_rows]
            vals = [v for v in vals if v[0] is not None]
            if len(vals) < 8 or len({v[0] for v in vals}) < 2:
                continue
            pv, pl, pg = (np.array(x) for x in zip(*vals, strict=True))
            _, iv, il, ig = image_table(rows, kind, f)
            print(
                f"{kind:5} {f:28} {auroc(iv, il):7.3f} {recall_at_fpr(iv, il)[0]:5.2f} {auroc(iv[ig], il[ig]):7.3f}"
                f" {auroc(pv, pl):5.3f} {auroc(pv[pg], pl[pg]):8.3f}"
            )


if __name__ == "__main__":
    main()
