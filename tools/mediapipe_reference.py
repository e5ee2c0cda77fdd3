"""Reference landmarks from MediaPipe's own runtime, for checking our LiteRT re-implementation.

Runs ONLY in a separate venv that has mediapipe (never in the project's venv or a WebUI)::

    python3 -m venv /work/mpref && /work/mpref/bin/pip install mediapipe==0.10.21
    /work/mpref/bin/python tools/mediapipe_reference.py \\
        --labels ../shared/data/labels.csv --out tests/data/mediapipe_reference.json

Output (numbers only, never images): {"mediapipe_version", "settings", "images": {"<path relative
to the data dir>": {"width", "height", "hands": [{"landmarks": [[x, y, z] * 21], "handedness_label",
"handedness_score", "side"}], "pose": {"landmarks": [[x, y, z, visibility] * 33]} | null}}}.
x, y are image pixels; z is MediaPipe's relative depth scaled by the image width (same scale as x).
Images are read with ``lib_humanrefine.images.load_image`` so both runtimes see identical pixels.
``tools/agreement.py`` compares our detectors with this file.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LABELS = ROOT.parent / "shared" / "data" / "labels.csv"
DEFAULT_OUT = ROOT / "tests" / "data" / "mediapipe_reference.json"

HANDS_SETTINGS = {"static_image_mode": True, "max_num_hands": 4, "model_complexity": 1, "min_detection_confidence": 0.5}
POSE_SETTINGS = {"static_image_mode": True, "model_complexity": 1}


def image_list(labels: Path, extra: list[str]) -> list[tuple[str, Path]]:
    """(key, file) pairs: CSV rows keyed by their relative path, extras relative to the data dir if inside it."""
    data_dir = labels.parent
    items = []
    with open(labels, newline="") as f:
        for row in csv.DictReader(f):
            items.append((row["path"], data_dir / row["path"]))
    for raw in extra:
        path = Path(raw).resolve()
        try:
            key = path.relative_to(data_dir.resolve()).as_posix()
        except ValueError:
            key = str(path)
        items.append((key, path))
    return items


def _r(v: float, nd: int = 2) -> float:
    return round(float(v), nd)


def run_image(image, hands, pose) -> dict:
    h, w = image.shape[:2]
    record = {"width": w, "height": h, "hands": [], "pose": None}
    res = hands.process(image)
    for lms, handed in zip(res.multi_hand_landmarks or [], res.multi_handedness or []):
        cls = handed.classification[0]
        record["hands"].append(
            {
                "landmarks": [[_r(p.x * w), _r(p.y * h), _r(p.z * w)] for p in lms.landmark],
                # The legacy solution assumes a mirrored (selfie) input, so its "Left" is the person's
                # right hand in an unmirrored image; "side" is that unmirrored reading (= Hand.side).
                "handedness_label": cls.label,
                "handedness_score": _r(cls.score, 4),
                "side": {"Left": "right", "Right": "left"}[cls.label],
            }
        )
    res = pose.process(image)
    if res.pose_landmarks is not None:
        record["pose"] = {
            "landmarks": [
                [_r(p.x * w), _r(p.y * h), _r(p.z * w), _r(p.visibility, 4)] for p in res.pose_landmarks.landmark
            ]
        }
    return record


def _inline(m: re.Match) -> str:
    return re.sub(r"\s+", "", m.group(0)).replace(",", ", ")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="labels CSV (paths relative to it)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("images", nargs="*", help="extra image files")
    args = ap.parse_args(argv)

    import mediapipe as mp

    sys.path.insert(0, str(ROOT))
    from lib_humanrefine.images import load_image

    out = {
        "mediapipe_version": mp.__version__,
        "settings": {"hands": HANDS_SETTINGS, "pose": POSE_SETTINGS},
        "images": {},
    }
    with mp.solutions.hands.Hands(**HANDS_SETTINGS) as hands, mp.solutions.pose.Pose(**POSE_SETTINGS) as pose:
        for key, path in image_list(args.labels, args.images):
            rec = run_image(load_image(path), hands, pose)
            out["images"][key] = rec
            print(f"{key}: {len(rec['hands'])} hands, pose {'yes' if rec['pose'] else 'no'}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # one landmark per line: collapse the innermost (numbers-only) arrays
    text = re.sub(r"\[[^\[\]{}\"]*\]", _inline, json.dumps(out, indent=1))
    args.out.write_text(text + "\n")
    print(f"wrote {args.out} ({len(out['images'])} images)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
