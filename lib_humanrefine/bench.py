"""Benchmark on a labelled folder: separation (AUROC, recall at ≤ 10 % false alarms), coverage
and latency. The image score is its highest part score.

AUROC and recall are a few lines of numpy; pulling in scikit-learn for two formulas is not worth
a dependency inside the WebUIs' environments.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from .atomic import json_safe
from .errors import BadImage, HumanRefineError
from .metrics import auroc, inside_fraction, percentiles, recall_at_fpr, region_mask, rss_mb


@dataclass
class Labelled:
    path: Path
    label: int  # 1 = malformed, 0 = normal
    kind: str = ""
    folder: Path | None = None  # the labels file's folder (annotations.csv, provenance.tsv beside it)
    row: str = ""  # where it is labelled ("DIR/labels.csv:12"), for messages


def load_labels(csv_path: Path, data_dir: Path) -> list[Labelled]:
    """Rows ``path,label[,kind]``; paths relative to the CSV's folder. UTF-8 with or without a
    byte-order mark (as spreadsheets save it); column names are matched ignoring case and spaces."""
    if not csv_path.is_file():
        raise BadImage(f"{csv_path}: labels file not found (columns path,label[,kind])")
    rows = []
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            table = list(csv.reader(fh))
    except UnicodeDecodeError:
        raise BadImage(f"{csv_path}: not UTF-8 text; save the labels as CSV UTF-8") from None
    except OSError as exc:
        raise BadImage(f"{csv_path}: cannot be read ({exc.strerror})") from None
    header = [name.strip().lower() for name in table[0]] if table else []
    crops = 0
    for n, cells in enumerate(table[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue  # blank line
        row = dict(zip(header, cells))
        try:
            label = int(row["label"])
            path = csv_path.parent / row["path"].strip()
        except (KeyError, TypeError, ValueError):
            raise BadImage(f"{csv_path}:{n}: need columns path,label[,kind] with label 0 or 1") from None
        if label not in (0, 1):
            raise BadImage(f"{csv_path}:{n}: label must be 0 or 1, got {label}")
        if (row.get("part") or "image").strip().lower() != "image":
            crops += 1
            continue  # a part crop for training (training/data.py), not a picture to diagnose
        rows.append(Labelled(path, label, (row.get("kind") or "").strip(), csv_path.parent, f"{csv_path}:{n}"))
    if not rows and crops:
        raise BadImage(
            f"{csv_path}: all {crops} rows are part crops (part hand, face or body), which train reads; bench "
            "scores whole pictures (rows with part image or no part)"
        )
    if not rows:
        raise BadImage(f"{csv_path}: no rows")
    return rows


def run_bench(
    items: list[Labelled],
    threshold: float | None = None,
    tta: bool = True,
    progress: TextIO | None = None,
    learned: bool = True,
    stability: bool = True,
    diagnoses: Iterable | None = None,
) -> dict:
    """The figures over ``items``. ``diagnoses``: each item's ``(detections, diagnosis, error)`` in
    order from another engine (``scale.ray_bench_diagnoses``); by default each is diagnosed here."""
    from .diagnose import DEFAULT_THRESHOLD
    from .plan import PlanOptions, make_plan
    from .training import benchfig

    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    learned_bench = benchfig.LearnedBench(threshold) if learned else None
    rss_start = rss_mb()
    scores, labels, kinds, latencies, hands_found = [], [], [], [], []
    kind_scores: dict[str, list[float]] = {kind: [] for kind in ("hand", "face", "body")}  # best part per image
    coverage = {
        "images_with_mask": 0,
        "hand_overlaps_mask": 0,
        "top_flagged_inside_mask": 0,
        "top_flagged_focus_inside_mask": 0,  # the top flagged part's focus (a hand's fingers) instead of its box
    }
    target_latencies, stage_ms = [], {}  # the speed target: ~1024 px images with at most 2 people
    # Refinement cost of the default plans (SD 1.5, 20 steps) per policy, against one ADetailer-style
    # pass per detected hand and face; and what refining adds to a clean image under "flagged".
    policies = ("flagged", "all")
    work = {policy: dict.fromkeys(("planned", "steps", "clean_images_with_steps"), 0) for policy in policies}
    every_part = flagged_parts = 0
    clean_refine_ms = []
    rss_first = rss_start
    skipped = []  # images that could not be read or diagnosed: named, left out of every figure
    for item, (image, detections, diagnosis, error) in zip(
        items, _diagnosed(items, diagnoses, threshold, tta, learned)
    ):
        if error:
            skipped.append({"path": str(item.path), "error": error})
            if progress:
                print(f"error: {error}", file=progress)
            continue
        latencies.append(diagnosis.timings_ms["total"])
        if len(latencies) == 1:
            rss_first = rss_mb()  # models loaded and run once
        elif 900 <= max(image.shape[:2]) <= 1150 and len(detections.people) <= 2:
            target_latencies.append(latencies[-1])
            if learned_bench:
                learned_bench.time_without_learned(image, tta)
        try:
            mask = region_mask(item.path)
        except BadImage as exc:
            mask = None
            if progress:
                print(f"warning: mask ignored: {exc}", file=progress)
        if learned_bench:
            learned_bench.add(item, image, diagnosis, mask, tta, stability)
        for stage, ms in detections.timings_ms.items():
            stage_ms.setdefault(stage, []).append(ms)
        for policy in policies:
            start = time.perf_counter()
            plan = make_plan(image, detections, diagnosis, PlanOptions(policy=policy))
            if policy == "flagged" and item.label == 0:  # diagnosis + planning: all a clean image costs
                clean_refine_ms.append(latencies[-1] + (time.perf_counter() - start) * 1000.0)
            work[policy]["planned"] += plan.unet_work
            work[policy]["steps"] += len(plan.steps)
            work[policy]["clean_images_with_steps"] += item.label == 0 and bool(plan.steps)
        every_part += plan.baseline_unet_work
        flagged_parts += len(diagnosis.flagged())
        scores.append(diagnosis.score)
        labels.append(item.label)
        kinds.append(item.kind)
        if item.label == 1:
            hands_found.append(bool(detections.hands))
        for kind, values in kind_scores.items():
            values.append(max((p.score for p in diagnosis.parts if p.kind == kind), default=0.0))
        if mask is not None and item.label == 1:
            coverage["images_with_mask"] += 1
            hand_boxes = [p.box for p in diagnosis.parts if p.kind == "hand"]
            coverage["hand_overlaps_mask"] += any(inside_fraction(mask, box) > 0 for box in hand_boxes)
            flagged = diagnosis.flagged()
            coverage["top_flagged_inside_mask"] += bool(flagged) and inside_fraction(mask, flagged[0].box) >= 0.5
            coverage["top_flagged_focus_inside_mask"] += (
                bool(flagged) and inside_fraction(mask, flagged[0].focus or flagged[0].box) >= 0.5
            )
        if progress:
            print(
                f"{item.path.name:50} label={item.label} score={diagnosis.score:.3f} {latencies[-1]:.0f} ms",
                file=progress,
            )
    if not scores:
        raise BadImage(f"none of the {len(items)} image(s) could be diagnosed (named above)")
    s, y = np.array(scores), np.array(labels)
    recall, t_at = recall_at_fpr(s, y)
    lat = np.array(latencies[1:] if len(latencies) > 1 else latencies)  # first call includes model loading
    result = {
        "n_pos": int((y == 1).sum()),
        "n_neg": int((y == 0).sum()),
        "auroc": round(auroc(s, y), 4),
        "recall_at_fpr10": round(recall, 4),
        "threshold_at_fpr10": None if not np.isfinite(t_at) else round(t_at, 4),
        "hands_found_in_positives": round(float(np.mean(hands_found)), 4) if hands_found else None,
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 1),
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 1),
        "latency_1024px_le2_people": percentiles(target_latencies),
        "stage_ms_p50": {k: round(float(np.median(v)), 1) for k, v in stage_ms.items()},
        "flagged_at_threshold": {
            "threshold": threshold,
            "recall": round(float((s[y == 1] >= threshold).mean()), 4) if (y == 1).any() else None,
            "false_alarms": round(float((s[y == 0] >= threshold).mean()), 4) if (y == 0).any() else None,
        },
        "rss_mb_detectors": round(rss_first - rss_start, 1),  # loading + first run
        "rss_mb_extra": round(rss_mb() - rss_start, 1),  # after the whole run
        # Planned UNet work (latent pixels x steps run) per policy against one ADetailer-style pass per
        # detected hand and face ("every_part"); clean = labelled normal.
        "unet_work": {
            "every_part": every_part,
            "flagged_parts": flagged_parts,
            **{
                policy: {**w, "ratio": round(w["planned"] / every_part, 3) if every_part else None}
                for policy, w in work.items()
            },
        },
        "refine_ms_clean_flagged": percentiles(clean_refine_ms),
    }
    # Each part kind alone: the image scored by its best part of that kind (0 when it has none).
    result["by_part_kind"] = {}
    for kind, values in kind_scores.items():
        v = np.array(values)
        result["by_part_kind"][kind] = {
            "auroc": round(auroc(v, y), 4),
            "recall_at_fpr10": round(recall_at_fpr(v, y)[0], 4),
        }
    # Malformed images whose labels folder has <name>_mask.*: the authors' malformed region.
    if coverage["images_with_mask"]:
        result["mask_coverage"] = coverage
    if any(kinds):
        result["by_image_kind"] = {
            kind: {"n": int(sum(k == kind for k in kinds)),
                   "mean_score": round(float(np.mean([sc for sc, k in zip(scores, kinds) if k == kind])), 4),
                   "flagged": round(float(np.mean([sc >= threshold for sc, k in zip(scores, kinds) if k == kind])), 4)}
            for kind in sorted(set(kinds))
        }  # fmt: skip
    if learned_bench:
        result.update(learned_bench.figures(progress))
    domains = sorted({k.split("-")[0] for k in kinds if k})
    for domain in domains:
        idx = [i for i, k in enumerate(kinds) if k.split("-")[0] == domain]
        if len(set(y[idx])) == 2:  # both labels in this domain: separation that style cannot explain
            recall_d = recall_at_fpr(s[idx], y[idx])[0]
            result.setdefault("by_domain", {})[domain] = {
                "n": len(idx), "auroc": round(auroc(s[idx], y[idx]), 4), "recall_at_fpr10": round(recall_d, 4),
            }  # fmt: skip
    if skipped:
        result["skipped"] = skipped
    result = json_safe(result)  # a figure without both labels is NaN: null in JSON
    if learned_bench and progress:
        print(benchfig.format_table(result), file=progress)
    return result


def _diagnosed(items: list[Labelled], diagnoses: Iterable | None, threshold: float, tta: bool, learned: bool):
    """(image, detections, diagnosis, error) of each item: diagnosed here, or taken from ``diagnoses``
    (the image read again here: the figures beyond the diagnosis need its pixels)."""
    from .folder import diagnose_or_error
    from .images import load_image

    if diagnoses is None:
        for item in items:
            yield diagnose_or_error(item.path, threshold, tta, learned)
        return
    for item, (detections, diagnosis, error) in zip(items, diagnoses):
        yield (None if error else load_image(item.path)), detections, diagnosis, error


def refine_acceptance(
    items: list[Labelled], url: str, limit: int = 10, steps: int = 20, auth: str | None = None,
    options: dict | None = None, progress: TextIO | None = None, timeout: float | None = None,
) -> dict:  # fmt: skip
    """Refine the first ``limit`` images through a running WebUI's refine route (policy "all" unless
    ``options`` say otherwise) and count how many planned steps the verification accepted, and why
    the others were kept. A failure (the server refuses, goes away or answers something else) ends
    the figures there: they count the images refined until then and ``error`` says what happened."""
    from collections import Counter

    from .client import DEFAULT_TIMEOUT, REFINE_ROUTE, post_json, refine_answer, refine_payload

    options = {"policy": "all", **(options or {})}
    seconds, reasons = [], Counter()
    total = accepted = images = 0
    error = None
    for item in items[:limit]:
        start = time.perf_counter()
        try:
            payload = refine_payload(item.path.read_bytes(), "a photo of a person", "", 1, steps, 7.0, None, options)
            answer = refine_answer(
                post_json(url, REFINE_ROUTE, payload, auth=auth, timeout=timeout or DEFAULT_TIMEOUT), url + REFINE_ROUTE
            )
        except OSError as exc:  # the image went away since it was scored
            error = f"{item.path}: cannot be read ({exc.strerror or exc})"
            break
        except HumanRefineError as exc:
            error = str(exc)
            break
        seconds.append(time.perf_counter() - start)
        images += 1
        for step in answer.report["refinement"]["steps"]:
            total += 1
            accepted += step["accepted"]
            if not step["accepted"]:
                reasons[step["reason"].split(" (")[0] if "host failed" in step["reason"] else step["reason"]] += 1
        if progress:
            print(f"{item.path.name:50} {answer.info} ({seconds[-1]:.0f} s)", file=progress)
    out = {
        "url": url, "options": options, "images": images, "steps": total, "accepted": accepted,
        "share_accepted": round(accepted / total, 4) if total else None,
        "seconds_per_image": percentiles(seconds), "kept_because": dict(reasons.most_common()),
    }  # fmt: skip
    if error:
        out["error"] = error
    return out
