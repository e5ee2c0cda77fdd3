"""Honest figures for the learned check: leave-one-group-out cross-validation over labelled images.

For each group (a prompt of the annotated study's images, else a source repository: ``data.FolderInfo
.group``), heads are fitted and calibrated (``train.fit_heads``, with its own inner grouped folds) on
every other group and applied to this one with the diagnosis' arithmetic (``diagnose.learned.score_features``).
No image's group is ever on both sides, and nothing is chosen by looking at the held-out scores.
The separation is told apart as the hidden sets that confirm it are made: among generated images
alone, generated malformed pictures against photos, and the prompt groups' pictures alone.
``teach_curve`` measures what adding a user's labels (``train.teach``) does for their kind of images.
"""

from __future__ import annotations

import numpy as np

from ..diagnose.learned import noisy_or, score_features
from ..diagnose.learned.heads import PRESETS
from ..diagnose.types import worst_first
from ..metrics import auroc, recall_at_fpr
from .data import kind_severities
from .train import Features, _image_rows, fit_heads, teach, training_side

PROMPT_GROUP = "prompt:"  # groups of the annotated study's prompts (``data.FolderInfo.group``)


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


def _evidence(f: Features) -> list[float]:
    """Each part's landmark evidence (noisy-or of its signals), as ``Part.landmark_evidence``."""
    return [noisy_or(signals) for signals in f.landmark_signals]


def separations(scores: np.ndarray, rows: list[Features]) -> dict:
    """AUROC and recall at 10 % false alarms: all images; generated images alone (what the WebUI
    judges); generated malformed pictures against photos; and the generated pictures of the prompt
    groups alone (malformed against mildly flawed pictures of the same prompts). NaN scores are left out."""
    labels = np.array([f.sample.label for f in rows])
    ok = ~np.isnan(scores)
    generated = np.array([f.sample.generated for f in rows])
    prompts = np.array([f.sample.group.startswith(PROMPT_GROUP) for f in rows])
    subsets = {
        "all": ok,
        "generated_only": ok & generated,
        "generated_malformed_vs_photos": ok & ((generated & (labels == 1)) | ~generated),
        "prompt_groups": ok & generated & prompts,
    }
    return {
        name: _separation(scores[mask], labels[mask])
        for name, mask in subsets.items()
        if len(set(labels[mask].tolist())) == 2
    }


def crossval(
    features: list[Features],
    encoder_sha256: str,
    masks: dict[int, np.ndarray] | None = None,
    copies: dict[int, list[Features]] | None = None,
) -> dict:
    """Leave-one-group-out figures. ``masks``: index into the whole-image rows -> malformed-region
    mask; ``copies``: the same index -> the picture saved other ways (bench's JPEG q90 and WebP q80),
    scored by the same held-out heads for the held-out swing."""
    from ..metrics import inside_fraction

    result, held_out_heads = _crossval(features, encoder_sha256, masks, copies, inside_fraction)
    if "skipped" not in result:
        result["teach"] = teach_curve(features, held_out_heads)
    return result


def _crossval(features, encoder_sha256, masks, copies, inside_fraction) -> tuple[dict, dict]:
    rows = _image_rows(features)
    groups = sorted({f.sample.group for f in rows})
    scores = np.full(len(rows), np.nan)
    top_part: list[int | None] = [None] * len(rows)
    thresholds = {p: np.full(len(rows), np.nan) for p in PRESETS}
    swings: dict[int, float] = {}
    held_out_heads = {}
    for group in groups:
        test = [i for i, f in enumerate(rows) if f.sample.group == group]
        try:
            heads = fit_heads(training_side(features, {group}), encoder_sha256)
        except Exception:  # a training side without both labels: these images stay unscored
            continue
        held_out_heads[group] = heads
        for i in test:
            f = rows[i]
            _p, fused, scores[i] = _scored(heads, f)
            boxes = f.boxes if len(f.boxes) == len(fused) else [(0, 0, 0, 0)] * len(fused)  # rows without boxes
            top_part[i] = worst_first(fused, f.kinds, boxes, _evidence(f))[0] if fused else None
            if copies and copies.get(i):
                saved = [scores[i]] + [_scored(heads, c)[2] for c in copies[i]]
                swings[i] = max(saved) - min(saved)
            for preset in PRESETS:
                thresholds[preset][i] = heads.thresholds.get(preset, np.nan)
    labels = np.array([f.sample.label for f in rows])
    ok = ~np.isnan(scores)
    if len(set(labels[ok].tolist())) < 2:
        return {"skipped": "too few labelled images in the other groups to fit heads for any held-out group"}, {}
    landmarks = np.array([max(_evidence(f), default=0.0) for f in rows])
    landmarks[~ok] = np.nan
    result = {
        "protocol": (
            f"leave one group out over {len(groups)} groups ({sum(g.startswith(PROMPT_GROUP) for g in groups)} of "
            "them prompts of the annotated study's repository, the others source repositories); heads fitted and "
            "calibrated on the other groups only"
        ),
        "scored": int(ok.sum()),
        **separations(scores, rows),
        "landmark_signals_alone": separations(landmarks, rows),
    }
    if swings:
        worst = max(swings, key=swings.get)
        result["stability_held_out"] = {
            "images": len(swings), "worst_swing": round(swings[worst], 4), "worst_image": rows[worst].sample.path.name,
            "mean_swing": round(float(np.mean(list(swings.values()))), 4),
            "images_over_0.1": sum(v > 0.1 for v in swings.values()),
        }  # fmt: skip
    generated = ok & np.array([f.sample.generated for f in rows])
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
        with_preset = ok & ~np.isnan(t)  # scored by heads that had this preset
        flagged = with_preset & (scores >= np.nan_to_num(t, nan=np.inf))
        presets[preset] = {
            # what a WebUI user meets: normal generated pictures flagged (photos are easier to pass)
            "false_alarms_generated": _share(flagged, generated_normal),
            "recall": _share(flagged, ok & (labels == 1)),
            "false_alarms": _share(flagged, ok & (labels == 0)),
            "false_alarms_photos": _share(flagged, ok & ~generated & (labels == 0)),
            "threshold_range": (
                [round(float(t[with_preset].min()), 3), round(float(t[with_preset].max()), 3)]
                if with_preset.any()
                else None
            ),
        }
    result["presets_held_out"] = presets
    if masks:
        result["mask_coverage"] = _mask_coverage(rows, masks, top_part, scores, thresholds, ok, inside_fraction)
    return result, held_out_heads


def _mask_coverage(rows, masks, top_part, scores, thresholds, ok, inside_fraction) -> dict:
    """Where, on the images whose malformed region a mask marks: the top part's box and focus."""
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
    return coverage


# The teach loop: per held-out group of generated pictures with both labels, k of its labelled pictures
# are added to the other groups' heads (``train.teach``, as ``train`` adds a user's labels) and the
# rest of the group is scored; DRAWS random draws of k per group (seeded), the gain against k = 0 on
# the same rest averaged over draws, then over groups.
TEACH_K = (5, 10, 20)
TEACH_DRAWS = 20


def teach_curve(features: list[Features], held_out_heads: dict, ks=TEACH_K, draws: int = TEACH_DRAWS) -> dict:
    """AUROC of each held-out group's remaining pictures after k of its pictures were taught, against
    the same pictures under the heads without them; with the balanced preset's false alarms (among
    the rest's normal pictures) and recall before and after, pooled over draws."""
    rng = np.random.default_rng(0)
    rows = _image_rows(features)
    curve = {}
    for k in ks:
        per_group, flags = {}, np.zeros(8, int)  # false alarms, normal, found, malformed: before, after
        for group, base in sorted(held_out_heads.items()):
            members = [f for f in rows if f.sample.group == group]
            labels = np.array([f.sample.label for f in members])
            if not all(f.sample.generated for f in members) or min((labels == 0).sum(), (labels == 1).sum()) < 2:
                continue
            gains = []
            for _ in range(draws if len(members) > k else 0):
                taught = set(rng.choice(len(members), size=k, replace=False).tolist())
                rest = [i for i in range(len(members)) if i not in taught]
                if len(set(labels[rest].tolist())) < 2:
                    continue
                heads = teach(base, [members[i] for i in sorted(taught)])
                before = np.array([base.image_probability(members[i].image_embedding) for i in rest])
                after = np.array([heads.image_probability(members[i].image_embedding) for i in rest])
                gains.append((auroc(before, labels[rest]), auroc(after, labels[rest])))
                t = base.thresholds.get("balanced", np.inf)
                for n, scores in enumerate((before, after)):
                    flags[4 * n : 4 * n + 4] += [
                        (scores[labels[rest] == 0] >= t).sum(), (labels[rest] == 0).sum(),
                        (scores[labels[rest] == 1] >= t).sum(), (labels[rest] == 1).sum(),
                    ]  # fmt: skip
            if gains:
                per_group[group] = {
                    "draws": len(gains),
                    "auroc_before": round(float(np.mean([g[0] for g in gains])), 4),
                    "auroc_after": round(float(np.mean([g[1] for g in gains])), 4),
                }
        if not per_group:
            note = f"no held-out group keeps pictures of both labels once {k} are taught"
            curve[str(k)] = {"groups": 0, "note": note}
            continue
        gain = np.mean([g["auroc_after"] - g["auroc_before"] for g in per_group.values()])
        curve[str(k)] = {
            "groups": len(per_group),
            "draws": sum(g["draws"] for g in per_group.values()),
            "auroc_gain": round(float(gain), 4),
            "balanced_preset": {
                "false_alarms_before": _rate(flags[0], flags[1]), "false_alarms_after": _rate(flags[4], flags[5]),
                "recall_before": _rate(flags[2], flags[3]), "recall_after": _rate(flags[6], flags[7]),
            },
            "per_group": per_group,
        }  # fmt: skip
    return curve


def _rate(count: int, among: int) -> float | None:
    return round(float(count) / among, 4) if among else None


def _focus_boxes(f: Features) -> list:
    """Each part's focus (features extracted before there were focus boxes: its box)."""
    return f.focus_boxes if len(f.focus_boxes) == len(f.boxes) else f.boxes
