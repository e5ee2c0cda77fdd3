"""Render OpenPose control images next to their photos for a visual check (development aid).

python tools/show_openpose.py --data ../shared/data --out out/openpose_preview.png
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib_humanrefine.conditions.openpose import render_openpose
from lib_humanrefine.detect import detect
from lib_humanrefine.images import load_image

DEFAULT = ("real/controlnet_pose1.png", "real/zidane.jpg", "real/hamer_test1.jpg", "real/bus.jpg")


def panel(path: Path, height: int) -> np.ndarray:
    image = load_image(path)
    d = detect(image)
    people = [(p.landmarks, p.visibility) for p in d.people]
    hands = [(h.landmarks, h.side) for h in d.hands]
    h, w = image.shape[:2]
    k = 512 / min(h, w)  # like the annotator: short side at 512
    size = (round(w * k), round(h * k))
    start = time.perf_counter()
    control = render_openpose(people, hands, (0, 0, w, h), size)
    ms = (time.perf_counter() - start) * 1000
    print(f"{path.name}: {len(people)} people, {len(hands)} hands, {size[0]}x{size[1]} in {ms:.1f} ms")
    photo = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    row = np.concatenate([photo, control], axis=1)
    return cv2.resize(row, (round(row.shape[1] * height / row.shape[0]), height), interpolation=cv2.INTER_AREA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path("out/openpose_preview.png"))
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("images", nargs="*", default=list(DEFAULT))
    args = parser.parse_args()
    rows = [panel(args.data / name, args.height) for name in args.images]
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(args.out)


if __name__ == "__main__":
    main()
