"""Honest figures for the learned check: leave-one-group-out cross-validation over labelled images.

For each group (a source repository, or a prompt of the annotated images), heads are fitted and
calibrated (``train.fit_heads``, with its own inner grouped folds) on every other group and applied
to this one with the diagnosis' arithmetic (``learned.score_features``). No image's group is ever
on both sides, and nothing is chosen by looking at the held-out scores.
"""

from __future__ import annotations

import numpy as np

from ..diagnose.types import worst_first
from . import score_features
from .data import kind_severities
from .heads import PRESETS
from .train import Features, _scored_rows, fit_heads, training_side


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Rank correlation (ties share their mean rank)."""

    def ranks(v):
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=float)
        for value in np.unique(v):  # average ranks of ties
            tie = v == value
            r[tie] = r[tie].mean()
        return r

    if len(x) < 3:
        return float("nan")
    rx, ry = ranks(np.asarray(x, float)), ranks(np.asarray(y, float))
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _separation(scores: np.ndarray, labels: np.ndarray) -> dict:
    from ..bench import auroc, recall_at_fpr

    recall, _t = recall_at_fpr(scores, labels)
    return {
        "n_pos": int((labels == 1).sum()),
        "n_neg": int((labels == 0).sum()),
        "auroc": round(auroc(scores, labels), 4),
        "recall_at_fpr10": round(recall, 4),
    }


def _share(flagged: np.ndarray, among: np.ndarray) -> float | None:
    """The share of ``among`` that is flagged; None for none."""
    return round(float(flagged[among].mean()), 4) if among.any() else None


def _scored(heads, f: Features) -> tuple[float, list[float], float]:
    """(image probability, each part's fused score, the image's score) as the diagnosis computes them."""
    p_image, _learned, _shares, fused = score_features(heads, f.image_embedding, f.kinds, f.landmark_signals)
    return p_image, fused, max(fused) if fused else p_image


def crossval(
    features: list[Features],
    encoder_sha256: str,
    masks: dict[int, np.ndarray] | None = None,
    copies: dict[int, list[Features]] | None = None,
) -> dict:
    """Leave-one-group-out figures. ``masks``: index into the whole-image rows -> malformed-region
    mask; ``copies``: the same index -> the picture saved other ways (bench's JPEG q90 and WebP q80),
    scored by the same held-out heads for the held-out swing. Rows labelled by severity
    (``Sample.by_severity``, after the others) only train the heads of the other groups."""
    from ..bench import inside_fraction

    rows = _scored_rows(features)  # rows labelled by severity train the other groups' heads only
    groups = sorted({f.sample.group for f in rows})
    scores = np.full(len(rows), np.nan)
    image_probability = np.full(len(rows), np.nan)
    top_part: list[int | None] = [None] * len(rows)
    thresholds = {p: np.full(len(rows), np.nan) for p in PRESETS}
    swings: dict[int, float] = {}
    for group in groups:
        test = [i for i, f in enumerate(rows) if f.sample.group == group]
        try:
            heads = fit_heads(training_side(features, {group}), encoder_sha256)
        except Exception:  # a training side without both labels: these images stay unscored
            continue
        for i in test:
            f = rows[i]
            image_probability[i], fused, scores[i] = _scored(heads, f)
            boxes = f.boxes if len(f.boxes) == len(fused) else [(0, 0, 0, 0)] * len(fused)  # rows without boxes
            top_part[i] = worst_first(fused, f.kinds, boxes)[0] if fused else None
            if copies and copies.get(i):
                saved = [scores[i]] + [_scored(heads, c)[2] for c in copies[i]]
                swings[i] = max(saved) - min(saved)
            for preset in PRESETS:
                thresholds[preset][i] = heads.thresholds.get(preset, np.nan)
    labels = np.array([f.sample.label for f in rows])
    ok = ~np.isnan(scores)
    if len(set(labels[ok].tolist())) < 2:
        return {"skipped": "too few labelled images in the other groups to fit heads for any held-out group"}
    result = {
        "protocol": (
            f"leave one group out over {len(groups)} groups (source repository; annotated images by prompt); "
            "heads fitted and calibrated on the other groups only"
        ),
        "scored": int(ok.sum()),
        "all": _separation(scores[ok], labels[ok]),
        "image_head_alone": _separation(image_probability[ok], labels[ok]),
    }
    if swings:
        worst = max(swings, key=swings.get)
        result["stability_held_out"] = {
            "images": len(swings), "worst_swing": round(swings[worst], 4), "worst_image": rows[worst].sample.path.name,
            "mean_swing": round(float(np.mean(list(swings.values()))), 4),
            "images_over_0.1": sum(v > 0.1 for v in swings.values()),
        }  # fmt: skip
    generated = ok & np.array([f.sample.generated for f in rows])
    if len(set(labels[generated].tolist())) == 2:
        result["generated_only"] = _separation(scores[generated], labels[generated])
    severities = [(i, f.sample.severity["severity"]) for i, f in enumerate(rows) if ok[i] and f.sample.severity]
    if len(severities) >= 3:
        idx = [i for i, _ in severities]
        result["spearman_severity"] = {
            "n": len(idx), "rho": round(spearman(scores[idx], np.array([s for _, s in severities])), 4),
        }  # fmt: skip
        # the most suspicious part's kind against the worst-annotated kind (malformed images)
        hits = []
        for i in idx:
            f, j = rows[i], top_part[i]
            if f.sample.label != 1 or j is None:
                continue
            sev = kind_severities(f.sample.severity)
            hits.append(sev[f.kinds[j]] == max(sev.values()))
        if hits:
            result["top_part_kind_is_worst_annotated"] = {"n": len(hits), "share": round(float(np.mean(hits)), 4)}
    presets = {}
    generated_normal = generated & (labels == 0)
    for preset in PRESETS:
        t = thresholds[preset]
        flagged = ok & ~np.isnan(t) & (scores >= np.nan_to_num(t, nan=np.inf))
        presets[preset] = {
            "recall": _share(flagged, ok & (labels == 1)),
            "false_alarms": _share(flagged, ok & (labels == 0)),
            # what a WebUI user meets: normal generated pictures flagged (photos are easier to pass)
            "false_alarms_generated": _share(flagged, generated_normal),
            "threshold_range": [round(float(np.nanmin(t)), 3), round(float(np.nanmax(t)), 3)] if ok.any() else None,
        }
    result["presets_held_out"] = presets
    if masks:
        coverage = {
            "images_with_mask": 0,
            "top_part_inside_mask": 0,
            "top_flagged_inside_mask": 0,
            "top_part_is_best": 0,
            # the same with the part's focus (a hand's fingers) in place of its box
            "top_part_focus_inside_mask": 0,
            "top_flagged_focus_inside_mask": 0,
        }
        for i, mask in masks.items():
            f, j = rows[i], top_part[i]
            if f.sample.label != 1 or not ok[i]:
                continue
            coverage["images_with_mask"] += 1
            if j is None:
                continue
            inside = [inside_fraction(mask, box) for box in f.boxes]
            focus_inside = inside_fraction(mask, _focus_boxes(f)[j]) >= 0.5
            coverage["top_part_inside_mask"] += inside[j] >= 0.5
            coverage["top_part_is_best"] += inside[j] > 0 and inside[j] == max(inside)
            coverage["top_part_focus_inside_mask"] += focus_inside
            flagged = scores[i] >= thresholds["balanced"][i]
            coverage["top_flagged_inside_mask"] += bool(flagged and inside[j] >= 0.5)
            coverage["top_flagged_focus_inside_mask"] += bool(flagged and focus_inside)
        coverage["best_possible_with_part_boxes"] = sum(
            any(inside_fraction(masks[i], b) >= 0.5 for b in rows[i].boxes) for i in masks if rows[i].sample.label == 1
        )
        coverage["best_possible_with_focus"] = sum(
            any(inside_fraction(masks[i], b) >= 0.5 for b in _focus_boxes(rows[i]))
            for i in masks
            if rows[i].sample.label == 1
        )
        result["mask_coverage"] = coverage
    return result


def _focus_boxes(f: Features) -> list:
    """Each part's focus (features extracted before there were focus boxes: its box)."""
    return f.focus_boxes if len(f.focus_boxes) == len(f.boxes) else f.boxes
