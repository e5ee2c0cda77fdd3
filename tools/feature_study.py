"""Candidate diagnosis features per part (hands, faces, people) for a labelled folder, including
costly test-time re-runs, written as CSV for ``tools/feature_eval.py`` (development aid).

    python tools/feature_study.py --data ../shared/data --out features.csv
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signal_table import mask_fraction

from lib_humanrefine.bench import load_labels
from lib_humanrefine.detect import detect
from lib_humanrefine.detect import hands as hd
from lib_humanrefine.detect import pose as pd
from lib_humanrefine.detect.faces import face_mesh
from lib_humanrefine.detect.geometry import Roi
from lib_humanrefine.diagnose import diagnose_detections
from lib_humanrefine.images import load_image

MIRROR_POSE = [0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9] + [i + (1 if i % 2 else -1) for i in range(11, 33)]


def _shift(a: np.ndarray, b: np.ndarray, size: float) -> float:
    return float(np.linalg.norm(a[:, :2] - b[:, :2], axis=1).mean()) / max(size, 1.0)


def _procrustes(a: np.ndarray, b: np.ndarray) -> float:
    """Shape difference of two 3D point sets after removing translation, scale and rotation."""
    a, b = a - a.mean(0), b - b.mean(0)
    a, b = a / (np.linalg.norm(a) or 1), b / (np.linalg.norm(b) or 1)
    u, s, vt = np.linalg.svd(a.T @ b)
    return float(max(0.0, 1.0 - s.sum()))


def hand_tta(image: np.ndarray, hand) -> dict:
    roi = Roi(*hand.roi)
    variants = {
        "mirror": (roi, "full", True),
        "lite": (roi, "lite", False),
        "rot_p": (Roi(roi.cx, roi.cy, roi.width, roi.height, roi.rotation + math.radians(25)), "full", False),
        "rot_m": (Roi(roi.cx, roi.cy, roi.width, roi.height, roi.rotation - math.radians(25)), "full", False),
        "scale_s": (Roi(roi.cx, roi.cy, roi.width * 0.85, roi.height * 0.85, roi.rotation), "full", False),
        "scale_l": (Roi(roi.cx, roi.cy, roi.width * 1.2, roi.height * 1.2, roi.rotation), "full", False),
        "shift": (roi.transformed(shift_x=0.08, shift_y=0.08, square_long=False), "full", False),
        "lite_mirror": (roi, "lite", True),
        "relm": (hd.roi_from_landmarks(hand.landmarks), "full", False),
    }
    out = {}
    for name, (r, model, mirror) in variants.items():
        other = hd.landmarks_in_roi(image, r, model=model, mirror=mirror)
        if other is None:
            out[f"h_{name}"], out[f"h_{name}_pres"], out[f"h_{name}_w"] = 0.3, 0.0, 0.1
            continue
        out[f"h_{name}"] = _shift(other.landmarks, hand.landmarks, hand.size)
        out[f"h_{name}_pres"] = other.presence
        out[f"h_{name}_w"] = _procrustes(other.world, hand.world)
        out[f"h_{name}_side"] = float(other.side != hand.side)
    return out


def hand_anatomy(hand) -> dict:
    w = hand.world
    normal = np.cross(w[5] - w[0], w[17] - w[0])
    normal /= np.linalg.norm(normal) or 1
    palm = w[[0, 5, 9, 13, 17]]
    planar = float(np.abs((palm - palm.mean(0)) @ normal).max() / (np.linalg.norm(w[9] - w[0]) or 1))
    # hyperextension: finger bending backwards (away from the palm side) at PIP/DIP
    hyper = 0.0
    curls = []
    for idx in ((5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20)):
        for a, b, c in ((idx[0], idx[1], idx[2]), (idx[1], idx[2], idx[3])):
            u, v = w[b] - w[a], w[c] - w[b]
            cross = np.cross(u, v)
            ang = math.degrees(math.atan2(np.linalg.norm(cross), float(np.dot(u, v))))
            curls.append(ang)
            lateral = np.cross(normal, u)
            sign = float(np.dot(cross, lateral))  # >0 when bending towards the palm (right hand)
            if hand.side == "left":
                sign = -sign
            if sign < 0:
                hyper = max(hyper, ang)
    knuckles = w[[5, 9, 13, 17]]
    spacing = np.linalg.norm(np.diff(knuckles, axis=0), axis=1)
    spacing_ratio = float(spacing.max() / max(spacing.min(), 1e-6))
    tips = w[[4, 8, 12, 16, 20]]
    dmin = min(float(np.linalg.norm(tips[i] - tips[j])) for i in range(5) for j in range(i + 1, 5)) / (
        np.linalg.norm(w[9] - w[0]) or 1
    )
    return {
        "h_planar": planar, "h_hyper": hyper, "h_curl_max": max(curls), "h_curl_std": float(np.std(curls)),
        "h_knuckle_spacing": spacing_ratio, "h_tip_min_dist": dmin,
    }  # fmt: skip


def face_tta(image: np.ndarray, face) -> dict:
    if face.landmarks is None:
        return {"f_nomesh": 1.0}
    lm = face.landmarks
    x0, y0, x1, y1 = face.box
    size = max(x1 - x0, y1 - y0)
    eye_r, eye_l = lm[33, :2], lm[263, :2]
    rot = math.atan2(eye_l[1] - eye_r[1], eye_l[0] - eye_r[0])
    base = Roi((x0 + x1) / 2, (y0 + y1) / 2, size * 1.5, size * 1.5, rot)
    out = {"f_nomesh": 0.0, "f_size": size, "f_mesh_score": face.mesh_score, "f_det_score": face.score}
    ref, pres = face_mesh(image, base)
    out["f_base_pres"] = pres
    shifts = []
    for name, r in {
        "rot_p": Roi(base.cx, base.cy, base.width, base.height, rot + math.radians(20)),
        "rot_m": Roi(base.cx, base.cy, base.width, base.height, rot - math.radians(20)),
        "scale": Roi(base.cx, base.cy, base.width * 1.2, base.height * 1.2, rot),
        "shift": base.transformed(shift_x=0.08, shift_y=0.08, square_long=False),
    }.items():
        other, p = face_mesh(image, r)
        out[f"f_{name}"] = _shift(other, ref, size)
        out[f"f_{name}_pres"] = p
        shifts.append(out[f"f_{name}"])
    out["f_tta_mean"] = float(np.mean(shifts))
    out["f_tta_max"] = float(np.max(shifts))
    out["f_pres_min"] = min(out[k] for k in out if k.endswith("_pres"))
    return out


def person_tta(image: np.ndarray, person) -> dict:
    roi = Roi(*person.roi)
    vis = person.visibility > 0.5
    out = {"p_flag": person.flag, "p_score": person.score, "p_vis_mean": float(person.visibility.mean())}
    size = max(person.torso_size, 1.0)
    shifts = []
    for name, r in {
        "rot_p": Roi(roi.cx, roi.cy, roi.width, roi.height, roi.rotation + math.radians(15)),
        "rot_m": Roi(roi.cx, roi.cy, roi.width, roi.height, roi.rotation - math.radians(15)),
        "scale": Roi(roi.cx, roi.cy, roi.width * 1.15, roi.height * 1.15, roi.rotation),
    }.items():
        other = pd.landmarks_in_roi(image, r)
        if other is None:
            out[f"p_{name}"] = 1.0
        else:
            d = np.linalg.norm(other.landmarks[:, :2] - person.landmarks[:, :2], axis=1)
            out[f"p_{name}"] = float(d[vis].mean() / size) if vis.any() else 1.0
            out[f"p_{name}_w"] = _procrustes(other.world[vis], person.world[vis]) if vis.sum() > 3 else 0.1
        shifts.append(out[f"p_{name}"])
    # mirrored image
    h, w = image.shape[:2]
    flipped = np.ascontiguousarray(image[:, ::-1])
    other = pd.landmarks_in_roi(flipped, Roi(w - roi.cx, roi.cy, roi.width, roi.height, -roi.rotation))
    if other is None:
        out["p_mirror"] = 1.0
    else:
        lm = other.landmarks[MIRROR_POSE].copy()
        lm[:, 0] = w - lm[:, 0]
        d = np.linalg.norm(lm[:, :2] - person.landmarks[:, :2], axis=1)
        out["p_mirror"] = float(d[vis].mean() / size) if vis.any() else 1.0
    shifts.append(out["p_mirror"])
    out["p_tta_mean"] = float(np.mean(shifts))
    out["p_tta_max"] = float(np.max(shifts))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = []
    for item in load_labels(args.data / "labels.csv", args.data):
        image = load_image(item.path)
        det = detect(image)
        diagnosis = diagnose_detections(image, det)
        mask_path = item.path.with_name(item.path.stem + "_mask.jpg")
        common = {
            "image": str(item.path.relative_to(args.data)), "label": item.label, "image_kind": item.kind,
            "img_w": image.shape[1], "img_h": image.shape[0], "n_people": len(det.people),
            "n_hands": len(det.hands), "n_faces": len(det.faces),
        }  # fmt: skip
        for part in diagnosis.parts:
            row = dict(common, kind=part.kind, side=part.side, person=part.person,
                       box=" ".join(f"{v:.0f}" for v in part.box), score=round(part.score, 4),
                       in_mask=mask_fraction(mask_path, part.box))  # fmt: skip
            for s in part.signals:
                row[s.name] = s.value
            if part.kind == "hand":
                hand = det.hands[part.index]
                row.update(h_size=hand.size, h_presence=hand.presence, h_palm=hand.palm_score or 0.0,
                           h_source=hand.source, h_side_score=hand.side_score)  # fmt: skip
                row.update(hand_tta(image, hand))
                row.update(hand_anatomy(hand))
            elif part.kind == "face":
                row.update(face_tta(image, det.faces[part.index]))
            else:
                row.update(person_tta(image, det.people[part.index]))
            rows.append(row)
        print(item.path.name, len(diagnosis.parts), file=sys.stderr)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(args.out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
