"""How closely our LiteRT hand and pose landmarks agree with MediaPipe's own runtime.

Reads the reference written by ``tools/mediapipe_reference.py`` (run in a mediapipe venv), runs
``detect_hands`` and ``detect_people`` on every referenced image found under the data dir, matches
hands and people, and prints per-image and summary errors::

    .venv/bin/python tools/agreement.py [--json out/agreement.json]

Hand error: mean 2-D landmark distance / hand size (bounding-box diagonal of MediaPipe's 21 points).
Pose error: mean 2-D distance over the landmarks MediaPipe calls visible (> 0.5) / torso size (mean
shoulder-hip distance of MediaPipe's points). Target: within 5 %. Always exits 0 (a report, not a gate;
``tests/test_agreement.py`` gates the median on a few images).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = ROOT / "tests" / "data" / "mediapipe_reference.json"
DEFAULT_DATA = ROOT.parent / "shared" / "data"

THRESHOLD = 0.05  # agreement target, relative to hand / torso size
MAX_MATCH = 0.5  # relative errors above this pair two different hands or people: count them as unmatched
VISIBLE = 0.5


# --- pure metric and matching functions (used by the tests) ---


def hand_size(landmarks: np.ndarray) -> float:
    pts = np.asarray(landmarks, dtype=float)[:, :2]
    return float(np.linalg.norm(pts.max(axis=0) - pts.min(axis=0)))


def torso_size(landmarks: np.ndarray) -> float:
    pts = np.asarray(landmarks, dtype=float)[:, :2]
    return float((np.linalg.norm(pts[11] - pts[23]) + np.linalg.norm(pts[12] - pts[24])) / 2)


def mean_distance(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean 2-D distance between corresponding points (only where ``mask``); NaN if none selected."""
    d = np.linalg.norm(np.asarray(a, dtype=float)[:, :2] - np.asarray(b, dtype=float)[:, :2], axis=1)
    if mask is not None:
        d = d[np.asarray(mask, dtype=bool)]
    return float(d.mean()) if d.size else float("nan")


def hand_error(reference: np.ndarray, ours: np.ndarray) -> float:
    return mean_distance(reference, ours) / max(hand_size(reference), 1e-6)


def pose_error(reference: np.ndarray, ours: np.ndarray, min_visibility: float = VISIBLE) -> float:
    """``reference`` is (33, 4) with MediaPipe's visibility in the last column."""
    reference = np.asarray(reference, dtype=float)
    return mean_distance(reference, ours, reference[:, 3] > min_visibility) / max(torso_size(reference), 1e-6)


def match(cost: np.ndarray, max_cost: float = MAX_MATCH) -> list[tuple[int, int]]:
    """Minimum-total-cost one-to-one pairs (rows = reference, cols = ours), dropping pairs above
    ``max_cost``. Hungarian when SciPy is present, otherwise greedy by ascending cost."""
    cost = np.atleast_2d(np.asarray(cost, dtype=float))
    if cost.size == 0:
        return []
    gated = np.where(np.isfinite(cost) & (cost <= max_cost), cost, 1e9)
    try:
        from scipy.optimize import linear_sum_assignment

        pairs = zip(*linear_sum_assignment(gated))
    except ImportError:
        pairs, used_r, used_c = [], set(), set()
        for flat in np.argsort(gated, axis=None, kind="stable"):
            r, c = np.unravel_index(flat, gated.shape)
            if r not in used_r and c not in used_c:
                pairs.append((r, c))
                used_r.add(r)
                used_c.add(c)
    return sorted((int(r), int(c)) for r, c in pairs if gated[r, c] < 1e9)


def summarize(errors: list[float], threshold: float = THRESHOLD) -> dict:
    e = np.asarray([x for x in errors if np.isfinite(x)], dtype=float)
    if not e.size:
        return {"n": 0, "median": None, "mean": None, "max": None, "within": None}
    return {
        "n": int(e.size),
        "median": float(np.median(e)),
        "mean": float(e.mean()),
        "max": float(e.max()),
        "within": float((e <= threshold).mean()),
    }


def compare_image(record: dict, hands: list[tuple[np.ndarray, str]], people: list[np.ndarray]) -> dict:
    """One image: ``record`` from the reference JSON; ours as (landmarks, side) per hand and
    landmarks per person. Returns matched errors, counts and handedness agreement."""
    ref_hands = [np.asarray(h["landmarks"], dtype=float) for h in record["hands"]]
    cost = np.array([[hand_error(r, o) for o, _ in hands] for r in ref_hands]).reshape(len(ref_hands), len(hands))
    pairs = match(cost)
    out = {
        "hands_mediapipe": len(ref_hands),
        "hands_ours": len(hands),
        "hand_errors": [float(cost[r, c]) for r, c in pairs],
        "side_agree": [record["hands"][r]["side"] == hands[c][1] for r, c in pairs],
        "pose_mediapipe": record["pose"] is not None,
        "people_ours": len(people),
        "pose_error": None,
    }
    if record["pose"] is not None and people:
        ref = np.asarray(record["pose"]["landmarks"], dtype=float)
        errors = [pose_error(ref, p) for p in people]
        pairs = match(np.array([errors]))
        if pairs:
            out["pose_error"] = float(errors[pairs[0][1]])
    return out


def summary(results: dict[str, dict], threshold: float = THRESHOLD) -> dict:
    rows = results.values()
    hand_errors = [e for r in rows for e in r["hand_errors"]]
    sides = [s for r in rows for s in r["side_agree"]]
    pose_errors = [r["pose_error"] for r in rows if r["pose_error"] is not None]
    return {
        "threshold": threshold,
        "images": len(results),
        "hands": {
            **summarize(hand_errors, threshold),
            "mediapipe_found": sum(r["hands_mediapipe"] for r in rows),
            "ours_found": sum(r["hands_ours"] for r in rows),
            "matched": len(hand_errors),
            "side_agree": float(np.mean(sides)) if sides else None,
        },
        "pose": {
            **summarize(pose_errors, threshold),
            "mediapipe_found": sum(r["pose_mediapipe"] for r in rows),
            "ours_found": sum(r["people_ours"] > 0 for r in rows),
            "matched": len(pose_errors),
        },
    }


# --- running our detectors ---


def load_detectors():
    """(detect_hands, detect_people) from the project, imported only when needed."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from lib_humanrefine.detect.hands import detect_hands
    from lib_humanrefine.detect.pose import detect_people

    return detect_hands, detect_people


def evaluate(reference: dict, data_dir: Path, keys=None, detectors=None, with_people: bool = False, log=None):
    """Per-image results for the referenced images found under ``data_dir`` (all, or ``keys``)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from lib_humanrefine.images import load_image

    detect_hands, detect_people = detectors or load_detectors()
    results = {}
    for key in keys if keys is not None else reference["images"]:
        path = data_dir / key
        if not path.is_file():
            continue
        image = load_image(path)
        people = detect_people(image)
        hands = detect_hands(image, people if with_people else None)
        res = compare_image(
            reference["images"][key], [(h.landmarks, h.side) for h in hands], [p.landmarks for p in people]
        )
        results[key] = res
        if log:
            log(format_row(key, res))
    return results


def _pct(x) -> str:
    return "    -  " if x is None else f"{100 * x:6.2f}%"


def format_row(key: str, r: dict) -> str:
    errs = " ".join(_pct(e).strip() for e in r["hand_errors"]) or "-"
    side = f"{sum(r['side_agree'])}/{len(r['side_agree'])}"
    pose = _pct(r["pose_error"]) if r["pose_mediapipe"] else "  none"
    return (
        f"{key:60s} hands mp={r['hands_mediapipe']} ours={r['hands_ours']} matched={len(r['hand_errors'])} "
        f"err=[{errs}] side ok={side} | pose mp={'y' if r['pose_mediapipe'] else 'n'} "
        f"ours={r['people_ours']} err={pose}"
    )


def format_summary(s: dict) -> str:
    lines = [f"summary over {s['images']} images (target: within {100 * s['threshold']:.0f} %)"]
    for part, scale in (("hands", "hand size"), ("pose", "torso size")):
        d = s[part]
        line = (
            f"  {part:5s}: n={d['n']} median={_pct(d['median'])} mean={_pct(d['mean'])} max={_pct(d['max'])} "
            f"within={_pct(d['within'])} of {scale}; found mediapipe={d['mediapipe_found']} "
            f"ours={d['ours_found']} matched={d['matched']}"
        )
        if part == "hands":
            line += f"; side agree={_pct(d['side_agree'])}"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder the reference paths are relative to")
    ap.add_argument("--only", default="", help="only images whose path contains this text")
    ap.add_argument("--with-people", action="store_true", help="also pass our people to detect_hands")
    ap.add_argument("--json", type=Path, help="write the summary and per-image results here")
    args = ap.parse_args(argv)

    reference = json.loads(args.reference.read_text())
    if not args.data.is_dir():
        print(f"no data dir {args.data}: nothing to compare")
        return 0
    try:
        detectors = load_detectors()
    except ImportError as exc:
        print(f"our detectors are not importable yet ({exc})")
        return 0
    keys = [k for k in reference["images"] if args.only in k]
    print(f"reference: mediapipe {reference['mediapipe_version']}, {len(keys)} images")
    try:
        results = evaluate(reference, args.data, keys, detectors, args.with_people, log=print)
    except Exception as exc:  # a report, never a failure: say what broke
        print(f"detectors failed: {exc.__class__.__name__}: {exc}")
        return 0
    s = summary(results)
    print(format_summary(s))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": s, "images": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
