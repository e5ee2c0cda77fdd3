"""Requests in, answers out — the work behind the HTTP routes (and the tab), with no WebUI or web
framework in it: base64 images, validated JSON payloads, one-line errors (``BadRequest``).

``diagnose_request(payload)`` → ``{"report", "overlay"?}``;
``refine_request(payload, host, ...)`` → ``{"image", "report", "info"}``; ``schema()`` describes both.
"""

from __future__ import annotations

import base64
import binascii
import io
import random
from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np

from . import __version__, prompt_tags
from .atomic import png_bytes
from .errors import BadImage, HumanRefineError, shown, shown_names
from .images import decode, to_rgb_array
from .options import (
    REQUEST_SCHEMA,
    SCRIPT_OPTION,
    SCRIPT_OPTIONS,
    SENSITIVITIES,
    SETTINGS,
    BadOptions,
    ScriptArgs,
    Settings,
    parse_request_options,
    short,
)

API_VERSION = 1
MAX_BASE64_CHARS = 80_000_000  # about 60 MB of image file
DIAGNOSE_KEYS = {"image", "threshold", "sensitivity", "learned", "overlay"}
REFINE_KEYS = {"image", "prompt", "negative_prompt", "seed", "steps", "cfg_scale", "sampler_name", "scheduler",
               "options", "parts", "return_candidates"}  # fmt: skip
PART_KEYS = {"part", "denoise", "candidates", "control_weight", "reference_weight"}
MAX_STEPS = 150  # sampling steps per pass a request (or the plan command) may ask for


class BadRequest(HumanRefineError):
    """The request cannot be served as sent (HTTP 400/422); the message says why in one line."""


def _check_keys(payload, allowed: set[str], what: str) -> Mapping:
    if not isinstance(payload, Mapping):
        raise BadRequest(f"HumanRefine: the {what} must be a JSON object, got {type(payload).__name__}")
    unknown = sorted(str(k) for k in payload if k not in allowed)
    if unknown:
        raise BadRequest(
            f"HumanRefine: unknown key(s) {shown_names(unknown)} in the {what} (known: {', '.join(sorted(allowed))})"
        )
    return payload


def decode_image(data) -> np.ndarray:
    """A base64 image (plain or ``data:image/...;base64,``) → H x W x 3 uint8 RGB; BadRequest
    when it is not one. EXIF orientation is applied; animated images give their first frame."""
    if not isinstance(data, str) or not data:
        raise BadRequest("HumanRefine: 'image' must be a base64-encoded image (PNG, JPEG, WebP...)")
    if len(data) > MAX_BASE64_CHARS:
        raise BadRequest(
            f"HumanRefine: 'image' is too large ({len(data)} base64 characters; at most {MAX_BASE64_CHARS})"
        )
    if data.startswith("data:"):
        data = data.split(",", 1)[-1]
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        try:  # wrapped lines (the base64 tool's default) or spaces
            raw = base64.b64decode("".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(
                "HumanRefine: 'image' is not valid base64 (standard alphabet A-Z a-z 0-9 + /, padded with =)"
            ) from None
    if not raw:
        raise BadRequest("HumanRefine: 'image' is empty")
    try:
        return to_rgb_array(decode(io.BytesIO(raw)))
    except BadImage as exc:
        raise BadRequest(f"HumanRefine: 'image': {exc}") from None


def encode_png(array: np.ndarray) -> str:
    return base64.b64encode(png_bytes(array)).decode("ascii")


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _number(payload: Mapping, key: str, default, lo: float, hi: float, integer: bool = False):
    value = payload.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"HumanRefine: '{key}' must be a number from {_plain(lo)} to {_plain(hi)}, got {shown(value)}")
    kind = "a whole number" if integer else "a number"
    # (an integer too large for a float is simply out of range: compared without any conversion)
    if not lo <= value <= hi or (isinstance(value, float) and integer and not value.is_integer()):
        raise BadRequest(f"HumanRefine: '{key}' must be {kind} from {_plain(lo)} to {_plain(hi)}, got {shown(value)}")
    return int(value) if integer else float(value)


def _text(payload: Mapping, key: str, default: str | None = "") -> str | None:
    value = payload.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadRequest(f"HumanRefine: '{key}' must be a string, got {type(value).__name__}")
    return value


def _flag(payload: Mapping, key: str) -> bool:
    value = payload.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"HumanRefine: '{key}' must be true or false, got {shown(value)}")
    return value


def diagnose_request(payload, base_settings: Settings | None = None) -> dict:
    """``{"image": b64, "sensitivity"?: "strict|balanced|relaxed", "threshold"?: 0.05-1 (instead of a
    preset), "learned"?: bool, "overlay"?: bool}`` → ``{"report", "overlay"?}``."""
    from .diagnose import DEFAULT_THRESHOLD
    from .diagnose.report import image_dict

    payload = _check_keys(payload, DIAGNOSE_KEYS, "request")
    slider = SCRIPT_OPTION["threshold"]  # the accordion's range
    threshold = _number(payload, "threshold", DEFAULT_THRESHOLD, slider.minimum, slider.maximum)
    sensitivity = _text(payload, "sensitivity", None)
    if sensitivity is not None and sensitivity not in SENSITIVITIES:
        choices = ", ".join(SENSITIVITIES)
        raise BadRequest(f"HumanRefine: 'sensitivity' must be one of {choices}, got {shown(sensitivity)}")
    if sensitivity not in (None, "threshold") and payload.get("threshold") is not None:
        raise BadRequest("HumanRefine: give 'threshold' or a 'sensitivity' preset, not both")
    sensitivity = sensitivity or ("threshold" if payload.get("threshold") is not None else "balanced")
    settings = base_settings or Settings()
    if "learned" in payload:
        settings = replace(settings, learned=_flag(payload, "learned"))
    overlay = _flag(payload, "overlay")
    image = decode_image(payload.get("image"))
    args = ScriptArgs(enabled=True, threshold=threshold, sensitivity=sensitivity)
    detections, diagnosis, _args = diagnose_for(image, args, settings)
    out = {"version": API_VERSION, "report": image_dict(diagnosis)}
    if overlay:
        from .diagnose.overlay import draw_overlay

        out["overlay"] = encode_png(draw_overlay(image, detections, diagnosis))
    return out


def _choices(parts) -> list | None:
    from .plan import PartChoice

    if parts is None:
        return None
    if not isinstance(parts, list):
        raise BadRequest("HumanRefine: 'parts' must be a list of objects like {\"part\": 0}")
    out = []
    for entry in parts:
        entry = _check_keys(entry, PART_KEYS, "'parts' entry")
        out.append(PartChoice(
            part=_number(entry, "part", -1, 0, 10_000, integer=True),
            denoise=None if entry.get("denoise") is None else _number(entry, "denoise", None, 0.05, 1.0),
            candidates=None if entry.get("candidates") is None else _number(entry, "candidates", None, 1, 4, True),
            control_weight=None if entry.get("control_weight") is None
            else _number(entry, "control_weight", None, 0.0, 2.0),
            reference_weight=None if entry.get("reference_weight") is None
            else _number(entry, "reference_weight", None, 0.0, 2.0),
        ))  # fmt: skip
    return out


KIND_OF_OPTION = {"hands": "hand", "faces": "face", "bodies": "pose"}


def plan_options_from(
    args: ScriptArgs, settings: Settings, prompt: str, negative_prompt: str, model: str, seed: int, steps: int,
    cfg_scale: float, choices=None,
):  # fmt: skip
    """The plan options for one image from the user's options and settings."""
    from .plan import PlanOptions

    return PlanOptions(
        prompt=prompt, negative_prompt=negative_prompt, model=model, part_resolution=settings.part_resolution,
        seed=seed, steps=steps, cfg_scale=cfg_scale,
        candidates=settings.candidates, policy=args.policy,
        kinds=tuple(kind for name, kind in KIND_OF_OPTION.items() if getattr(args, name)),
        strength={"hand": args.hand_strength, "face": args.face_strength, "pose": args.body_strength},
        choices=choices, depth_weight=settings.depth_weight, pose_weight=settings.pose_weight,
        reference_weight=settings.reference_weight, reference_fidelity=settings.reference_fidelity,
    )  # fmt: skip


def diagnose_for(image: np.ndarray, args: ScriptArgs, settings: Settings):
    """Diagnose an image with the user's options and settings: (detections, diagnosis, args) where
    ``args.threshold`` is the threshold in force (the slider's, or the sensitivity preset's for the
    scores this diagnosis has: learned, or landmark-only when the learned check did not run)."""
    from .diagnose import diagnose_image
    from .diagnose.learned import apply_sensitivity

    detections, diagnosis = diagnose_image(image, threshold=args.threshold, tta=settings.tta, learned=settings.learned)
    return (
        detections,
        diagnosis,
        replace(args, threshold=apply_sensitivity(diagnosis, args.sensitivity, args.threshold)),
    )


def refine_request(
    payload, make_host: Callable, base_settings: Settings | None = None, model: str = "sd15",
    progress: Callable[[str], None] | None = None, should_stop: Callable[[], str | None] | None = None,
) -> dict:  # fmt: skip
    """Refine one image through the host ``make_host(sampler_name, scheduler)`` returns. Payload:
    ``image`` (base64), ``prompt``, ``negative_prompt``, ``seed`` (-1 = random), ``steps``, ``cfg_scale``,
    ``sampler_name``, ``scheduler``, ``options`` (as the accordion, plus ``candidates``, ``verify``...),
    ``parts`` (explicit part choices), ``return_candidates``."""
    payload = _check_keys(payload, REFINE_KEYS, "request")
    try:
        args, settings = parse_request_options(payload.get("options"), base_settings)
    except BadOptions as exc:
        raise BadRequest(str(exc)) from None
    prompt = prompt_tags.strip(_text(payload, "prompt"))
    negative = prompt_tags.strip(_text(payload, "negative_prompt"))
    seed = _number(payload, "seed", -1, -1, 2**32 - 1, integer=True)
    seed = random.randrange(2**32 - 1) if seed == -1 else seed
    steps = _number(payload, "steps", 20, 1, MAX_STEPS, integer=True)
    cfg = _number(payload, "cfg_scale", 7.0, 1.0, 30.0)
    choices = _choices(payload.get("parts"))
    keep = _flag(payload, "return_candidates")
    sampler_name, scheduler = _text(payload, "sampler_name", None), _text(payload, "scheduler", None)
    image = decode_image(payload.get("image"))
    detections, diagnosis, args = diagnose_for(image, args, settings)
    initial = (detections, diagnosis)
    if choices is not None:
        bad = [c.part for c in choices if c.part >= len(initial[1].parts)]
        if bad:
            raise BadRequest(f"HumanRefine: 'parts' names part(s) {bad}; the image has {len(initial[1].parts)} parts")
    host = make_host(sampler_name, scheduler)
    result, report = refine_image(
        image, initial, host, args, settings, prompt, negative, model, seed, steps, cfg, choices=choices,
        keep_candidates=keep, progress=progress, should_stop=should_stop,
    )  # fmt: skip
    out = {"version": API_VERSION, "image": encode_png(result.image), "info": result.summary(), "report": report}
    if keep:
        out["candidates"] = [
            [encode_png(c.patch) if c.patch is not None else None for c in step.candidates] for step in result.steps
        ]
    return out


def refine_image(
    image: np.ndarray, initial, host, args: ScriptArgs, settings: Settings, prompt: str, negative_prompt: str,
    model: str, seed: int, steps: int, cfg_scale: float, choices=None, keep_candidates: bool = False,
    extra_mask: np.ndarray | None = None, mask_strength: float = 0.5,
    progress: Callable[[str], None] | None = None, should_stop: Callable[[], str | None] | None = None,
):  # fmt: skip
    """Refine an image that was diagnosed (``initial`` = its detections and diagnosis) through
    ``host``: the work behind the refine route and the tab. ``extra_mask`` (white = refine) adds
    a step per drawn region. Returns the engine's RefineResult and the report."""
    from .diagnose.report import image_dict
    from .engine import EngineOptions, refine
    from .plan import region_steps

    plan_options = plan_options_from(args, settings, prompt, negative_prompt, model, seed, steps, cfg_scale, choices)
    options = EngineOptions(
        threshold=args.threshold,
        tta=settings.tta,
        verify=settings.verify,
        keep_candidates=keep_candidates,
        learned=settings.learned,
    )
    extra = None
    if extra_mask is not None:  # indices after every possible part step keep seeds and names apart
        extra = region_steps(image, extra_mask, plan_options, len(initial[1].parts), mask_strength)
    result = refine(
        image, host, plan_options, options, progress=progress, should_stop=should_stop, initial=initial,
        extra_steps=extra,
    )  # fmt: skip
    report = {"diagnosis": image_dict(initial[1]), "refinement": result.describe(), "seed": seed}
    notes = list(getattr(host, "notes", []) or [])
    if notes:
        report["controlnet"] = notes
    return result, report


def schema() -> dict:
    """What the routes accept, generated from the option schema."""

    def describe(option):
        out = {"key": option.key, "type": option.kind, "default": option.default, "label": option.label}
        if option.choices:
            out["choices"] = list(option.choices)
        if option.minimum is not None:
            out["minimum"], out["maximum"] = option.minimum, option.maximum
        if option.help:
            out["help"] = option.help
        return out

    return {
        "version": API_VERSION,
        "humanrefine": __version__,
        "script_args": [describe(o) for o in SCRIPT_OPTIONS],
        "refine_options": [describe(o) for o in REQUEST_SCHEMA],
        "settings": [{**describe(o), "key": o.key, "short": short(o.key)} for o in SETTINGS],
        "routes": {
            "POST /humanrefine/v1/diagnose": sorted(DIAGNOSE_KEYS),
            "POST /humanrefine/v1/refine": sorted(REFINE_KEYS),
            "GET /humanrefine/v1/schema": [],
        },
        "prompt_tags": [
            "<humanrefine:off>",
            "<humanrefine:on>",
            "<humanrefine:flagged>",
            "<humanrefine:all>",
            "<humanrefine:diagnose>",
            "<humanrefine:hands[:strength]>",
            "<humanrefine:faces[:strength]>",
            "<humanrefine:bodies[:strength]>",
        ],  # fmt: skip
    }
