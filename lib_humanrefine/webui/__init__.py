"""Glue between the WebUI's always-on Script and the core. WebUI modules are imported lazily,
inside functions, so this package imports anywhere (tests use stand-ins of ``p``).

Per job: ``start_job`` (from ``Script.process``) validates the arguments and registers an
infotext callable; ``diagnose_image`` (per final image) records the summary; ``finish_job``
(from ``Script.postprocess``) appends overlays when the setting asks for them. Nothing here
ever replaces or drops the generated image: on any error the image stays as it is and the
infotext says what went wrong.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from ..errors import HumanRefineError
from ..options import INFOTEXT_KEY, SETTINGS, ScriptArgs, infotext_params, parse_script_args

TITLE = "HumanRefine"
SETTINGS_SECTION = ("humanrefine", "HumanRefine")


def log(message: str) -> None:
    print(f"[HumanRefine] {message}", file=sys.stderr)


def webui_models_dir() -> str | None:
    """``--humanrefine-models-dir``, else ``<webui models dir>/humanrefine`` inside a WebUI, else None."""
    import os

    try:
        from modules import paths_internal  # type: ignore[import-not-found]
    except ImportError:
        return None
    shared = sys.modules.get("modules.shared")  # absent in install.py: don't import the whole WebUI
    flag = getattr(getattr(shared, "cmd_opts", None), "humanrefine_models_dir", None)
    return flag or os.path.join(paths_internal.models_path, "humanrefine")


def opt(key: str):
    """A HumanRefine setting from the WebUI's settings page (its default outside a WebUI)."""
    default = next(o.default for o in SETTINGS if o.key == key)
    try:
        from modules import shared  # type: ignore[import-not-found]

        return getattr(shared.opts, key, default)
    except ImportError:
        return default


@dataclass
class JobState:
    """What one generation job needs between hooks; lives in the Script, not on ``p``."""

    args: ScriptArgs
    summaries: dict[tuple[int, int], str] = field(default_factory=dict)  # (iteration, batch index) -> text
    overlays: list = field(default_factory=list)  # PIL images

    def infotext(self, **kwargs) -> str | None:
        """Called by the WebUI's create_infotext with its locals (``p``, ``index``...)."""
        p = kwargs.get("p")
        index = kwargs.get("index") or 0
        iteration = getattr(p, "iteration", 0) if p is not None else 0
        return self.summaries.get((iteration, index))


def start_job(p, raw_args) -> JobState | None:
    """From ``Script.process``: None when disabled or when ``p`` is one of our own inner passes."""
    if getattr(p, "_humanrefine_inner", False):
        return None
    try:
        args = parse_script_args(list(raw_args))
    except HumanRefineError as exc:
        log(str(exc))
        p.extra_generation_params[INFOTEXT_KEY] = f"error - {exc}".replace(",", " ").replace(":", " ")
        return None
    if not args.enabled:
        return None
    state = JobState(args)
    p.extra_generation_params[INFOTEXT_KEY] = state.infotext
    p.extra_generation_params.update(infotext_params(args))
    return state


def diagnose_image(p, state: JobState, image) -> None:
    """From the per-image hook: diagnose the final (composited) PIL image.

    Keyed by ``p.batch_index`` (the position create_infotext receives as ``index``); Forge's
    ``pp.index`` counts across batches and would not match it."""
    from ..diagnose import diagnose_image
    from ..diagnose.report import summary
    from ..images import to_rgb_array
    from ..models import set_models_dir

    key = (getattr(p, "iteration", 0), getattr(p, "batch_index", 0))
    try:
        models_dir = webui_models_dir()
        if models_dir:
            set_models_dir(models_dir)
        array = to_rgb_array(image)
        tta, learned = bool(opt("humanrefine_tta")), bool(opt("humanrefine_learned"))
        threshold = state.args.threshold
        if state.args.sensitivity != "threshold":
            from ..learned import sensitivity_threshold

            threshold = sensitivity_threshold(state.args.sensitivity, learned=learned)
        detections, diagnosis = diagnose_image(array, threshold=threshold, tta=tta, learned=learned)
        state.summaries[key] = summary(diagnosis)
        if opt("humanrefine_show_overlay"):
            from PIL import Image

            from ..diagnose.overlay import draw_overlay

            state.overlays.append(Image.fromarray(draw_overlay(array, detections, diagnosis)))
    except HumanRefineError as exc:
        log(str(exc))
        state.summaries[key] = f"error - {exc}".replace(",", " ").replace(":", " ")
    except Exception as exc:  # never lose the user's image over a diagnosis failure
        log(f"diagnosis failed ({exc.__class__.__name__}: {exc}); the image is kept unchanged")
        state.summaries[key] = f"error - {exc.__class__.__name__}"


def finish_job(p, processed, state: JobState) -> None:
    """From ``Script.postprocess``: show overlays as extra output images (setting)."""
    if not state.overlays:
        return
    processed.images.extend(state.overlays)
    infotexts = getattr(processed, "infotexts", None)
    if isinstance(infotexts, list):
        infotexts.extend(["HumanRefine overlay"] * len(state.overlays))


def register_settings() -> None:
    """``on_ui_settings`` callback: the options in ``SETTINGS`` on the settings page."""
    from modules import shared  # type: ignore[import-not-found]

    for option in SETTINGS:
        info = shared.OptionInfo(option.default, option.label, section=SETTINGS_SECTION)
        shared.opts.add_option(option.key, info)
