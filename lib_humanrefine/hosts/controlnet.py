"""ControlNet inside the WebUI hosts: find the installed integration, pick models by name, build
units with our own control images (no preprocessor), and give a nested pass a ControlNet script
of its own so the outer job's units and state never leak into it (and are restored after it).

Two integrations, feature-detected (never version-checked):

- **Forge family**: the built-in ``sd_forge_controlnet`` (``lib_controlnet``; ``sd-webui-controlnet``
  is force-disabled there). Its Script keeps per-instance state (``current_params``), so the nested
  pass gets a shallow copy; units are the ``ControlNetUnit`` dataclass with an HWC ndarray image.
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
import sys
from dataclasses import dataclass, field

import numpy as np

from ..options import AUTOMATIC
from .base import Control

# Model-name preferences per control kind: the first pattern group that matches wins.
MODEL_PATTERNS = {
    "depth": (("hand", "depth"), ("hand", "refiner"), ("depth",)),
    "openpose": (("openpose",), ("pose",)),
}
NO_PREPROCESSOR = {"forge": "None", "a1111": "none"}
REFERENCE_MODULE = "reference_only"


def log(message: str) -> None:
    print(f"[HumanRefine] {message}", file=sys.stderr)


def model_family_matches(name: str, is_sdxl: bool) -> bool:
    """An SDXL checkpoint needs an SDXL ControlNet and vice versa (judged by the usual file names)."""
    lowered = name.lower()
    xl = "xl" in lowered or "sdxl" in lowered
    return xl if is_sdxl else not xl


def pick_model(names: list[str], kind: str, is_sdxl: bool, choice: str = AUTOMATIC) -> tuple[str | None, str]:
    """The ControlNet model for a control kind, and a note saying what was chosen and why.
    ``choice``: a model name from the host's list, "None" (off) or "Automatic"."""
    listed = [n for n in names if n and n != "None"]
    if choice and choice != AUTOMATIC:
        if choice == "None":
            return None, f"{kind}: off (setting)"
        exact = [n for n in listed if n == choice or n.split(" [")[0] == choice]
        if exact:
            return exact[0], f"{kind}: {exact[0]}"
        return None, f"{kind}: model '{choice}' is not installed; running without {kind} control"
    family = [n for n in listed if model_family_matches(n, is_sdxl)]
    for pattern in MODEL_PATTERNS[kind]:
        found = [n for n in family if all(word in n.lower() for word in pattern)]
        if found:
            return sorted(found)[0], f"{kind}: {sorted(found)[0]}"
    arch = "SDXL" if is_sdxl else "SD 1.5"
    return None, f"{kind}: no {arch} {kind} ControlNet model found; running without {kind} control"


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


@dataclass
class ControlNetBridge:
    """The host's ControlNet: ``flavour`` is "forge" or "a1111"."""

    flavour: str
    script: object  # the ControlNet Script of the runner the outer job uses (or img2img's)
    external_code: object
    model_names: list[str]
    notes: list[str] = field(default_factory=list)

    # --- units ------------------------------------------------------------------------------

    def units_for(self, controls: list[Control], is_sdxl: bool, choices: dict[str, str]) -> list[UnitSpec]:
        """Host units for our controls; a control without a suitable model is dropped (and noted)."""
        specs = []
        for control in controls:
            if not _usable(control.image) or control.weight <= 0:
                continue
            if control.kind == "reference":
                module, model = REFERENCE_MODULE, "None"
                threshold_a = control.fidelity if control.fidelity is not None else 0.5
            else:
                model, note = pick_model(self.model_names, control.kind, is_sdxl, choices.get(control.kind, AUTOMATIC))
                self.note(note)
                if model is None:
                    continue
                module, threshold_a = NO_PREPROCESSOR[self.flavour], -1
            image = np.asarray(control.image)
            image = np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image)
            specs.append(UnitSpec(module, model, control.weight, image, control.start, control.end, threshold_a))
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
        if self.flavour == "forge":
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
    return ControlNetBridge("forge", script, external_code, list(global_state.get_all_controlnet_names()))


def _a1111_bridge(script) -> ControlNetBridge:
    namespace = type(script).process.__globals__  # the sd-webui-controlnet script module itself
    external_code = namespace.get("external_code")
    if external_code is None or not hasattr(external_code, "ControlNetUnit"):
        raise RuntimeError("its script module has no external_code.ControlNetUnit")
    return ControlNetBridge("a1111", script, external_code, list(external_code.get_models()))


def outer_controlnet_script(p):
    """The ControlNet script of the outer job's runner (A1111 keeps its UNet hook there)."""
    return _find_script(getattr(p, "scripts", None))
