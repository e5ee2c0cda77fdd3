"""STAND-INS of the loaded model (``shared.sd_model``) as each host leaves it, with the flags, class
names and methods the real code sets (read from the hosts' source; paths relative to each host):

- A1111 1.10.1 (82a973c0) ``modules/sd_models.py set_model_type``: ``is_sd1 / is_sd2 / is_sdxl /
  is_ssd / is_sd3`` (all five always set), ``model_type``, ``latent_channels`` (``set_model_fields``),
  ``is_sdxl_inpaint``; classes ``ldm...LatentDiffusion`` (SD 1/2), ``sgm...DiffusionEngine`` (SDXL),
  ``modules/models/sd3/sd3_model.py SD3Inferencer`` (``latent_channels = 16``).
- Forge f2.0.1 (dfdcbab6) ``backend/diffusion_engine``: ``ForgeDiffusionEngine.
  fix_for_webui_backward_compatibility`` sets ``is_sd1 / is_sd2 / is_sdxl / is_sd3 = False`` and
  ``use_distilled_cfg_scale = False``; each engine sets its own flag; ``Flux`` and ``Chroma`` set
  none (``Flux.use_distilled_cfg_scale`` unless schnell); ``is_webui_legacy_model()``.
- Forge Neo (283cb2c4): the base sets ``is_sd1 / is_sdxl / is_flux / is_wan = False``, ``use_shift``;
  ``is_flux`` (latent format) on Flux, Chroma, Lumina2 and ZImage; ``is_wan`` on QwenImage and Wan;
  ``is_webui_legacy_model()`` = ``is_sd1 or is_sdxl``; no SD 2 / SD 3 engines.
- Forge Classic (c813972d) ``modules_forge/forge_loader.py``: A1111's model object with ``is_sdxl =
  conditioner is not None``, ``is_sd2 = False``, ``is_sd1 = not is_sdxl`` and ``forge_objects``.
"""

from __future__ import annotations

from types import SimpleNamespace


# --- A1111 1.10.1 ------------------------------------------------------------------------------
class LatentDiffusion:
    """ldm.models.diffusion.ddpm.LatentDiffusion (SD 1.x, SD 2.x)."""


class DiffusionEngine:
    """sgm.models.diffusion.DiffusionEngine (SDXL, SSD-1B)."""


class SD3Inferencer:
    """modules/models/sd3/sd3_model.py SD3Inferencer."""


def a1111_model(kind: str):
    """``kind``: "sd1", "sd2", "sdxl", "ssd", "sdxl_inpaint", "sd3" -> the object set_model_type leaves."""
    cls = {"sd1": LatentDiffusion, "sd2": LatentDiffusion, "sd3": SD3Inferencer}.get(kind, DiffusionEngine)
    model = cls()
    model.is_sd1 = model.is_sd2 = model.is_sdxl = model.is_ssd = model.is_sd3 = False
    if kind == "sd3":
        model.is_sd3, model.model_type, model.latent_channels = True, "SD3", 16
    elif kind in ("sdxl", "ssd", "sdxl_inpaint"):
        model.is_sdxl, model.model_type = True, "SDXL"
        model.is_ssd = kind == "ssd"
    elif kind == "sd2":
        model.is_sd2, model.model_type, model.parameterization = True, "SD2", "v"
    else:
        model.is_sd1, model.model_type, model.parameterization = True, "SD1", "eps"
    if not hasattr(model, "latent_channels"):
        model.latent_channels = 4
    model.is_sdxl_inpaint = kind == "sdxl_inpaint"
    model.sd_checkpoint_info = SimpleNamespace(name_for_extra=f"{kind}-model")
    return model


# --- Forge f2.0.1 --------------------------------------------------------------------------------
class ForgeDiffusionEngine:
    def __init__(self):
        self.forge_objects = SimpleNamespace(unet=None, clip=None, vae=None, clipvision=None)
        self.is_inpaint = False
        self.fix_for_webui_backward_compatibility()

    def fix_for_webui_backward_compatibility(self):
        self.tiling_enabled = False
        self.first_stage_model = None
        self.cond_stage_model = None
        self.use_distilled_cfg_scale = False
        self.is_sd1 = self.is_sd2 = self.is_sdxl = self.is_sd3 = False

    def is_webui_legacy_model(self):
        return self.is_sd1 or self.is_sd2 or self.is_sdxl or self.is_sd3


def _forge_engine(name: str, flag: str | None, base=ForgeDiffusionEngine, **extra):
    def __init__(self):
        base.__init__(self)
        if flag:
            setattr(self, flag, True)
        for key, value in extra.items():
            setattr(self, key, value)

    return type(name, (base,), {"__init__": __init__})


FORGE_ENGINES = {
    "sd1": _forge_engine("StableDiffusion", "is_sd1"),
    "sd2": _forge_engine("StableDiffusion2", "is_sd2"),
    "sdxl": _forge_engine("StableDiffusionXL", "is_sdxl"),
    "sdxl_refiner": _forge_engine("StableDiffusionXLRefiner", "is_sdxl"),
    "sd3": _forge_engine("StableDiffusion3", "is_sd3"),
    "flux": _forge_engine("Flux", None, use_distilled_cfg_scale=True),
    "chroma": _forge_engine("Chroma", None),
}


def forge_model(kind: str):
    return FORGE_ENGINES[kind]()


# --- Forge Neo -----------------------------------------------------------------------------------
class NeoForgeDiffusionEngine:
    def __init__(self):
        self.forge_objects = SimpleNamespace(unet=None, clip=None, vae=None, clipvision=None)
        self.is_inpaint = False
        self.fix_for_webui_backward_compatibility()

    def fix_for_webui_backward_compatibility(self):
        self.tiling_enabled = False
        self.first_stage_model = None
        self.cond_stage_model = None
        self.use_distilled_cfg_scale = False
        self.use_shift = False
        self.is_sd1 = self.is_sdxl = False
        self.is_flux = False  # affects the usage of TAESD
        self.is_wan = False  # affects the usage of WanVAE (B, C, T, H, W)

    def is_webui_legacy_model(self):
        return self.is_sd1 or self.is_sdxl


NEO_ENGINES = {
    "sd1": _forge_engine("StableDiffusion", "is_sd1", NeoForgeDiffusionEngine),
    "sdxl": _forge_engine("StableDiffusionXL", "is_sdxl", NeoForgeDiffusionEngine),
    "flux": _forge_engine("Flux", "is_flux", NeoForgeDiffusionEngine, use_distilled_cfg_scale=True),
    "chroma": _forge_engine("Chroma", "is_flux", NeoForgeDiffusionEngine),
    "lumina2": _forge_engine("Lumina2", "is_flux", NeoForgeDiffusionEngine, use_shift=True),
    "zimage": _forge_engine("ZImage", "is_flux", NeoForgeDiffusionEngine, use_shift=True),
    "qwen": _forge_engine("QwenImage", "is_wan", NeoForgeDiffusionEngine),
    "wan": _forge_engine("Wan", "is_wan", NeoForgeDiffusionEngine, use_shift=True),
}


def neo_model(kind: str):
    return NEO_ENGINES[kind]()


# --- Forge Classic ---------------------------------------------------------------------------------
def classic_model(kind: str):
    """forge_loader.load_model_for_a1111: A1111's object, flags from the conditioner's presence."""
    model = DiffusionEngine() if kind == "sdxl" else LatentDiffusion()
    model.conditioner = object() if kind == "sdxl" else None
    model.forge_objects = SimpleNamespace(unet=None, clip=None, vae=None, clipvision=None)
    model.is_sdxl = model.conditioner is not None
    model.is_sd2 = False
    model.is_sd1 = not model.is_sdxl
    return model
