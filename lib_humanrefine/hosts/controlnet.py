"""ControlNet inside the WebUI hosts: find the installed integration, pick models made for the
loaded checkpoint's family (hosts/families.py: by file name, else by safetensors header; never a
model of another family; a union model with its control type where the unit class has that
field), build units with our own control images (no preprocessor), and give a nested pass a
ControlNet script of its own so the outer job's units and state never leak into it (and are
restored after it).

Two integrations, feature-detected (never version-checked):

- **Forge family**: the built-in ``sd_forge_controlnet`` (``lib_controlnet``; ``sd-webui-controlnet``
  is force-disabled there). Its Script keeps per-instance state (``current_params``), so the nested
  pass gets a shallow copy; units are the ``ControlNetUnit`` dataclass with an HWC ndarray image
  (Forge Classic, whose units have no ``image_fg``: gradio 3's ``{"image", "mask"}`` pair).
- **A1111**: ``sd-webui-controlnet``. Its Script object hooks the UNet for the whole outer job;
  a nested pass through a copy of it unhooks the outer units first (none leak into our pass) and
  leaves the UNet unhooked, so ``restore_outer`` hooks the outer units again before the outer job
  samples its next batch. Its batch-tab hijack of ``process_images_inner`` is bypassed while our
  passes run. Units are its pydantic ``ControlNetUnit`` taken from the script module itself.

WebUI modules are imported inside functions only.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import sys
from dataclasses import dataclass, field

import numpy as np

from ..options import AUTOMATIC
from .base import Control
from .families import FAMILIES, ControlNetModel, Family, bare_name, classify, download_hint

# Model-name preferences per control kind: the first pattern group that matches wins; a union
# model (xinsir's ControlNet++ union / ProMax) of the checkpoint's family comes after them all.
MODEL_PATTERNS = {
    "depth": (("hand", "depth"), ("hand", "refiner"), ("depth",)),
    "openpose": (("openpose",), ("pose",)),
}
UNION_CONTROL_TYPE = {"depth": "Depth", "openpose": "OpenPose"}  # sd-webui-controlnet's ControlNetUnionControlType
NO_PREPROCESSOR = {"forge": "None", "a1111": "none"}
REFERENCE_MODULE = "reference_only"


def log(message: str) -> None:
    print(f"[HumanRefine] {message}", file=sys.stderr)


@dataclass
class Pick:
    """The model for one control kind: ``model`` None = that control is left out; ``note`` for the
    console and report; ``missing`` (when a control is left out for want of a model) for the infotext."""

    model: ControlNetModel | None
    note: str
    missing: str = ""
    control_type: str | None = None  # a union model's control type ("Depth", "OpenPose")


def _as_models(models) -> list[ControlNetModel]:
    return [m if isinstance(m, ControlNetModel) else classify(m) for m in models]


def pick_model(models, kind: str, family: Family, choice: str = AUTOMATIC, folder: str | None = None,
               control_types: bool = True) -> Pick:  # fmt: skip
    """The ControlNet model for a control kind. ``models``: the host's list (names or classified
    models); ``choice``: a listed name (with or without its hash or family label), "None" (off)
    or "Automatic". A model made for another family than the loaded checkpoint's is never used.
    ``control_types``: whether the host's units take a union model's control type (the Forge
    family's built-in ControlNet has none)."""
    listed = [m for m in _as_models(models) if m.name and m.name != "None"]

    def union(model: ControlNetModel) -> Pick:
        if not control_types:
            return Pick(model, f"{kind}: {model.name} (union, no control type: this ControlNet has none)")
        kind_type = UNION_CONTROL_TYPE.get(kind)
        return Pick(model, f"{kind}: {model.name} (union, control type {kind_type})", "", kind_type)

    if choice and choice != AUTOMATIC:
        if choice == "None":
            return Pick(None, f"{kind}: off (setting)")
        wanted = bare_name(choice)
        exact = [m for m in listed if m.name == choice or bare_name(m.name) == wanted]
        if not exact:
            note = f"{kind}: model '{choice}' is not installed; running without {kind} control"
            return Pick(None, note, f"{kind} model '{wanted}' not installed")
        chosen = exact[0]
        if chosen.family is not None and chosen.family != family.key:
            made_for = FAMILIES[chosen.family].label
            hint = download_hint(family, kind, folder)
            why = f"{chosen.name} is for {made_for}, the loaded checkpoint is {family.label}"
            note = f"{kind}: {why}; running without {kind} control" + (f"; {hint}" if hint else "")
            return Pick(None, note, f"{kind}: {why}" + (f"; {hint}" if hint else ""))
        return union(chosen) if chosen.union else Pick(chosen, f"{kind}: {chosen.name}")
    fitting = [m for m in listed if m.family == family.key]
    for pattern in MODEL_PATTERNS[kind]:
        found = sorted((m for m in fitting if not m.union and all(w in m.name.lower() for w in pattern)),
                       key=lambda m: m.name)  # fmt: skip
        if found:
            return Pick(found[0], f"{kind}: {found[0].name}")
    unions = sorted((m for m in fitting if m.union), key=lambda m: m.name)
    if unions:
        return union(unions[0])
    others = [m for m in listed if m.family not in (None, family.key)
              and any(all(w in m.name.lower() for w in pattern) for pattern in MODEL_PATTERNS[kind])]  # fmt: skip
    unusable = f"; {', '.join(m.label for m in others[:2])} cannot run with it" if others else ""
    hint = download_hint(family, kind, folder)
    missing = f"no {family.label} {kind} ControlNet" + (f": {hint}" if hint else "")
    note = f"{kind}: no {family.label} {kind} ControlNet model found{unusable}; running without {kind} control"
    return Pick(None, note + (f"; {hint}" if hint else ""), missing)


def _usable(image: np.ndarray | None) -> bool:
    """Forge's ControlNet mistakes an almost black image for an empty canvas; skip those."""
    return image is not None and bool((np.asarray(image) >= 5).any())


@dataclass
class UnitSpec:
    """One unit in host-neutral terms."""

    module: str
    model: str
    weight: float
    image: np.ndarray
    start: float
    end: float
    threshold_a: float = -1
    control_type: str | None = None  # a union model's control type


def unit_fields(unit_class) -> set[str] | None:
    """The fields a ControlNetUnit class takes (dataclass on Forge, pydantic on A1111); None if unknown."""
    if dataclasses.is_dataclass(unit_class):
        return {f.name for f in dataclasses.fields(unit_class)}
    fields = getattr(unit_class, "model_fields", None) or getattr(unit_class, "__fields__", None)
    return set(fields) if isinstance(fields, dict) else None


@dataclass
class ControlNetBridge:
    """The host's ControlNet: ``flavour`` is "forge" or "a1111"."""

    flavour: str
    script: object  # the ControlNet Script of the runner the outer job uses (or img2img's)
    external_code: object
    model_names: list[str]
    notes: list[str] = field(default_factory=list)
    model_paths: dict[str, str] = field(default_factory=dict)  # listed name -> file (to read its header)
    folder: str | None = None  # where the host looks for ControlNet models
    missing: dict[str, str] = field(default_factory=dict)  # control kind -> why it was left out (infotext)
    _models: list[ControlNetModel] | None = field(default=None, repr=False)

    def models(self) -> list[ControlNetModel]:
        """The listed models with the family each is for (file name, else its safetensors header)."""
        if self._models is None:
            names = [n for n in self.model_names if n and n != "None"]
            self._models = [classify(n, self.model_paths.get(n)) for n in names]
        return self._models

    def pick(self, kind: str, family: Family, choice: str = AUTOMATIC) -> Pick:
        control_types = "union_control_type" in (unit_fields(self.external_code.ControlNetUnit) or ())
        return pick_model(self.models(), kind, family, choice or AUTOMATIC, self.folder, control_types)

    # --- units ------------------------------------------------------------------------------

    def units_for(self, controls: list[Control], family: Family, choices: dict[str, str]) -> list[UnitSpec]:
        """Host units for our controls; a control without a model made for ``family`` is dropped
        (noted, and its reason kept in ``missing`` for the infotext)."""
        specs = []
        for control in controls:
            if not _usable(control.image) or control.weight <= 0:
                continue
            control_type = None
            if control.kind == "reference":
                module, model = REFERENCE_MODULE, "None"
                threshold_a = control.fidelity if control.fidelity is not None else 0.5
            else:
                pick = self.pick(control.kind, family, choices.get(control.kind, AUTOMATIC))
                self.note(pick.note)
                if pick.model is None:
                    if pick.missing:
                        self.missing[control.kind] = pick.missing
                    continue
                model, control_type = pick.model.name, pick.control_type
                module, threshold_a = NO_PREPROCESSOR[self.flavour], -1
            image = np.asarray(control.image)
            image = np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image)
            specs.append(UnitSpec(module, model, control.weight, image, control.start, control.end, threshold_a,
                                  control_type))  # fmt: skip
        return specs

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def make_unit(self, spec: UnitSpec):
        unit_class = self.external_code.ControlNetUnit
        values = {
            "enabled": True, "module": spec.module, "model": spec.model, "weight": float(spec.weight),
            "image": spec.image, "resize_mode": "Just Resize", "processor_res": 512,
            "threshold_a": float(spec.threshold_a), "guidance_start": float(spec.start),
            "guidance_end": float(spec.end), "pixel_perfect": False,
        }  # fmt: skip
        if spec.control_type:  # (pick() keeps it only where the unit class has the field)
            values["union_control_type"] = spec.control_type  # sd-webui-controlnet: by the enum's value
        if self.flavour == "forge":
            if "image_fg" not in (unit_fields(unit_class) or {"image_fg"}):
                # Forge Classic's units read the image as gradio 3's image-and-mask pair
                # (unit.image["image"], unit.image["mask"]); Forge and Neo take the array and an image_fg
                values["image"] = {"image": spec.image, "mask": np.zeros_like(spec.image)}
            return unit_class.from_dict(values)
        return unit_class(**values)

    def disabled_unit(self):
        if self.flavour == "forge":
            return self.external_code.ControlNetUnit.from_dict({"enabled": False})
        return self.external_code.ControlNetUnit(enabled=False)

    # --- the nested pass's script runner ----------------------------------------------------

    def runner_for(self, specs: list[UnitSpec]):
        """(ScriptRunner, script_args) for a nested pass: a copy of the ControlNet script alone,
        with our units in its argument slot (padded with disabled units to the host's count)."""
        from modules import scripts  # type: ignore[import-not-found]

        cn = copy.copy(self.script)
        units = [self.make_unit(s) for s in specs]
        count = max(len(units), self.script.args_to - self.script.args_from, 1)
        units += [self.disabled_unit() for _ in range(count - len(units))]
        cn.args_from, cn.args_to = 0, len(units)
        runner = scripts.ScriptRunner()
        runner.scripts = [cn]
        runner.alwayson_scripts = [cn]
        runner.selectable_scripts = []
        return runner, units

    @contextlib.contextmanager
    def nested(self):
        """A1111: bypass sd-webui-controlnet's batch-tab hijack of ``process_images_inner`` while
        our passes run (it would treat them as a batch iteration). Nothing to do on Forge."""
        if self.flavour != "a1111":
            yield
            return
        from modules import processing  # type: ignore[import-not-found]

        original = getattr(processing, "__controlnet_original_process_images_inner", None)
        hijacked = processing.process_images_inner
        if original is not None:
            processing.process_images_inner = original
        try:
            yield
        finally:
            processing.process_images_inner = hijacked

    def restore_outer(self, p, outer_script) -> None:
        """A1111: hook the outer job's ControlNet units again (our nested passes unhooked them) so
        its next batch samples with them. Forge re-applies its patches at every sampling itself."""
        if self.flavour != "a1111" or outer_script is None or getattr(outer_script, "latest_network", None) is None:
            return
        args = p.script_args[outer_script.args_from : outer_script.args_to]
        outer_script.process(p, *args)


def _find_script(runner) -> object | None:
    for script in getattr(runner, "alwayson_scripts", None) or []:
        try:
            if script.title().lower() == "controlnet":
                return script
        except Exception:  # another extension's broken title() is not our problem
            continue
    return None


def find_controlnet(outer_runner=None, notes: list[str] | None = None) -> ControlNetBridge | None:
    """The host's ControlNet integration, or None (plain inpainting). When a ControlNet is installed
    but its interface is not the one known here (a host update), the reason goes into ``notes``."""
    from modules import scripts  # type: ignore[import-not-found]

    script = _find_script(outer_runner) or _find_script(getattr(scripts, "scripts_img2img", None))
    if script is None:
        return None
    try:
        return _forge_bridge(script) or _a1111_bridge(script)
    except Exception as exc:  # a changed interface costs the controls, never the image or the job
        reason = " ".join(str(exc).split())[:200] or exc.__class__.__name__
        message = f"ControlNet is installed but not usable here ({reason}); plain inpainting"
        log(message)
        if notes is not None:
            notes.append(message)
        return None


def _forge_bridge(script) -> ControlNetBridge | None:
    try:
        import lib_controlnet  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return None  # not the Forge family
    try:
        from lib_controlnet import external_code, global_state  # type: ignore[import-not-found]
    except ImportError as exc:
        raise RuntimeError(f"Forge's lib_controlnet has changed: {exc}") from None
    names = list(global_state.get_all_controlnet_names())
    paths = {}
    for name in names:  # Forge: get_controlnet_filename; the dict behind it on every Forge variant
        with contextlib.suppress(Exception):
            path = global_state.get_controlnet_filename(name)
            if isinstance(path, str):
                paths[name] = path
    folder = None
    with contextlib.suppress(Exception):
        from modules_forge.shared import controlnet_dir  # type: ignore[import-not-found]

        folder = str(controlnet_dir)
    return ControlNetBridge("forge", script, external_code, names, model_paths=paths, folder=folder)


def _a1111_bridge(script) -> ControlNetBridge:
    namespace = type(script).process.__globals__  # the sd-webui-controlnet script module itself
    external_code = namespace.get("external_code")
    if external_code is None or not hasattr(external_code, "ControlNetUnit"):
        raise RuntimeError("its script module has no external_code.ControlNetUnit")
    names = list(external_code.get_models())
    global_state = namespace.get("global_state")  # its cn_models: listed name -> file
    paths = getattr(global_state, "cn_models", None) or {}
    paths = {k: v for k, v in dict(paths).items() if isinstance(v, str)}
    folder = getattr(global_state, "cn_models_dir", None)
    return ControlNetBridge("a1111", script, external_code, names, model_paths=paths,
                            folder=folder if isinstance(folder, str) else None)  # fmt: skip


def outer_controlnet_script(p):
    """The ControlNet script of the outer job's runner (A1111 keeps its UNet hook there)."""
    return _find_script(getattr(p, "scripts", None))
