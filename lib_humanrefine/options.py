"""The one schema of user options. The WebUI accordion, the settings page, the infotext keys, API
validation and the option tables of docs/options.md are all derived from the ``Option`` records here.

- ``SCRIPT_OPTIONS``: the accordion, in order. API callers pass
  ``"alwayson_scripts": {"HumanRefine": {"args": [...]}}`` with values in this order (missing
  trailing values keep their defaults) or a single dict ``{"enabled": true, "policy": "flagged"}``.
- ``SETTINGS``: Settings → HumanRefine. The ones marked ``per_request`` may also be given per job
  (the refine route's ``options``; the WebUI's ``override_settings`` with their full key).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from .errors import HumanRefineError, shown, shown_names

INFOTEXT_KEY = "HumanRefine"  # the diagnosis summary
RESULT_INFOTEXT_KEY = "HumanRefine result"  # what refinement did, one line
SETTING_PREFIX = "humanrefine_"
POLICIES = ("all", "flagged", "off")
POLICY_ALIASES = {"diagnose": "off"}  # version 0.1's only mode
PART_KINDS = ("hands", "faces", "bodies")
SENSITIVITIES = ("strict", "balanced", "relaxed", "threshold")  # presets, or the threshold slider


class BadOptions(HumanRefineError):
    """Options that cannot be understood; the message names every problem at once."""


@dataclass(frozen=True)
class Option:
    key: str
    label: str
    default: object
    kind: str  # "bool" | "choice" | "float" | "int" | "text" (a ControlNet model name) | "path"
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    infotext: str | None = None  # infotext key written when the value differs from the default
    help: str = ""
    aliases: Mapping[str, str] = field(default_factory=dict)  # accepted spellings of choices
    per_request: bool = False  # settings only: may be overridden per job
    row: str = ""  # accordion: options sharing a row name sit side by side


SCRIPT_OPTIONS: tuple[Option, ...] = (
    Option("enabled", "Enable HumanRefine", False, "bool",
           help="Diagnose every generated image and fix what the policy selects."),
    Option("policy", "Fix", "all", "choice", choices=POLICIES, aliases=POLICY_ALIASES, infotext="HumanRefine policy",
           help="all: every detected hand and face (plus body steps the diagnosis asks for); "
                "flagged: only parts the diagnosis flags; off: diagnose and report only."),
    Option("threshold", "Suspect threshold", 0.5, "float", minimum=0.05, maximum=1.0, step=0.05,
           infotext="HumanRefine threshold",
           help="A part scoring at or above this is flagged. Set it with Sensitivity 'threshold'; a preset shows "
                "its own threshold here, greyed."),
    Option("sensitivity", "Sensitivity", "balanced", "choice", choices=SENSITIVITIES,
           infotext="HumanRefine sensitivity",
           help="strict / balanced / relaxed: thresholds set on normal images' false alarms (about 20 / 10 / 5 %); "
                "threshold: use the slider above."),
    Option("hands", "Hands", True, "bool", infotext="HumanRefine hands", row="parts"),
    Option("faces", "Faces", True, "bool", infotext="HumanRefine faces", row="parts"),
    Option("bodies", "Bodies (pose)", True, "bool", infotext="HumanRefine bodies", row="parts"),
    Option("hand_strength", "Hand strength", 0.5, "float", minimum=0.05, maximum=1.0, step=0.05,
           infotext="HumanRefine hand strength", row="strengths",
           help="Denoising strength of a hand pass; a badly malformed hand gets up to 0.3 more."),
    Option("face_strength", "Face strength", 0.35, "float", minimum=0.05, maximum=1.0, step=0.05,
           infotext="HumanRefine face strength", row="strengths",
           help="Denoising strength of a face pass (up to 0.2 more when flagged)."),
    Option("body_strength", "Body strength", 0.6, "float", minimum=0.05, maximum=1.0, step=0.05,
           infotext="HumanRefine body strength", row="strengths",
           help="Denoising strength of a limb/body pass under OpenPose."),
)  # fmt: skip
SCRIPT_OPTION = {option.key: option for option in SCRIPT_OPTIONS}

AUTOMATIC = "Automatic"

SETTINGS: tuple[Option, ...] = (
    Option("humanrefine_candidates", "Candidates per part (seeds tried; the best verified one is kept)", 1, "int",
           minimum=1, maximum=4, step=1, infotext="HumanRefine candidates", per_request=True),
    Option("humanrefine_verify", "Verify each fix (keep a candidate only if the part is found again on the intended "
           "skeleton, a face stays the same person, and no colour cast, seam or blur shows); off = always keep the "
           "candidate closest to its skeleton", True, "bool",
           infotext="HumanRefine verify", per_request=True),
    Option("humanrefine_depth_weight", "Hand depth control weight (HandRefiner: 0.4-0.8)", 0.55, "float",
           minimum=0.0, maximum=2.0, step=0.05, infotext="HumanRefine depth weight", per_request=True),
    Option("humanrefine_pose_weight", "OpenPose control weight", 1.0, "float", minimum=0.0, maximum=2.0, step=0.05,
           infotext="HumanRefine pose weight", per_request=True),
    Option("humanrefine_reference_weight", "Reference (keep the part's look) weight; 0 = off", 1.0, "float",
           minimum=0.0, maximum=2.0, step=0.05, infotext="HumanRefine reference weight", per_request=True),
    Option("humanrefine_reference_fidelity", "Reference fidelity (style fidelity of reference_only)", 0.5, "float",
           minimum=0.0, maximum=1.0, step=0.05, infotext="HumanRefine reference fidelity", per_request=True),
    Option("humanrefine_part_resolution", "Generation size of a part, long side in pixels (0 = the model's native "
           "size: 512 for SD 1.5, 768 for SD 2.x, 1024 for SDXL, Flux and SD 3, 1328 for Qwen-Image)", 0, "int",
           minimum=0, maximum=2048, step=64,
           infotext="HumanRefine part resolution", per_request=True),
    Option("humanrefine_depth_model", "ControlNet model for hand depth (Automatic: a hand-refiner depth model, "
           "else a depth model, else a union model, made for the loaded checkpoint's family; a model for another "
           "family is never used)", AUTOMATIC, "text", per_request=True),
    Option("humanrefine_pose_model", "ControlNet model for OpenPose (Automatic: an OpenPose model, else a union "
           "model, made for the loaded checkpoint's family)", AUTOMATIC, "text", per_request=True),
    Option("humanrefine_leave_to_adetailer", "Beside ADetailer: leave it the parts it inpaints in the same job "
           "(faces with a face model, hands with a hand model, bodies with a person model); off = refine them again",
           True, "bool"),
    Option("humanrefine_save_before", "Save each image before refinement too (suffix -before-humanrefine)", False,
           "bool"),
    Option("humanrefine_save_report", "Save the report (.json) beside each saved image", False, "bool"),
    Option("humanrefine_show_overlay", "Show the diagnosis overlay as an extra output image", False, "bool"),
    Option("humanrefine_tta", "Face stability check (re-runs the face-mesh model on shifted crops; a few ms per face)",
           True, "bool"),
    Option("humanrefine_learned", "Learned check (CLIP encoder on the CPU: about 0.3 s per image on 2 cores; "
           "off = landmark signals only)", True, "bool", infotext="HumanRefine learned", per_request=True),
    Option("humanrefine_labels_dir", "Labels folder of the tab's \"fine\" / \"malformed\" buttons (empty: "
           "humanrefine-labels in the outputs folder)", "", "path"),
)  # fmt: skip


@dataclass(frozen=True)
class ScriptArgs:
    enabled: bool = False
    policy: str = "all"
    threshold: float = 0.5
    sensitivity: str = "balanced"  # a preset of learned.sensitivity_threshold, or "threshold" (the slider)
    hands: bool = True
    faces: bool = True
    bodies: bool = True
    hand_strength: float = 0.5
    face_strength: float = 0.35
    body_strength: float = 0.6


@dataclass(frozen=True)
class Settings:
    """Values of ``SETTINGS`` without their prefix; ``from_lookup`` reads them from the WebUI."""

    candidates: int = 1
    verify: bool = True
    depth_weight: float = 0.55
    pose_weight: float = 1.0
    reference_weight: float = 1.0
    reference_fidelity: float = 0.5
    part_resolution: int = 0
    depth_model: str = AUTOMATIC
    pose_model: str = AUTOMATIC
    leave_to_adetailer: bool = True
    save_before: bool = False
    save_report: bool = False
    show_overlay: bool = False
    tta: bool = True
    learned: bool = True
    labels_dir: str = ""

    @classmethod
    def from_lookup(cls, lookup) -> Settings:
        """``lookup(full_key, default)`` → value (e.g. getattr on the WebUI's opts); bad values
        fall back to the default (the settings page already constrains them)."""
        values = {}
        for option in SETTINGS:
            raw = lookup(option.key, option.default)
            try:
                values[short(option.key)] = coerce(option, raw)
            except BadOptions:
                values[short(option.key)] = option.default
        return cls(**values)


def short(key: str) -> str:
    return key.removeprefix(SETTING_PREFIX)


def _fail(option: Option, expected: str, value: object) -> BadOptions:
    return BadOptions(f"'{option.key}' must be {expected}, got {shown(value)}")


def coerce(option: Option, value: object) -> object:
    """One value checked and converted to the option's type; None means the default."""
    if value is None:
        return option.default
    if option.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            return value.strip().lower() in ("true", "1", "yes", "on")
        raise _fail(option, "true or false", value)
    if option.kind == "choice":
        if isinstance(value, str):
            word = value.strip().lower()
            word = option.aliases.get(word, word)
            if word in option.choices:
                return word
        raise _fail(option, f"one of {', '.join(option.choices)}", value)
    if option.kind in ("text", "path"):
        if isinstance(value, str) and "\n" not in value and len(value) <= (300 if option.kind == "text" else 4096):
            return value.strip() or option.default
        raise _fail(option, "a one-line text", value)
    if option.kind in ("float", "int"):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise _fail(option, "a number", value)
        try:
            number = float(value)
        except (ValueError, OverflowError):  # OverflowError: an integer beyond any float
            raise _fail(option, "a number", value) from None
        lo, hi = option.minimum, option.maximum
        if not math.isfinite(number) or (lo is not None and number < lo) or (hi is not None and number > hi):
            raise _fail(option, f"between {lo:g} and {hi:g}", value)
        if option.kind == "int":
            if number != int(number):
                raise _fail(option, "a whole number", value)
            return int(number)
        return number
    raise AssertionError(option.kind)


def _collect(schema: Sequence[Option], values: Mapping, known_extra: Sequence[str] = ()) -> tuple[dict, list[str]]:
    """Coerce every known key; gather every problem (unknown keys included) instead of stopping."""
    problems = []
    names = {o.key for o in schema}
    unknown = sorted(str(k) for k in values if k not in names and k not in known_extra)
    if unknown:
        problems.append(f"unknown option(s) {shown_names(unknown)} (known: {', '.join(sorted(names))})")
    out = {}
    for option in schema:
        try:
            out[option.key] = coerce(option, values.get(option.key))
        except BadOptions as exc:
            problems.append(str(exc))
    return out, problems


def parse_script_args(args: Sequence[object] | dict | None) -> ScriptArgs:
    """Validate UI/API arguments: a positional list in SCRIPT_OPTIONS order, or one dict. Raises
    BadOptions naming every problem at once."""
    if args is None:
        args = ()
    if isinstance(args, Mapping):
        values = args
    elif args and isinstance(args[0], Mapping):
        # {"args": [{...}]}: the WebUI fills the remaining slots with UI defaults; the dict rules.
        values = args[0]
    else:
        if len(args) > len(SCRIPT_OPTIONS):
            raise BadOptions(
                f"HumanRefine takes at most {len(SCRIPT_OPTIONS)} args "
                f"({', '.join(o.key for o in SCRIPT_OPTIONS)}), got {len(args)}"
            )
        values = {o.key: v for o, v in zip(SCRIPT_OPTIONS, args)}
    parsed, problems = _collect(SCRIPT_OPTIONS, values)
    if problems:
        raise BadOptions("HumanRefine: " + "; ".join(problems))
    return ScriptArgs(**parsed)


# The refine route's schema: script options plus the per-request settings by short name.
REQUEST_SCHEMA: tuple[Option, ...] = SCRIPT_OPTIONS + tuple(
    replace(o, key=short(o.key)) for o in SETTINGS if o.per_request
)


def parse_request_options(values: Mapping | None, base: Settings | None = None) -> tuple[ScriptArgs, Settings]:
    """The refine route's ``options``: script options plus per-request settings by short name
    (``candidates``, ``verify``, ...), over the ``base`` settings. Every problem is reported at once."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise BadOptions(f"HumanRefine: options must be an object, got {type(values).__name__}")
    parsed, problems = _collect(REQUEST_SCHEMA, values)
    if problems:
        raise BadOptions("HumanRefine: " + "; ".join(problems))
    script_keys = {o.key for o in SCRIPT_OPTIONS}
    args = ScriptArgs(**{k: v for k, v in parsed.items() if k in script_keys})
    given = {k: v for k, v in parsed.items() if k not in script_keys and k in values}
    return replace(args, enabled=True), replace(base or Settings(), **given)


def infotext_params(args: ScriptArgs, settings: Settings | None = None) -> dict[str, str]:
    """Infotext entries for options (and result-changing settings) that differ from their defaults."""
    out = {}
    for option in SCRIPT_OPTIONS:
        value = getattr(args, option.key)
        if option.key == "threshold" and args.sensitivity != "threshold":
            continue  # a preset decides the threshold: the slider's value was not used
        if option.infotext and value != option.default:
            out[option.infotext] = format_value(value)
    if settings is not None:
        for option in SETTINGS:
            value = getattr(settings, short(option.key))
            if option.infotext and value != option.default:
                out[option.infotext] = format_value(value)
    return out


def format_value(value: object) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def pasted_value(option: Option, text: str) -> object:
    """An infotext value back to the option's type (for "paste" / "send to")."""
    try:
        return coerce(option, text)
    except BadOptions:
        return option.default


def _values(option: Option) -> str:
    if option.kind == "bool":
        return "true / false"
    if option.kind == "choice":
        return " / ".join(option.choices) + (f" (also {', '.join(option.aliases)})" if option.aliases else "")
    if option.kind in ("float", "int"):
        return f"{option.minimum:g}–{option.maximum:g}"
    return "a folder" if option.kind == "path" else "text"


def markdown_tables() -> str:
    """The option tables of docs/options.md, generated from this schema (tests/test_repo.py keeps them equal;
    ``python -m lib_humanrefine.options`` prints them)."""
    lines = ["| # | key | accordion label | default | values | infotext key |", "|---|---|---|---|---|---|"]
    for n, o in enumerate(SCRIPT_OPTIONS):
        lines.append(
            f"| {n} | `{o.key}` | {o.label} | `{format_value(o.default)}` | {_values(o)} | {o.infotext or '–'} |"
        )
    lines += ["", "| setting | per job as | default | values | what it does |", "|---|---|---|---|---|"]
    for o in SETTINGS:
        per_job = f"`{short(o.key)}`" if o.per_request else "–"
        default = f"`{format_value(o.default)}`" if o.default != "" else "(empty)"
        lines.append(f"| `{o.key}` | {per_job} | {default} | {_values(o)} | {o.label} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_tables())
