"""Dump every part's signals for a labelled folder as CSV, to study which signals separate
malformed from normal parts (development aid; ``bench`` gives the headline figures).

    python tools/signal_table.py --data ../shared/data --out signals.csv

Columns: image, label, kind (image kind), part kind, side, person, box, score, in_mask (FoundHand
images: fraction of the part box inside the authors' malformed-hand mask), then one column per
signal value and per signal score.
"""

from __future__ import annotations

import argparse
import csv
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib_humanrefine.bench import inside_fraction, load_labels
from lib_humanrefine.diagnose import diagnose_image
from lib_humanrefine.images import load_image


@functools.lru_cache(maxsize=4)
def _mask(mask_path: Path):
    return load_image(mask_path)[:, :, 0] > 127 if mask_path.is_file() else None


def mask_fraction(mask_path: Path, box) -> float | None:
    """Fraction of the box's in-image area that is white in the mask (None when there is no mask)."""
    mask = _mask(mask_path)
    return None if mask is None else inside_fraction(mask, box)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-tta", action="store_true")
    args = parser.parse_args()
    rows = []
    for item in load_labels(args.data / "labels.csv", args.data):
        image = load_image(item.path)
        _detections, diagnosis = diagnose_image(image, tta=not args.no_tta)
        mask_path = item.path.with_name(item.path.stem + "_mask.jpg")
        for part in diagnosis.parts:
            row = {
                "image": str(item.path.relative_to(args.data)), "label": item.label, "image_kind": item.kind,
                "kind": part.kind, "side": part.side, "person": part.person,
                "box": " ".join(f"{v:.0f}" for v in part.box), "score": round(part.score, 4),
                "in_mask": mask_fraction(mask_path, part.box),
            }  # fmt: skip
            for s in part.signals:
                row[f"{s.name}"] = s.value
                row[f"{s.name}_score"] = round(s.score, 4)
            rows.append(row)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(args.out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} parts from {len({r['image'] for r in rows})} images -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
