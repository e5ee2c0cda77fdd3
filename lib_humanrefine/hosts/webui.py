"""The Host that runs inpaint requests as nested img2img passes of the running WebUI (A1111 and
the Forge family): ``StableDiffusionProcessingImg2Img`` + ``processing.process_images`` with the
model the WebUI has loaded, its sampler, and its memory management — no model is loaded here.

Each pass gets a script runner holding only a copy of the host's ControlNet script with our units
(depth / OpenPose with our control images, ``reference_only`` with the part's reference), so no
other always-on script — ours included — runs inside it and the outer job's ControlNet units do
not leak in. Interrupt and Skip end a pass early; its result is then thrown away
(``HostInterrupted``). WebUI modules are imported inside functions only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from .base import HostInterrupted, HostOutOfMemory, InpaintRequest
from .controlnet import ControlNetBridge, find_controlnet, outer_controlnet_script
from .families import Family, describe_family, loaded_family

INNER_FLAG = "_humanrefine_inner"  # set on our nested passes; our Script ignores such jobs


def log(message: str) -> None:
    print(f"[HumanRefine] {message}", file=sys.stderr)


def stop_reason() -> str | None:
    """'interrupted' / 'skipped' when the user pressed Interrupt / Skip, else None."""
    from modules import shared  # type: ignore[import-not-found]

    state = shared.state
    if getattr(state, "interrupted", False):
        return "interrupted"
    if getattr(state, "skipped", False):
        return "skipped"
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's ``OutOfMemoryError`` (CUDA, a RuntimeError subclass) and the out-of-memory errors of
    the other backends (MPS, HIP, DirectML), told by their type name or message."""
    text = str(exc).lower()
    return (
        isinstance(exc, MemoryError)
        or type(exc).__name__ == "OutOfMemoryError"
        or "out of memory" in text
        or "not enough gpu video memory" in text
    )


def init_fields(cls) -> set[str] | None:
    """The keyword arguments the processing class accepts (its dataclass init fields; for a plain
    class, its ``__init__`` parameters); None when it takes any keyword."""
    if dataclasses.is_dataclass(cls):
        return {f.name for f in dataclasses.fields(cls) if f.init}
    parameters = inspect.signature(cls).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def ensure_model_loaded() -> None:
    """The Forge family loads the selected checkpoint lazily: until the first job, ``shared.sd_model``
    is a ``FakeInitialModel`` that tells no family. The refine route and the tab (which plan before
    any nested pass runs) load it the way ``process_images`` does (``forge_model_reload``: nothing to
    do when it is loaded). A1111 loads it on first access to ``shared.sd_model`` by itself."""
    from modules import sd_models  # type: ignore[import-not-found]

    reload = getattr(sd_models, "forge_model_reload", None)
    if callable(reload):
        reload()


def current_family(load: bool = True) -> Family:
    """The family of the model the WebUI has loaded (loading the selected one first on Forge when
    ``load``; SD 1.5 when none is loaded)."""
    from modules import shared  # type: ignore[import-not-found]

    if load:
        ensure_model_loaded()
    return loaded_family(getattr(shared, "sd_model", None))


@dataclass
class PassSettings:
    """Sampling settings shared by every pass for one image (taken from the outer job)."""

    sampler_name: str | None = None
    scheduler: str | None = None
    extra: dict = field(default_factory=dict)  # other processing fields to copy (clip skip lives in opts)


@dataclass
class WebUIHost:
    """``inpaint(request)`` → the inpainted crop, through the WebUI's own processing."""

    settings: PassSettings
    controlnet: ControlNetBridge | None
    model_choices: dict[str, str] = field(default_factory=dict)  # control kind -> setting value
    outpath: str | None = None
    passes: int = 0  # nested passes started (failed ones included)
    plain_only: bool = False  # set when ControlNet units cannot be made with this host's classes
    notes: list[str] = field(default_factory=list)
    family: Family | None = None  # of the loaded model when the host was made
    image_notes: list[str] = field(default_factory=list)  # for this image's infotext: controls left out

    @classmethod
    def for_job(cls, p, model_choices: dict[str, str]) -> WebUIHost:
        """A host that samples like the outer job ``p`` (sampler, scheduler, distilled CFG...)."""
        extra = {k: getattr(p, k) for k in ("distilled_cfg_scale", "s_min_uncond", "eta") if hasattr(p, k)}
        settings = PassSettings(getattr(p, "sampler_name", None), getattr(p, "scheduler", None), extra)
        notes: list[str] = []
        controlnet = find_controlnet(getattr(p, "scripts", None), notes)
        host = cls(settings, controlnet, model_choices, getattr(p, "outpath_samples", None), notes=notes)
        host._check_controlnet()
        return host

    @classmethod
    def standalone(cls, sampler_name, scheduler, model_choices: dict[str, str]) -> WebUIHost:
        ensure_model_loaded()  # the refine route and the tab may come before any job loaded it (Forge)
        notes: list[str] = []
        host = cls(PassSettings(sampler_name, scheduler), find_controlnet(None, notes), model_choices, notes=notes)
        host._check_controlnet()
        return host

    @property
    def uses_controlnet(self) -> bool:
        """ControlNet units go into the passes: one is installed and usable, and the loaded model
        is of a family it runs with (not Flux, SD 3, Qwen-Image...)."""
        return self.controlnet is not None and not self.plain_only and bool(self.family and self.family.controlnet)

    def _check_controlnet(self) -> None:
        from modules import shared  # type: ignore[import-not-found]

        sd_model = getattr(shared, "sd_model", None)
        self.family = loaded_family(sd_model)
        self.notes.insert(0, f"model: {describe_family(sd_model)}, native size {self.family.native} px")
        if not self.family.controlnet:
            self.notes.append(self.no_controlnet_text())
            return
        if self.controlnet is None:
            if len(self.notes) == 1:  # (else find_controlnet said why it could not use the one installed)
                self.notes.append("no ControlNet in this WebUI: plain inpainting")
            return
        # Name the models now, so the report says what every pass will use (and what to download).
        for kind in ("depth", "openpose"):
            self.notes.append(self.controlnet.pick(kind, self.family, self.model_choices.get(kind, "")).note)

    def no_controlnet_text(self) -> str:
        family = self.family or loaded_family(None)
        label = family.label if family.key != "other" else "this model"
        return f"no ControlNet for this model ({label}): plain inpainting, no reference"

    def begin_image(self) -> None:
        """Start collecting the infotext notes of one image's passes."""
        self.image_notes = []
        if self.controlnet is not None:
            self.controlnet.missing.clear()

    def _image_note(self, text: str) -> None:
        if text and text not in self.image_notes:
            self.image_notes.append(text)

    # --- one pass -----------------------------------------------------------------------------

    def _processing(self, request: InpaintRequest):
        from modules import processing, shared  # type: ignore[import-not-found]
        from PIL import Image

        cls = processing.StableDiffusionProcessingImg2Img
        accepted = init_fields(cls)
        width, height = request.size
        values = {
            "sd_model": shared.sd_model, "outpath_samples": self.outpath, "outpath_grids": self.outpath,
            "prompt": request.prompt, "negative_prompt": request.negative_prompt, "styles": [],
            "seed": int(request.seed), "subseed": -1, "subseed_strength": 0.0,
            "sampler_name": self.settings.sampler_name, "scheduler": self.settings.scheduler,
            "batch_size": 1, "n_iter": 1, "steps": int(request.steps), "cfg_scale": float(request.cfg_scale),
            "width": int(width), "height": int(height),
            "init_images": [Image.fromarray(request.image)], "mask": Image.fromarray(request.mask),
            "mask_blur": 4, "inpainting_fill": 1, "inpaint_full_res": False, "resize_mode": 0,
            "denoising_strength": float(request.denoising_strength),
            "do_not_save_samples": True, "do_not_save_grid": True,
            "override_settings": {}, "override_settings_restore_afterwards": True,
            **self.settings.extra,
        }  # fmt: skip
        p2 = cls(**{k: v for k, v in values.items() if (accepted is None or k in accepted) and v is not None})
        # Fresh condition caches (the class-level ones are shared between jobs).
        p2.cached_c = [None] * len(getattr(cls, "cached_c", [None, None]))
        p2.cached_uc = [None] * len(getattr(cls, "cached_uc", [None, None]))
        setattr(p2, INNER_FLAG, True)
        return p2

    def inpaint(self, request: InpaintRequest) -> np.ndarray:
        from modules import processing, shared  # type: ignore[import-not-found]

        reason = stop_reason()
        if reason:
            raise HostInterrupted(reason)
        if self.family is None:
            self.family = current_family()
        p2 = self._processing(request)
        runner, script_args, nested, used = None, [], contextlib.nullcontext(), "no ControlNet"
        wanted = bool(request.controls)
        if self.uses_controlnet:
            try:
                specs = self.controlnet.units_for(request.controls, self.family, self.model_choices)
                runner, script_args = self.controlnet.runner_for(specs)
                nested = self.controlnet.nested()
                used = ", ".join(_describe_unit(s) for s in specs) or "no units"
                for note in self.controlnet.notes:  # e.g. a union model on a host without control types
                    if note not in self.notes:
                        self.notes.append(note)
                        log(note)
                for kind in sorted({c.kind for c in request.controls} & set(self.controlnet.missing)):
                    self._image_note(self.controlnet.missing[kind])
            except Exception as exc:  # the host's unit class changed: plain inpainting from now on
                self.plain_only = True
                note = f"ControlNet units could not be made ({exc.__class__.__name__}: {exc}); plain inpainting"
                self.notes.append(" ".join(note.split())[:300])
                log(self.notes[-1])
                self._image_note("ControlNet units could not be made: plain inpainting")
        elif wanted and not self.family.controlnet:
            used = "none (no ControlNet for this model)"
            self._image_note(self.no_controlnet_text())
        elif wanted and self.controlnet is None:
            self._image_note("no ControlNet in this WebUI: plain inpainting")
        p2.scripts, p2.script_args = runner, script_args
        self.passes += 1
        log(f"pass {self.passes}: {request.label or 'part'} {request.size[0]}x{request.size[1]} ({self.family.label}), "
            f"denoise {request.denoising_strength:.2f}, seed {request.seed}, controls: {used}")  # fmt: skip
        shared.state.textinfo = f"HumanRefine: {request.label}" if request.label else "HumanRefine"
        if getattr(shared.state, "job_count", -1) >= 0:
            shared.state.job_count += 1  # our pass's nextjob() must not push the bar past 100 %
        try:
            with nested, outer_total_progress_only():
                processed = processing.process_images(p2)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            from modules import devices  # type: ignore[import-not-found]

            devices.torch_gc()  # give the memory back before the outer job (or the next image) goes on
            detail = " ".join(str(exc).split())[:160]
            log(f"out of memory in pass {self.passes} ({detail}); no further pass for this image")
            raise HostOutOfMemory(detail) from None
        reason = stop_reason()
        if reason:
            raise HostInterrupted(reason)
        if not processed.images:
            raise RuntimeError("the nested img2img pass returned no image")
        image = processed.images[0]
        return np.asarray(image.convert("RGB"))

    def after_image(self, p, last_in_batch: bool) -> None:
        """Give back memory; on A1111 hook the outer ControlNet units again before the next batch."""
        from modules import devices  # type: ignore[import-not-found]

        devices.torch_gc()  # Forge: memory_management.soft_empty_cache()
        more_batches = getattr(p, "iteration", 0) < getattr(p, "n_iter", 1) - 1
        if self.controlnet is not None and self.passes and last_in_batch and more_batches:
            self.controlnet.restore_outer(p, outer_controlnet_script(p))


def _describe_unit(spec) -> str:
    text = f"{spec.module}/{spec.model}@{spec.weight:g}"
    return f"{text} ({spec.control_type})" if spec.control_type else text


class _QuietTotalProgress:
    """Stands in for ``shared.total_tqdm`` (modules/shared_total_tqdm.py TotalTQDM) during a nested
    pass: the console's "Total progress" bar counts the outer job's steps and no more (it passed
    100 % during the passes); each pass still shows its own sampler bar."""

    def update(self):
        pass

    def updateTotal(self, new_total):  # the host's name
        pass

    def reset(self):
        pass

    def clear(self):
        pass


@contextlib.contextmanager
def outer_total_progress_only():
    from modules import shared  # type: ignore[import-not-found]

    outer = getattr(shared, "total_tqdm", None)
    if outer is None:  # a host without the console's total bar
        yield
        return
    shared.total_tqdm = _QuietTotalProgress()
    try:
        yield
    finally:
        shared.total_tqdm = outer


@contextlib.contextmanager
def keep_params_txt():
    """Nested passes rewrite ``params.txt`` (the "read last generation parameters" button); put the
    outer job's text back afterwards."""
    try:
        from modules import paths  # type: ignore[import-not-found]

        path = os.path.join(paths.data_path, "params.txt")
    except (ImportError, AttributeError):
        yield
        return
    try:
        with open(path, encoding="utf8") as fh:
            saved = fh.read()
    except OSError:
        saved = None
    try:
        yield
    finally:
        if saved is not None:
            from ..atomic import write_text
            from ..errors import CannotWrite

            with contextlib.suppress(CannotWrite):
                write_text(path, saved)
