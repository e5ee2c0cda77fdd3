"""The one schema of user options. The WebUI accordion, the infotext keys and API validation are
all derived from ``SCRIPT_OPTIONS``; settings-page entries from ``SETTINGS``.

API callers pass ``"alwayson_scripts": {"HumanRefine": {"args": [...]}}`` with the values in
``SCRIPT_OPTIONS`` order (missing trailing values keep their defaults), or a single dict
``{"enabled": true, "threshold": 0.4}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import HumanRefineError

INFOTEXT_KEY = "HumanRefine"


class BadOptions(HumanRefineError):
    """Script arguments that cannot be understood."""


@dataclass(frozen=True)
class Option:
    key: str
    label: str
    default: object
    kind: str  # "bool" | "choice" | "float"
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    infotext: str | None = None  # infotext key written when the value differs from the default
    help: str = ""


SCRIPT_OPTIONS: tuple[Option, ...] = (
    Option("enabled", "Enable HumanRefine", False, "bool", help="Diagnose every generated image."),
    Option(
        "mode",
        "Mode",
        "diagnose",
        "choice",
        choices=("diagnose",),
        infotext="HumanRefine mode",
        help="diagnose: score hands, faces and bodies and report them (refinement comes in a later version).",
    ),  # fmt: skip
    Option(
        "threshold",
        "Suspect threshold",
        0.5,
        "float",
        minimum=0.05,
        maximum=0.95,
        step=0.05,
        infotext="HumanRefine threshold",
        help="A part scoring at or above this marks the image 'suspect'.",
    ),  # fmt: skip
    Option(
        "sensitivity",
        "Sensitivity",
        "threshold",
        "choice",
        choices=("threshold", "strict", "balanced", "relaxed"),
        infotext="HumanRefine sensitivity",
        help="strict / balanced / relaxed: thresholds set on normal images' false alarms (about 20 / 10 / 5 %); "
        "threshold: use the slider above.",
    ),  # fmt: skip
)

SETTINGS: tuple[Option, ...] = (
    Option("humanrefine_show_overlay", "Show the diagnosis overlay as an extra output image", False, "bool"),
    Option(
        "humanrefine_tta",
        "Face stability check (re-runs the face-mesh model on shifted crops; a few ms per face)",
        True,
        "bool",
    ),  # fmt: skip
    Option(
        "humanrefine_learned",
        "Learned check (CLIP encoder on the CPU: about 45 ms per person, face and hand; off = landmark signals only)",
        True,
        "bool",
    ),  # fmt: skip
)


@dataclass(frozen=True)
class ScriptArgs:
    enabled: bool = False
    mode: str = "diagnose"
    threshold: float = 0.5
    sensitivity: str = "threshold"  # or a preset of learned.sensitivity_threshold


def _coerce(option: Option, value: object) -> object:
    if value is None:
        return option.default
    if option.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            return value.strip().lower() in ("true", "1", "yes", "on")
        raise BadOptions(f"HumanRefine option '{option.key}' must be true or false, got {value!r}")
    if option.kind == "choice":
        if isinstance(value, str) and value.strip().lower() in option.choices:
            return value.strip().lower()
        raise BadOptions(f"HumanRefine option '{option.key}' must be one of {', '.join(option.choices)}; got {value!r}")
    if option.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise BadOptions(f"HumanRefine option '{option.key}' must be a number, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise BadOptions(f"HumanRefine option '{option.key}' must be a number, got {value!r}") from None
        lo, hi = option.minimum, option.maximum
        if not (lo is None or number >= lo) or not (hi is None or number <= hi) or number != number:
            raise BadOptions(f"HumanRefine option '{option.key}' must be between {lo} and {hi}, got {value!r}")
        return number
    raise AssertionError(option.kind)


def parse_script_args(args: Sequence[object] | dict | None) -> ScriptArgs:
    """Validate UI/API arguments: a positional list in SCRIPT_OPTIONS order, or one dict."""
    if args is None:
        args = ()
    if isinstance(args, dict):
        values = args
    elif args and isinstance(args[0], dict):
        # {"args": [{...}]}: the WebUI fills the remaining slots with UI defaults; the dict rules.
        values = args[0]
    else:
        if len(args) > len(SCRIPT_OPTIONS):
            raise BadOptions(
                f"HumanRefine takes at most {len(SCRIPT_OPTIONS)} args "
                f"({', '.join(o.key for o in SCRIPT_OPTIONS)}), got {len(args)}"
            )
        values = {o.key: v for o, v in zip(SCRIPT_OPTIONS, args)}
    known = {o.key for o in SCRIPT_OPTIONS}
    unknown = sorted(set(values) - known)
    if unknown:
        raise BadOptions(
            f"HumanRefine: unknown option(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
        )
    return ScriptArgs(**{o.key: _coerce(o, values.get(o.key)) for o in SCRIPT_OPTIONS})


def infotext_params(args: ScriptArgs) -> dict[str, str]:
    """Infotext entries for options that differ from their defaults."""
    out = {}
    for option in SCRIPT_OPTIONS:
        value = getattr(args, option.key)
        if option.infotext and value != option.default:
            out[option.infotext] = str(value)
    return out
