"""Glue between the WebUI's always-on Script and the core. WebUI modules are imported lazily,
inside functions, so this package imports anywhere (tests use stand-ins of ``p``).

Per job: ``start_job`` (from ``Script.process``) validates the arguments and registers infotext
callables; ``process_image`` (per final image, after hires fix and the inpaint composite)
diagnoses it and runs the planned steps as nested img2img passes, replacing the image only with a
verified result; ``finish_job`` (from ``Script.postprocess``) appends overlays. Nothing here ever
loses the generated image: on any error the image stays as it was and the infotext says why.
"""

from __future__ import annotations

import os
import sys
import weakref
from dataclasses import dataclass, field, replace

from .. import prompt_tags
from ..errors import HumanRefineError, ModelsMissing
from ..options import (
    INFOTEXT_KEY,
    RESULT_INFOTEXT_KEY,
    SETTINGS,
    BadOptions,
    ScriptArgs,
    Settings,
    infotext_params,
    parse_script_args,
)

TITLE = "HumanRefine"
SETTINGS_SECTION = ("humanrefine", "HumanRefine")
EXTENSION_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log(message: str) -> None:
    print(f"[HumanRefine] {message}", file=sys.stderr)


def webui_models_dir() -> str | None:
    """``--humanrefine-models-dir``, else ``<webui models dir>/humanrefine`` inside a WebUI, else None."""
    try:
        from modules import paths_internal  # type: ignore[import-not-found]
    except ImportError:
        return None
    shared = sys.modules.get("modules.shared")  # absent in install.py: don't import the whole WebUI
    flag = getattr(getattr(shared, "cmd_opts", None), "humanrefine_models_dir", None)
    return flag or os.path.join(paths_internal.models_path, "humanrefine")


def use_webui_models_dir() -> None:
    from ..models import set_models_dir

    folder = webui_models_dir()
    if folder:
        set_models_dir(folder)


def models_fetch_hint(folder) -> str:
    """The exact command that fills the folder this WebUI reads; the models are used as soon as they
    are there (no restart). A restart is named too only where it would fetch them: the launcher runs
    install.py at start unless the WebUI was started with --skip-install."""
    import shlex

    from ..models import fetch_command

    command = fetch_command(folder, python=sys.executable)
    if "--models-dir" not in command:  # the WebUI's folder is never the stand-alone default, but be exact
        command = command.replace(
            " -m lib_humanrefine ", f" -m lib_humanrefine --models-dir {shlex.quote(str(folder))} "
        )
    hint = f"run: cd {shlex.quote(EXTENSION_DIR)} && {command}"
    return hint if _skips_install() else f"{hint} (or restart the WebUI: it fetches them at start)"


def _skips_install() -> bool:
    """Whether this WebUI was started with --skip-install (then install.py never runs at start)."""
    try:
        from modules import shared  # type: ignore[import-not-found]
    except ImportError:
        return True
    return bool(getattr(getattr(shared, "cmd_opts", None), "skip_install", False))


def user_message(exc: Exception) -> str:
    """One line for the infotext and console; missing models name the folder and the command. The
    "HumanRefine: " some messages start with (for API answers, where nothing else says who answered)
    is dropped: the infotext key and the console prefix already say it."""
    if isinstance(exc, ModelsMissing):
        from ..models import models_dir

        first = str(exc).split("; run", 1)[0]
        return f"{first}; {models_fetch_hint(models_dir())}"
    if isinstance(exc, HumanRefineError):
        return str(exc).removeprefix("HumanRefine: ")
    return f"{exc.__class__.__name__}: {exc}"


def opt(key: str):
    """A HumanRefine setting from the WebUI's settings page (its default outside a WebUI)."""
    default = next(o.default for o in SETTINGS if o.key == key)
    try:
        from modules import shared  # type: ignore[import-not-found]

        return getattr(shared.opts, key, default)
    except ImportError:
        return default


def current_settings() -> Settings:
    return Settings.from_lookup(lambda key, default: opt(key))


@dataclass
class JobState:
    """What one generation job needs between hooks; lives in the Script, not on ``p``."""

    args: ScriptArgs
    settings: Settings
    summaries: dict[tuple[int, int], str] = field(default_factory=dict)  # (iteration, batch index) -> text
    results: dict[tuple[int, int], str] = field(default_factory=dict)
    # id(image) -> (weak reference to that image, its report). The weak reference tells a later image
    # that happens to get the same id (the first one gone) from the one the report belongs to.
    reports: dict[int, tuple[weakref.ref, dict]] = field(default_factory=dict)
    overlays: list = field(default_factory=list)  # PIL images
    host: object | None = None  # WebUIHost, made on the first image that needs it
    adetailer: frozenset[str] = frozenset()  # part kinds ("faces", "hands", "bodies") ADetailer does in this job
    left_to_adetailer: dict[tuple[int, int], str] = field(default_factory=dict)
    open: bool = True  # until Script.postprocess

    @staticmethod
    def _key(kwargs) -> tuple[int, int]:
        p = kwargs.get("p")
        return (getattr(p, "iteration", 0) if p is not None else 0, kwargs.get("index") or 0)

    def infotext(self, **kwargs) -> str | None:
        """Called by the WebUI's create_infotext with its locals (``p``, ``index``...)."""
        return self.summaries.get(self._key(kwargs))

    def result_infotext(self, **kwargs) -> str | None:
        return self.results.get(self._key(kwargs))

    def add_report(self, image, report: dict) -> None:
        self.reports[id(image)] = (weakref.ref(image), report)

    def report_for(self, image) -> dict | None:
        """The report of this very image object, or None."""
        ref, report = self.reports.get(id(image), (None, None))
        return report if ref is not None and ref() is image else None


def _prompts(p) -> list[str]:
    return list(getattr(p, "all_prompts", None) or [getattr(p, "prompt", "") or ""])


ADETAILER_TITLE = "ADetailer"
ADETAILER_KINDS = {"face": "faces", "hand": "hands", "person": "bodies"}  # words in its model names


def adetailer_kinds(p) -> frozenset[str]:
    """The part kinds an enabled ADetailer inpaints in job ``p``, read from its arguments in the job
    (``[enabled, skip img2img, {"ad_model": ..., "ad_tab_enable": ...}, ...]``): a face model
    (face_yolov8n.pt, mediapipe_face_full...) -> faces, a hand model -> hands, a person model
    (it repaints whole people) -> bodies."""
    runner = getattr(p, "scripts", None)
    for script in getattr(runner, "alwayson_scripts", None) or []:
        try:
            if script.title() != ADETAILER_TITLE:
                continue
            args = list(p.script_args or [])[script.args_from : script.args_to]
        except Exception:  # another extension's broken script is not our problem
            continue
        if getattr(p, "_ad_disabled", False) or (args and args[0] is False):
            return frozenset()
        kinds = set()
        for tab in args:
            if not isinstance(tab, dict) or tab.get("ad_tab_enable", True) is False:
                continue
            model = str(tab.get("ad_model", "None")).lower()
            kinds.update(kind for word, kind in ADETAILER_KINDS.items() if model != "none" and word in model)
        return frozenset(kinds)
    return frozenset()


def _running_job(p) -> bool:
    """``p`` is a shallow copy of a job that is running: ADetailer calls every script's ``process``
    on ``copy(p)`` after each batch (to re-hook ControlNet). The copy shares the job's
    ``extra_generation_params``, which already hold that job's infotext callables; starting a job
    on it would replace them and lose the batch's HumanRefine lines."""
    owner = getattr(p.extra_generation_params.get(INFOTEXT_KEY), "__self__", None)
    return isinstance(owner, JobState) and owner.open


def start_job(p, raw_args) -> JobState | None:
    """From ``Script.process``: None when off for every image, when ``p`` is our own nested pass,
    ADetailer's inpaint pass, or a copy of a job already running."""
    from ..hosts.webui import INNER_FLAG

    if getattr(p, INNER_FLAG, False) or getattr(p, "_ad_inner", False) or _running_job(p):
        return None
    try:
        args = parse_script_args(list(raw_args))
    except BadOptions as exc:
        message = user_message(exc)
        log(message)
        p.extra_generation_params[INFOTEXT_KEY] = f"error - {message}"
        return None
    switched_on = any(s.present and not s.off for s in map(prompt_tags.parse, _prompts(p)))
    if not args.enabled and not switched_on:
        return None
    state = JobState(args, current_settings())
    if state.settings.leave_to_adetailer:
        state.adetailer = adetailer_kinds(p)
        if state.adetailer:
            log(
                f"ADetailer inpaints {', '.join(sorted(state.adetailer))} in this job (before HumanRefine, on each "
                "image); HumanRefine leaves them to it (setting humanrefine_leave_to_adetailer)"
            )
    p.extra_generation_params[INFOTEXT_KEY] = state.infotext
    p.extra_generation_params[RESULT_INFOTEXT_KEY] = state.result_infotext
    p.extra_generation_params.update(infotext_params(args, state.settings))
    return state


def _image_index(p) -> int:
    return getattr(p, "iteration", 0) * getattr(p, "batch_size", 1) + getattr(p, "batch_index", 0)


def _pick(values, index: int, default):
    values = values or []
    return values[index] if index < len(values) else (values[0] if values else default)


def plan_options_for(p, args: ScriptArgs, settings: Settings, index: int):
    """The plan options of image ``index`` of job ``p``: its own prompt (HumanRefine tags removed),
    seed, the job's steps and CFG, and the options after the prompt's switches."""
    from ..service import plan_options_from

    model = "sd15"
    try:
        from ..hosts.webui import current_family

        model = current_family(load=False).key  # (the job has loaded it)
    except ImportError:
        pass
    prompt = _pick(getattr(p, "all_prompts", None), index, getattr(p, "prompt", "") or "")
    negative = _pick(getattr(p, "all_negative_prompts", None), index, getattr(p, "negative_prompt", "") or "")
    seed = int(_pick(getattr(p, "all_seeds", None), index, getattr(p, "seed", 0) or 0))
    return plan_options_from(
        args, settings, prompt_tags.strip(prompt), prompt_tags.strip(negative), model, seed,
        int(getattr(p, "steps", 20) or 20), float(getattr(p, "cfg_scale", 7.0) or 7.0),
    )  # fmt: skip


def set_progress(text: str) -> None:
    try:
        from modules import shared  # type: ignore[import-not-found]

        shared.state.textinfo = f"HumanRefine: {text}"
    except ImportError:
        pass


def _key(p) -> tuple[int, int]:
    return (getattr(p, "iteration", 0), getattr(p, "batch_index", 0))


def process_image(p, state: JobState, pp) -> None:
    """From the per-image hook: diagnose the final (composited) image and, unless the policy is
    ``off``, refine it through nested passes. Keyed by ``p.batch_index`` (the position
    create_infotext receives as ``index``; Forge's ``pp.index`` counts across batches). Whatever
    fails, the job goes on with the image as it is and the infotext says why."""
    try:
        _process_image(p, state, pp)
    except Exception as exc:  # a bug of ours or a changed host must not cost the user the job
        message = user_message(exc)
        log(f"failed: {message}; the image is kept as it is")
        state.results[_key(p)] = f"error - {message}"


def _process_image(p, state: JobState, pp) -> None:
    from ..diagnose.report import summary
    from ..images import to_rgb_array
    from ..service import diagnose_for

    key = _key(p)
    index = _image_index(p)
    switch = prompt_tags.parse(_pick(getattr(p, "all_prompts", None), index, ""))
    for warning in switch.warnings:
        log(warning)
    args = switch.apply(state.args)
    if args is None:
        if state.args.enabled:
            state.summaries[key] = "off for this image (prompt)"
        return
    left = sorted(kind for kind in state.adetailer if getattr(args, kind) and kind not in switch.kinds)
    if left:  # parts a prompt tag names explicitly are refined all the same
        args = replace(args, **dict.fromkeys(left, False))
        state.left_to_adetailer[key] = f"{' and '.join(left)} left to ADetailer"
    try:
        use_webui_models_dir()
        array = to_rgb_array(pp.image)
        detections, diagnosis, args = diagnose_for(array, args, state.settings)
        state.summaries[key] = summary(diagnosis)
        if state.settings.show_overlay:
            from PIL import Image

            from ..diagnose.overlay import draw_overlay

            state.overlays.append(Image.fromarray(draw_overlay(array, detections, diagnosis)))
    except Exception as exc:  # never lose the user's image over a diagnosis failure
        message = user_message(exc)
        log(f"diagnosis failed: {message}; the image is kept unchanged")
        state.summaries[key] = f"error - {message}"
        return
    if args.policy == "off":
        return
    refine_image(p, state, pp, args, array, (detections, diagnosis), index)


def refine_image(p, state: JobState, pp, args: ScriptArgs, array, initial, index: int) -> None:
    """Run the plan through the WebUI; ``pp.image`` is replaced only by a finished result."""
    from ..engine import EngineOptions, refine
    from ..hosts.webui import WebUIHost, keep_params_txt, stop_reason

    key = _key(p)
    reason = stop_reason()
    if reason:
        state.results[key] = f"not run: {reason}"
        return
    last_in_batch = getattr(p, "batch_index", 0) >= getattr(p, "batch_size", 1) - 1
    not_saved = None  # why the image before refinement could not be saved
    try:
        if state.host is None:
            choices = {"depth": state.settings.depth_model, "openpose": state.settings.pose_model}
            state.host = WebUIHost.for_job(p, choices)
            for note in state.host.notes:
                log(note)
        if state.settings.save_before:
            try:
                save_before(p, pp.image, index)
            except Exception as exc:  # e.g. a full disk: refine anyway (the host saves the result) and say so
                not_saved = f"before-image not saved ({user_message(exc)})"
                log(not_saved)
        options = EngineOptions(
            threshold=args.threshold, tta=state.settings.tta, verify=state.settings.verify,
            learned=state.settings.learned,
        )  # fmt: skip
        state.host.begin_image()
        with keep_params_txt():
            result = refine(
                array, state.host, plan_options_for(p, args, state.settings, index), options,
                progress=set_progress, should_stop=stop_reason, initial=initial,
            )  # fmt: skip
    except Exception as exc:  # the image is kept exactly as generated
        message = user_message(exc)
        log(f"refinement failed: {message}; the image is kept unchanged")
        state.results[key] = f"error - {message}"
        return
    finally:
        if state.host is not None:
            try:
                state.host.after_image(p, last_in_batch)
            except Exception as exc:
                log(f"could not restore the outer job's ControlNet: {exc.__class__.__name__}: {exc}")
    # what the passes of this image ran without (a control with no model for this checkpoint, a model
    # without ControlNet), with what to download: in the infotext, not only in the console
    left_out = list(getattr(state.host, "image_notes", None) or [])
    if key in state.left_to_adetailer:
        left_out.append(state.left_to_adetailer[key])
    state.results[key] = "; ".join([result.summary(), *left_out, *([not_saved] if not_saved else [])])
    log(f"image {index + 1}: {state.results[key]}")
    if result.changed.any():
        from PIL import Image

        refined = Image.fromarray(result.image)
        refined.info.update(getattr(pp.image, "info", {}) or {})
        pp.image = refined
    report = result.describe()
    report["controlnet"] = list(getattr(state.host, "notes", []))
    if not_saved:
        report["before_image"] = not_saved
    state.add_report(pp.image, report)


def save_before(p, image, index: int) -> None:
    """Save the image as generated (suffix ``-before-humanrefine``, with its generation parameters)."""
    from modules import images, processing, shared  # type: ignore[import-not-found]

    if not getattr(p, "save_samples", lambda: True)():
        return
    try:  # the parameters as the WebUI writes them for this image (batch-local lists, as it does itself)
        info = processing.create_infotext(
            p, p.prompts, p.seeds, p.subseeds, index=getattr(p, "batch_index", 0),
            all_negative_prompts=getattr(p, "negative_prompts", None),
        )  # fmt: skip
    except Exception:  # an older or changed host: save without parameters rather than not at all
        info = None
    images.save_image(
        image, p.outpath_samples, "", _pick(getattr(p, "all_seeds", None), index, -1),
        _pick(getattr(p, "all_prompts", None), index, ""), shared.opts.samples_format, info=info,
        p=p, suffix="-before-humanrefine",
    )  # fmt: skip


def finish_job(p, processed, state: JobState) -> None:
    """From ``Script.postprocess``: settle the infotext callables, show overlays as extra output
    images (setting)."""
    state.open = False
    settle_infotext_callables(p, processed, state)
    if not state.overlays:
        return
    processed.images.extend(state.overlays)
    infotexts = getattr(processed, "infotexts", None)
    if isinstance(infotexts, list):
        infotexts.extend(["HumanRefine overlay"] * len(state.overlays))


def settle_infotext_callables(p, processed, state: JobState) -> None:
    """Once every image's infotext is written, the job's per-image callables become the first
    image's lines: Forge Classic's ``Processed.js()`` dumps ``extra_generation_params`` without
    A1111's ``default=lambda o: None``, so a callable left there failed the whole job (seen in the
    lab: "Object of type method is not JSON serializable")."""
    dicts = (p.extra_generation_params, getattr(processed, "extra_generation_params", None))
    for params in {id(d): d for d in dicts if isinstance(d, dict)}.values():
        for key, texts in ((INFOTEXT_KEY, state.summaries), (RESULT_INFOTEXT_KEY, state.results)):
            if callable(params.get(key)):
                first = texts[min(texts)] if texts else None
                if first is None:
                    del params[key]
                else:
                    params[key] = first


def write_report_beside(params, report: dict) -> None:
    """``on_image_saved``: the report as ``<image>.humanrefine.json`` (setting)."""
    from modules import paths  # type: ignore[import-not-found]

    from ..atomic import write_json

    filename = params.filename if os.path.isabs(params.filename) else os.path.join(paths.data_path, params.filename)
    write_json(os.path.splitext(filename)[0] + ".humanrefine.json", report)


def refresh_choices() -> None:
    """The settings page's refresh button beside a ControlNet model picker: its choices are read
    from the host (and the loaded checkpoint) each time they are built, so nothing to reload."""


def register_settings() -> None:
    """``on_ui_settings`` callback: the options in ``SETTINGS`` on the settings page."""
    from modules import shared  # type: ignore[import-not-found]

    from .ui import setting_component

    for option in SETTINGS:
        component, component_args = setting_component(option)
        info = shared.OptionInfo(
            option.default, option.label, component, component_args, section=SETTINGS_SECTION,
            infotext=option.infotext, refresh=refresh_choices if option.kind == "text" else None,
        )  # fmt: skip
        shared.opts.add_option(option.key, info)


def run_in_webui_queue(work):
    """One job at a time under the WebUI's queue lock, shown in its progress, interruptible."""
    from modules import devices, shared  # type: ignore[import-not-found]
    from modules.call_queue import queue_lock  # type: ignore[import-not-found]

    from ..hosts.webui import keep_params_txt

    with queue_lock:
        shared.state.begin(job="humanrefine")
        try:
            with keep_params_txt():
                return work()
        finally:
            devices.torch_gc()
            shared.state.end()
