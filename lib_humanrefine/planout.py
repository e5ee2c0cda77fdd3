"""Writing a plan for people to look at: ``plan.json``, per-step masks and control images, and an
overview picture of where each step works."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .atomic import output_folder, save_png, write_json
from .conditions.crop import crop_image
from .plan import Plan

KIND_COLOURS = {"pose": (0, 200, 255), "hand": (255, 60, 60), "face": (255, 200, 0)}  # RGB


def write_plan(image: np.ndarray, plan: Plan, out: Path, source: str | None = None, extra: dict | None = None) -> dict:
    """Write every file of a dry run into ``out``, each atomically and ``plan.json`` last (a folder
    without it is an interrupted one); ``extra`` adds keys to plan.json. Returns the plan.json content."""
    output_folder(out, "plan folder")
    described = plan.describe()
    described["image"] = source
    described.update(extra or {})
    for step, entry in zip(plan.steps, described["steps"]):
        n = step.index
        files = {
            "mask": crop_image(step.mask, step.crop, step.size, cv2.INTER_NEAREST),
            "ring": crop_image(step.ring, step.crop, step.size, cv2.INTER_NEAREST),
        }
        for control in step.controls:
            name = {"depth": "depth", "openpose": "pose", "reference": "reference"}[control.kind]
            files[name] = control.image
        entry["files"] = {}
        for name, array in files.items():
            filename = f"step{n}_{name}.png"
            save_png(out / filename, array)
            entry["files"][name] = filename
    save_png(out / "overview.png", overview(image, plan))
    described["overview"] = "overview.png"
    write_json(out / "plan.json", described)
    return described


def overview(image: np.ndarray, plan: Plan) -> np.ndarray:
    """The image with each step's changeable region tinted, its crop outlined and labelled."""
    canvas = image.copy()
    side = max(image.shape[:2])
    line, scale = max(1, side // 400), max(0.4, side / 1400)
    for step in plan.steps:
        colour = np.array(KIND_COLOURS.get(step.kind, (255, 255, 255)), np.float32)
        region = np.maximum(step.mask, step.ring) > 0
        canvas[region] = (canvas[region] * 0.55 + colour * 0.45).astype(np.uint8)
    for step in plan.steps:
        colour = KIND_COLOURS.get(step.kind, (255, 255, 255))
        c = step.crop
        cv2.rectangle(canvas, (c.x0, c.y0), (c.x1 - 1, c.y1 - 1), colour, line)
        text = f"#{step.index} {step.kind}: {step.part.label()} {step.score:.2f}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, line)
        y = max(c.y0, th + 4)
        cv2.rectangle(canvas, (c.x0, y - th - 4), (c.x0 + tw + 4, y), colour, -1)
        cv2.putText(canvas, text, (c.x0 + 2, y - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), line, cv2.LINE_AA)
    if not plan.steps:
        cv2.putText(canvas, "no steps: nothing flagged", (8, 30), cv2.FONT_HERSHEY_SIMPLEX, scale, (60, 200, 60), line)
    return canvas
