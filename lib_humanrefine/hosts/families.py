"""Model families: which one the WebUI has loaded, its native generation size, whether the hosts'
ControlNet can run beside it, and which family a ControlNet model file is for.

The loaded model is read from the flags and classes the hosts really set (no WebUI import here):

- **A1111 1.10** (``modules/sd_models.py set_model_type``): ``is_sd1``, ``is_sd2``, ``is_sdxl``
  (also for SSD-1B, with ``is_ssd``), ``is_sd3``.
- **Forge 2** (``backend/diffusion_engine``): ``is_sd1`` / ``is_sd2`` / ``is_sdxl`` / ``is_sd3`` on
  ``StableDiffusion`` / ``StableDiffusion2`` / ``StableDiffusionXL`` / ``StableDiffusion3``;
  ``Flux`` and ``Chroma`` set none of them; ``is_webui_legacy_model()`` says whether the model is a
  UNet one the ControlNet integration supports.
- **Forge Neo**: only ``is_sd1`` and ``is_sdxl`` are family flags; ``is_flux`` / ``is_wan`` name the
  *latent format* (``is_flux`` is also set on ``Chroma``, ``Lumina2`` and ``ZImage``; ``is_wan`` on
  ``QwenImage``), so the family of the others is told by the engine's class name.
- **Forge Classic / reForge**: A1111's model objects with ``is_sdxl`` / ``is_sd1`` / ``is_sd2`` set
  by ``modules_forge/forge_loader.py``.

A ControlNet model's family comes from its file name (the names people download) and, when the
name says nothing, from the tensor shapes in its safetensors header (read without torch).
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    key: str  # "sd15", "sdxl", ...
    label: str  # for people: "SD 1.5", "SDXL", ...
    native: int  # long side of the size the model generates best at
    controlnet: bool  # the hosts' ControlNet integrations run units with this family


FAMILIES: dict[str, Family] = {
    f.key: f
    for f in (
        Family("sd15", "SD 1.5", 512, True),
        Family("sd2", "SD 2.x", 768, True),
        Family("sdxl", "SDXL", 1024, True),
        Family("sd3", "SD 3", 1024, False),
        Family("flux", "Flux", 1024, False),
        Family("chroma", "Chroma", 1024, False),
        Family("lumina2", "Lumina 2", 1024, False),
        Family("zimage", "Z-Image", 1024, False),
        Family("qwen-image", "Qwen-Image", 1328, False),
        Family("wan", "Wan", 1024, False),
        Family("other", "this model", 1024, False),  # a Forge engine this table does not know
    )
}
NATIVE = {key: family.native for key, family in FAMILIES.items()}

# Forge / Neo diffusion-engine classes (backend/diffusion_engine/*.py) -> family.
ENGINE_CLASSES = {
    "StableDiffusion": "sd15",
    "StableDiffusion2": "sd2",
    "StableDiffusionXL": "sdxl",
    "StableDiffusionXLRefiner": "sdxl",
    "StableDiffusion3": "sd3",
    "Flux": "flux",
    "Chroma": "chroma",
    "Lumina2": "lumina2",
    "ZImage": "zimage",
    "QwenImage": "qwen-image",
    "Wan": "wan",
}


def loaded_family(sd_model) -> Family:
    """The family of the WebUI's loaded model (``shared.sd_model``); SD 1.5 when nothing tells."""
    if sd_model is None or type(sd_model).__name__ == "FakeInitialModel":  # Forge before loading one
        return FAMILIES["sd15"]
    if getattr(sd_model, "is_sdxl", False) is True:
        return FAMILIES["sdxl"]
    if getattr(sd_model, "is_sd3", False) is True:
        return FAMILIES["sd3"]
    if getattr(sd_model, "is_sd2", False) is True:
        return FAMILIES["sd2"]  # 768 (SD 2.1-v; the 512 base model is rarer: part_resolution sets it)
    if getattr(sd_model, "is_sd1", False) is True:
        return FAMILIES["sd15"]
    for cls in type(sd_model).__mro__:
        if cls.__name__ in ENGINE_CLASSES:
            return FAMILIES[ENGINE_CLASSES[cls.__name__]]
    legacy = getattr(sd_model, "is_webui_legacy_model", None)
    if callable(legacy):
        try:
            if not legacy():
                return FAMILIES["other"]
        except Exception:  # a half-loaded engine: say nothing rather than fail the job
            pass
    return FAMILIES["sd15"]


def describe_family(sd_model) -> str:
    """E.g. 'SDXL (StableDiffusionXL)' for logs."""
    family = loaded_family(sd_model)
    return f"{family.label} ({type(sd_model).__name__})" if sd_model is not None else family.label


# --- ControlNet model files ----------------------------------------------------------------

# Words in file names, checked in this order (the first family whose hint matches wins).
NAME_HINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("flux", ("flux",)),
    ("sd3", ("sd3", "sd35", "sd_3", "sd-3")),
    ("qwen-image", ("qwen",)),
    ("sdxl", ("sdxl", "xl", "pony", "illustrious", "noob", "xinsir", "promax", "controllllite", "mistoline")),
    ("sd2", ("sd21", "sd2.1", "sd20", "sd2_", "sd-2", "v2-1")),
    ("sd15", ("sd15", "sd1.5", "sd-1-5", "sd1_5", "control_v11", "control_sd15", "v1-5")),
)
UNION_WORDS = ("union", "promax")


def bare_name(name: str) -> str:
    """A listed ControlNet name without its " [hash]" and without a family label we added."""
    name = re.sub(r"\s+\(for [^)]*\)$", "", name)
    return name.split(" [")[0].strip()


def family_from_name(name: str) -> str | None:
    lowered = bare_name(name).lower()
    for family, words in NAME_HINTS:
        if any(word in lowered for word in words):
            return family
    return None


def is_union_name(name: str) -> bool:
    lowered = bare_name(name).lower()
    return any(word in lowered for word in UNION_WORDS)


MAX_HEADER = 64 * 1024 * 1024
_header_cache: dict[tuple[str, float, int], dict] = {}


def safetensors_header(path: str) -> dict | None:
    """The JSON header of a .safetensors file (tensor name -> {"dtype", "shape", ...}), or None."""
    if not path or not str(path).lower().endswith(".safetensors"):
        return None
    try:
        stat = os.stat(path)
        key = (os.path.realpath(path), stat.st_mtime, stat.st_size)
        if key not in _header_cache:
            with open(path, "rb") as fh:
                (length,) = struct.unpack("<Q", fh.read(8))
                if not 2 <= length <= MAX_HEADER:
                    return None
                header = json.loads(fh.read(length))
            _header_cache[key] = header if isinstance(header, dict) else {}
        return _header_cache[key] or None
    except (OSError, ValueError, struct.error):
        return None


def _context_dim(shapes: dict[str, list]) -> int | None:
    for key, shape in shapes.items():
        if key.endswith(("attn2.to_k.weight", "attn2.to_k.down")) and len(shape) == 2:
            return int(shape[1])
    return None


CONTEXT_FAMILY = {768: "sd15", 1024: "sd2", 2048: "sdxl"}


def family_from_header(header: dict) -> str | None:
    """The family a ControlNet / T2I-Adapter / ControlLLLite / Control-LoRA file is for, from the
    tensor names and shapes the hosts' loaders look at; None when they do not tell."""
    shapes = {}
    for key, value in header.items():
        if key == "__metadata__" or not isinstance(value, dict):
            continue
        for prefix in ("control_model.", "controlnet.", "adapter."):
            key = key.removeprefix(prefix)
        shapes[key] = value.get("shape") or []
    keys = shapes.keys()
    if any(k.startswith("lllite_") for k in keys):
        return "sdxl"  # kohya ControlLLLite exists for SDXL only
    if any(k.startswith(("double_blocks.", "single_blocks.", "single_transformer_blocks.")) for k in keys) or (
        "controlnet_x_embedder.weight" in keys
    ):
        return "flux"
    if "pos_embed.proj.weight" in keys and any(k.startswith("controlnet_blocks.") for k in keys):
        return "sd3"
    if "label_emb.0.0.weight" in keys:  # the SDXL ADM input (cldm layout, Control-LoRA too)
        return "sdxl"
    if "add_embedding.linear_1.weight" in keys:  # diffusers layout: 2816 = SDXL's text_time input
        return "sdxl" if shapes["add_embedding.linear_1.weight"][-1:] == [2816] else None
    if "conv_in.weight" in keys and "body.0.block1.weight" in keys:  # T2I-Adapter (full)
        channels = shapes["conv_in.weight"][1:2]
        return {192: "sd15", 64: "sd15", 256: "sdxl", 768: "sdxl"}.get(channels[0]) if channels else None
    if "body.0.in_conv.weight" in keys:  # T2I-Adapter light: SD 1.5
        return "sd15"
    context = _context_dim(shapes)
    if context is not None and (
        "input_hint_block.0.weight" in keys or "controlnet_cond_embedding.conv_in.weight" in keys
    ):
        return CONTEXT_FAMILY.get(context)
    return None


def is_union_header(header: dict) -> bool:
    """xinsir's ControlNet++ union / ProMax layout (sd-webui-controlnet's ControlNetUnion)."""
    keys = header.keys()
    return any(k.endswith(("task_embedding", "control_add_embedding.linear_1.weight")) for k in keys)


@dataclass(frozen=True)
class ControlNetModel:
    """One entry of the host's ControlNet list with what we know of it."""

    name: str  # as the host lists it (with " [hash]" where it adds one)
    family: str | None  # None: neither its name nor its file tells
    union: bool = False

    @property
    def label(self) -> str:
        family = FAMILIES[self.family].label if self.family in FAMILIES else "an unknown family"
        return f"{self.name} (for {family}{', union' if self.union else ''})"


def classify(name: str, path: str | None = None) -> ControlNetModel:
    """A listed model's family (name first, then its file's header) and whether it is a union model."""
    family = family_from_name(name)
    union = is_union_name(name)
    if family is None or not union:
        header = safetensors_header(path) if path else None
        if header:
            family = family or family_from_header(header)
            union = union or is_union_header(header)
    return ControlNetModel(name, family, union)


# What to download when no model fits (shown in the infotext and console): (file, Hugging Face repository).
HANDREFINER = ("control_sd15_inpaint_depth_hand_fp16.safetensors", "hr16/ControlNet-HandRefiner-pruned")
PROMAX = ("diffusion_pytorch_model_promax.safetensors", "xinsir/controlnet-union-sdxl-1.0")
SUGGESTIONS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("sd15", "depth"): (HANDREFINER, ("control_v11f1p_sd15_depth.pth", "lllyasviel/ControlNet-v1-1")),
    ("sd15", "openpose"): (("control_v11p_sd15_openpose.pth", "lllyasviel/ControlNet-v1-1"),),
    ("sd2", "depth"): (("control_v11p_sd21_depth.safetensors", "thibaud/controlnet-sd21"),),
    ("sd2", "openpose"): (("control_v11p_sd21_openposev2.safetensors", "thibaud/controlnet-sd21"),),
    ("sdxl", "depth"): (("diffusers_xl_depth_mid.safetensors", "lllyasviel/sd_control_collection"), PROMAX),
    ("sdxl", "openpose"): (("thibaud_xl_openpose.safetensors", "lllyasviel/sd_control_collection"), PROMAX),
}


def download_hint(family: Family, kind: str, folder: str | None) -> str:
    """'download X from huggingface.co/R (or ...) into FOLDER' ('' when there is nothing to suggest)."""
    files = SUGGESTIONS.get((family.key, kind))
    if not files:
        return ""
    where = folder or "the ControlNet models folder"
    return "download " + " or ".join(f"{name} from huggingface.co/{repo}" for name, repo in files) + f" into {where}"
