"""STAND-INS of the WebUI modules HumanRefine touches, with the real signatures (A1111 1.10.1 /
Forge 2.0.1, see ../shared/design/hosts.md). No model runs: ``process_images`` returns the init
image with the masked pixels shifted by (seed mod 3) levels, an amount that depends only on the seed
and that the judge keeps as it would a generation that blends in, and the ControlNet
stand-ins keep the one piece of state that matters (A1111's UNet hook of the outer job).

``install(monkeypatch, tmp_path, flavour)`` puts them into ``sys.modules`` and returns a namespace
with the modules and the call records. The real-WebUI check (../shared/lab) complements these.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import types
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
from PIL import Image


class FakeOpts(SimpleNamespace):
    samples_format = "png"

    def add_option(self, key, info):
        self.data_labels[key] = info
        if not hasattr(self, key):
            setattr(self, key, info.default)


def option_info(default=None, label="", component=None, component_args=None, onchange=None, section=None,
                refresh=None, comment_before="", comment_after="", infotext=None, restrict_api=False,
                category_id=None):  # fmt: skip
    """modules/options.py OptionInfo.__init__ (A1111 1.10.1; same on Forge)."""
    return SimpleNamespace(default=default, label=label, component=component, component_args=component_args,
                           section=section, infotext=infotext)  # fmt: skip


class State:
    """modules/shared_state.py State (the fields HumanRefine reads and writes)."""

    def __init__(self):
        self.interrupted = self.skipped = self.stopping_generation = False
        self.textinfo = None
        self.job_count = -1
        self.job = ""
        self.jobs = []

    def begin(self, job: str = "(unknown)"):
        self.interrupted = self.skipped = False
        self.job_count, self.job = -1, job
        self.jobs.append(job)

    def end(self):
        self.job = ""

    def interrupt(self):
        self.interrupted = True

    def skip(self):
        self.skipped = True


class TotalTQDM:
    """modules/shared_total_tqdm.py TotalTQDM: the console's "Total progress" bar (its count only)."""

    def __init__(self):
        self.count, self.total = 0, None

    def update(self):
        self.count += 1

    def updateTotal(self, new_total):  # the host's name
        self.total = new_total

    def clear(self):
        self.count, self.total = 0, None


@dataclass(repr=False)
class StableDiffusionProcessing:
    """modules/processing.py StableDiffusionProcessing: the init fields (A1111 1.10.1)."""

    sd_model: object = None
    outpath_samples: str = None
    outpath_grids: str = None
    prompt: str = ""
    prompt_for_display: str = None
    negative_prompt: str = ""
    styles: list = None
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0
    seed_resize_from_h: int = -1
    seed_resize_from_w: int = -1
    seed_enable_extras: bool = True
    sampler_name: str = None
    scheduler: str = None
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    restore_faces: bool = None
    tiling: bool = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    extra_generation_params: dict = None
    overlay_images: list = None
    eta: float = None
    do_not_reload_embeddings: bool = False
    denoising_strength: float = None
    override_settings: dict = None
    override_settings_restore_afterwards: bool = True
    disable_extra_networks: bool = False
    scripts_value: Any = field(default=None, init=False)
    script_args_value: list = field(default=None, init=False)

    cached_c: ClassVar[list] = [None, None]  # shared by every job: nested passes need their own
    cached_uc: ClassVar[list] = [None, None]

    @property
    def scripts(self):
        return self.scripts_value

    @scripts.setter
    def scripts(self, value):
        self.scripts_value = value

    @property
    def script_args(self):
        return self.script_args_value

    @script_args.setter
    def script_args(self, value):
        self.script_args_value = value


@dataclass(repr=False)
class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    init_images: list = None
    resize_mode: int = 0
    denoising_strength: float = 0.75
    image_cfg_scale: float = None
    mask: Any = None
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_blur: int = None
    mask_round: bool = True
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: float = None
    latent_mask: Any = None
    force_task_id: str = None


class Script:
    """modules/scripts.py Script (the parts used here)."""

    args_from = args_to = None
    sorting_priority = 0

    def __init__(self):
        self.infotext_fields = None
        self.paste_field_names = None


class ScriptRunner:
    def __init__(self):
        self.scripts = []
        self.selectable_scripts = []
        self.alwayson_scripts = []


UNION_CONTROL_TYPES = (
    "OpenPose",
    "Depth",
    "Soft Edge",
    "Hard Edge",
    "Normal Map",
    "Segmentation",
    "Tile",
    "Inpaint",
    "Unknown",
)  # sd-webui-controlnet scripts/enums.py ControlNetUnionControlType values


class ControlNetUnitA1111:
    """sd-webui-controlnet internal_controlnet/args.py ControlNetUnit: pydantic v1, ``enabled=False``,
    ``Config.extra = "ignore"`` (unknown fields are dropped silently: kept in ``ignored`` here so tests
    can see them), ``union_control_type`` an enum built from its value."""

    __fields__: ClassVar[dict] = {
        "enabled": False, "module": "none", "model": "None", "weight": 1.0, "image": None,
        "resize_mode": "Crop and Resize", "processor_res": -1, "threshold_a": -1, "threshold_b": -1,
        "guidance_start": 0.0, "guidance_end": 1.0, "pixel_perfect": False, "union_control_type": "Unknown",
    }  # fmt: skip

    def __init__(self, **kwargs):
        known = {k: v for k, v in kwargs.items() if k in self.__fields__}
        if known.get("union_control_type", "Unknown") not in UNION_CONTROL_TYPES:
            raise ValueError(f"value is not a valid enumeration member; permitted: {UNION_CONTROL_TYPES}")
        vars(self).update({**self.__fields__, **known, "ignored": sorted(set(kwargs) - set(known))})


class ForgeUnitFromDict:
    """lib_controlnet's ControlNetUnit.from_dict (Forge, Classic, Neo alike): a unit of the keys that
    are class attributes, the others dropped."""

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: v for k, v in d.items() if k in vars(cls)})


@dataclass
class ControlNetUnitForge(ForgeUnitFromDict):
    """Forge lib_controlnet/external_code.py ControlNetUnit (a dataclass; enabled=True; the image
    an HWC array, with ``image_fg`` beside it)."""

    enabled: bool = True
    module: str = "None"
    model: str = "None"
    weight: float = 1.0
    image: Any = None
    image_fg: Any = None
    resize_mode: Any = "Crop and Resize"
    processor_res: int = -1
    threshold_a: float = -1
    threshold_b: float = -1
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    pixel_perfect: bool = False


@dataclass
class ControlNetUnitClassic(ForgeUnitFromDict):
    """Forge Classic (classic c813972d) lib_controlnet/external_code.py ControlNetUnit: no ``image_fg``;
    its get_input_data reads ``unit.image["image"]`` and ``unit.image["mask"]`` (gradio 3's pair)."""

    use_preview_as_input: bool = False
    generated_image: Any = None
    mask_image: Any = None
    hr_option: Any = "Both"
    enabled: bool = True
    module: str = "None"
    model: str = "None"
    weight: float = 1.0
    image: Any = None
    resize_mode: Any = "Crop and Resize"
    processor_res: int = -1
    threshold_a: float = -1
    threshold_b: float = -1
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    pixel_perfect: bool = False
    control_mode: Any = "Balanced"


@dataclass
class ControlNetUnitNeo(ForgeUnitFromDict):
    """Forge Neo lib_controlnet/external_code.py ControlNetUnit: a dataclass with more fields, no
    union control type; ``from_dict`` keeps the keys that are class attributes."""

    use_preview_as_input: bool = False
    generated_image: Any = None
    mask_image: Any = None
    mask_image_fg: Any = None
    hr_option: Any = "Both"
    enabled: bool = True
    module: str = "None"
    model: str = "None"
    weight: float = 1.0
    image: Any = None
    image_fg: Any = None
    resize_mode: Any = "Crop and Resize"
    processor_res: int = -1
    threshold_a: float = -1
    threshold_b: float = -1
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    pixel_perfect: bool = False
    control_mode: Any = "Balanced"
    save_detected_map: bool = True


UNET = SimpleNamespace(hooked_by=None)  # what A1111's UnetHook patches: one UNet, one hook at a time
# Fault injection: ControlNet's ``process`` raises ``rejects[name]`` for an enabled unit whose model
# or module is ``name`` (as both integrations do when a unit's model cannot be loaded).
CN_FAULTS = SimpleNamespace(rejects={})


def check_units(units):
    for unit in units:
        error = CN_FAULTS.rejects.get(unit.model) or CN_FAULTS.rejects.get(unit.module)
        if error is not None:
            raise error


A1111_CN_SOURCE = '''
class ControlNetScript(Script):
    """sd-webui-controlnet scripts/controlnet.py Script: hooks the UNet in process, unhooks in postprocess."""

    def __init__(self):
        super().__init__()
        self.latest_network = None
        self.enabled_units = []
        self.calls = []

    def title(self):
        return "ControlNet"

    def process(self, p, *args):
        if self.latest_network is not None:  # always restore (controlnet_main_entry)
            UNET.hooked_by = None
        self.enabled_units = [u for u in args if getattr(u, "enabled", False)]
        self.calls.append(("process", id(p), [u.module for u in self.enabled_units]))
        check_units(self.enabled_units)  # loads each unit's model
        if not self.enabled_units:
            self.latest_network = None
            return
        self.latest_network = object()
        UNET.hooked_by = id(p)

    def postprocess(self, p, processed, *args):
        self.calls.append(("postprocess", id(p)))
        if self.latest_network is not None:
            UNET.hooked_by = None
        self.latest_network = None
'''


def make_a1111_controlnet(models, paths=None, folder=None):
    """A ControlNet Script whose module globals hold ``external_code`` and ``global_state`` (its
    ``cn_models``: listed name -> file, ``cn_models_dir``), found via process.__globals__."""
    external_code = types.SimpleNamespace(ControlNetUnit=ControlNetUnitA1111, get_models=lambda: list(models))
    global_state = types.SimpleNamespace(cn_models={"None": None, **(paths or {})}, cn_models_dir=folder)
    namespace = {"Script": Script, "UNET": UNET, "check_units": check_units, "external_code": external_code,
                 "global_state": global_state}  # fmt: skip
    exec(A1111_CN_SOURCE, namespace)
    return namespace["ControlNetScript"]()


class ForgeControlNetScript(Script):
    """Forge sd_forge_controlnet ControlNetForForgeOfficial: per-instance current_params."""

    sorting_priority = 10

    def __init__(self):
        super().__init__()
        self.current_params = {}
        self.calls = []

    def title(self):
        return "ControlNet"

    def process(self, p, *args):
        self.current_params = {i: u for i, u in enumerate(a for a in args if a.enabled)}
        self.calls.append(("process", id(p), [u.module for u in self.current_params.values()]))
        check_units(self.current_params.values())

    def postprocess(self, p, processed, *args):
        self.current_params = {}


@dataclass
class Processed:
    images: list
    infotexts: list = field(default_factory=list)


def install(monkeypatch, tmp_path, flavour="a1111", models=("control_v11f1p_sd15_depth [cf3f2f5a]",
                                                            "control_v11p_sd15_openpose [cab727d4]"),
            sd_model=None, model_paths=None, lazy=False):  # fmt: skip
    """Put the stand-ins into sys.modules. ``flavour``: "a1111", "forge", "neo", "classic" or "none" (no ControlNet);
    ``sd_model``: the loaded model (tests/model_stand_ins.py; default: A1111's SD 1.5 flags);
    ``model_paths``: listed ControlNet name -> file (the hosts' cn_models / controlnet_filename_dict);
    ``lazy`` (Forge family): ``shared.sd_model`` is a ``FakeInitialModel`` until
    ``sd_models.forge_model_reload()`` loads ``sd_model`` (its calls counted in ``rec.reloads``)."""
    UNET.hooked_by = None
    CN_FAULTS.rejects = {}
    rec = SimpleNamespace(passes=[], saved=[], before_pass=[], cn_faults=CN_FAULTS)
    modules = types.ModuleType("modules")
    mods = {name: types.ModuleType(f"modules.{name}") for name in (
        "scripts", "script_callbacks", "shared", "paths_internal", "paths", "processing", "devices", "images",
        "extra_networks", "call_queue", "sd_models")}  # fmt: skip

    scripts = mods["scripts"]
    scripts.AlwaysVisible = object()
    scripts.Script, scripts.ScriptRunner = Script, ScriptRunner
    scripts.scripts_img2img = ScriptRunner()
    scripts.scripts_txt2img = ScriptRunner()

    callbacks = mods["script_callbacks"]
    callbacks.registered = {}
    for hook in ("on_ui_settings", "on_before_ui", "on_image_saved", "on_app_started", "on_ui_tabs",
                 "on_after_component"):  # fmt: skip
        setattr(callbacks, hook, lambda fn, *, name=None, _h=hook: callbacks.registered.setdefault(_h, []).append(fn))

    shared = mods["shared"]
    # the learned check off: these tests are about the glue, and its scores would move strengths and verdicts
    shared.opts = FakeOpts(data_labels={}, humanrefine_learned=False)
    shared.OptionInfo = option_info
    shared.cmd_opts = SimpleNamespace(humanrefine_models_dir=None, api=True, api_auth=None, nowebui=False)
    shared.state = State()
    shared.total_tqdm = TotalTQDM()
    shared.sd_model = sd_model if sd_model is not None else SimpleNamespace(is_sd1=True, is_sdxl=False)
    rec.reloads = 0
    if flavour in ("forge", "neo", "classic"):  # modules/sd_models.py of the Forge family

        class FakeInitialModel:
            """sd_models.FakeInitialModel: what shared.sd_model is until the first job loads one."""

            def __init__(self):
                self.cond_stage_model = None
                self.chunk_length = 75

        selected = shared.sd_model
        if lazy:
            shared.sd_model = FakeInitialModel()

        def forge_model_reload():
            rec.reloads += 1
            if shared.sd_model is not selected:
                shared.sd_model = selected
                return selected, True
            return selected, False

        mods["sd_models"].forge_model_reload = forge_model_reload

    mods["paths_internal"].models_path = str(tmp_path / "models")
    mods["paths"].data_path = str(tmp_path)
    (tmp_path / "params.txt").write_text("outer job parameters")

    processing = mods["processing"]
    processing.StableDiffusionProcessingImg2Img = StableDiffusionProcessingImg2Img

    def process_images(p):
        """Runs the runner's always-on scripts like A1111, 'samples', and writes params.txt."""
        for hook in rec.before_pass:
            hook(p)
        args = p.script_args or []
        runner = p.scripts
        for script in runner.alwayson_scripts if runner else []:
            script.process(p, *args[script.args_from : script.args_to])
        for _ in range(int(p.steps * p.denoising_strength)):  # the sampler's callback, each step
            shared.total_tqdm.update()
        rec.passes.append(SimpleNamespace(p=p, units=[a for a in args if getattr(a, "enabled", False)],
                                          hooked_by=UNET.hooked_by))  # fmt: skip
        (tmp_path / "params.txt").write_text("inner pass parameters")
        init = np.asarray(p.init_images[0]).astype(np.int32)
        mask = np.asarray(p.mask) > 0
        init[mask] += p.seed % 3
        out = Image.fromarray(np.clip(init, 0, 255).astype(np.uint8))
        processed = Processed([out])
        for script in runner.alwayson_scripts if runner else []:
            if hasattr(script, "postprocess"):
                script.postprocess(p, processed, *args[script.args_from : script.args_to])
        return processed

    processing.process_images = process_images

    def create_infotext(p, all_prompts, all_seeds, all_subseeds, comments=None, iteration=0, position_in_batch=0,
                        use_main_prompt=False, index=None, all_negative_prompts=None):  # fmt: skip
        """The real one also evaluates extra_generation_params callables with its locals."""
        extra = {k: (v(p=p, index=index) if callable(v) else v) for k, v in p.extra_generation_params.items()}
        return f"{all_prompts[index]}\nSeed: {all_seeds[index]}, " + ", ".join(f"{k}: {v}" for k, v in extra.items())

    processing.create_infotext = create_infotext
    processing.process_images_inner = lambda p: None
    mods["devices"].torch_gc = lambda: rec.saved.append(("torch_gc",))

    def save_image(image, path, basename, seed=None, prompt=None, extension="png", info=None, short_filename=False,
                   no_prompt=False, grid=False, pnginfo_section_name="parameters", p=None, existing_info=None,
                   forced_filename=None, suffix="", save_to_dirs=None):  # fmt: skip
        rec.saved.append(("save_image", np.asarray(image).copy(), suffix, seed, info))
        return str(tmp_path / f"saved{suffix}.png"), None

    mods["images"].save_image = save_image

    extra = mods["extra_networks"]
    extra.extra_network_registry = {}

    class ExtraNetwork:
        def __init__(self, name):
            self.name = name

    extra.ExtraNetwork = ExtraNetwork
    extra.register_extra_network = lambda net: extra.extra_network_registry.__setitem__(net.name, net)
    mods["call_queue"].queue_lock = threading.Lock()

    monkeypatch.setitem(sys.modules, "gradio", gradio_stand_in())
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, f"modules.{name}", mod)
        setattr(modules, name, mod)
    monkeypatch.setitem(sys.modules, "modules", modules)

    rec.controlnet = None
    paths = dict(model_paths or {})
    if flavour == "a1111":
        rec.controlnet = make_a1111_controlnet(models, paths, str(tmp_path / "models" / "ControlNet"))
        monkeypatch.setitem(sys.modules, "lib_controlnet", None)  # import fails: not Forge
    elif flavour in ("forge", "neo", "classic"):
        rec.controlnet = ForgeControlNetScript()
        lib = types.ModuleType("lib_controlnet")
        unit = {"forge": ControlNetUnitForge, "neo": ControlNetUnitNeo, "classic": ControlNetUnitClassic}[flavour]
        lib.external_code = types.SimpleNamespace(ControlNetUnit=unit)
        # Forge: get_controlnet_filename(name) -> controlnet_filename_dict[name] ("None" -> a file that is
        # not there on Forge, None on Neo)
        filenames = {"None": "model.safetensors" if flavour == "forge" else None, **paths}
        lib.global_state = types.SimpleNamespace(get_all_controlnet_names=lambda: ["None", *models],
                                                 get_controlnet_filename=lambda name: filenames[name])  # fmt: skip
        forge_shared = types.ModuleType("modules_forge.shared")
        forge_shared.controlnet_dir = str(tmp_path / "models" / "ControlNet")
        monkeypatch.setitem(sys.modules, "modules_forge", types.ModuleType("modules_forge"))
        monkeypatch.setitem(sys.modules, "modules_forge.shared", forge_shared)
        monkeypatch.setitem(sys.modules, "lib_controlnet", lib)
        monkeypatch.setitem(sys.modules, "lib_controlnet.external_code", lib.external_code)
        monkeypatch.setitem(sys.modules, "lib_controlnet.global_state", lib.global_state)
    else:
        monkeypatch.setitem(sys.modules, "lib_controlnet", None)
    if rec.controlnet is not None:
        rec.controlnet.args_from, rec.controlnet.args_to = 5, 8  # three units after another script's args
        for runner in (scripts.scripts_img2img, scripts.scripts_txt2img):
            runner.alwayson_scripts.append(rec.controlnet)
    return SimpleNamespace(modules=mods, shared=shared, callbacks=callbacks, rec=rec, unet=UNET)


def load_script(env, models_dir):
    """Import scripts/humanrefine.py as the WebUI does (its callbacks registered, the settings and
    before-UI ones run); ``env.module`` is the module, ``env.script`` a new HumanRefineScript."""
    import importlib.util
    from pathlib import Path

    env.shared.cmd_opts.humanrefine_models_dir = str(models_dir)
    path = Path(__file__).resolve().parents[1] / "scripts" / "humanrefine.py"
    spec = importlib.util.spec_from_file_location("humanrefine_script", path)
    env.module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(env.module)
    for fn in env.callbacks.registered["on_ui_settings"] + env.callbacks.registered["on_before_ui"]:
        fn()
    env.script = env.module.HumanRefineScript()
    return env


GRADIO_SHARED_KWARGS = {"label", "value", "elem_id", "info", "choices", "minimum", "maximum", "step", "interactive"}
EVENT_KWARGS = {"fn", "inputs", "outputs"}  # what .change() takes in both


def gradio_stand_in():
    """A ``gradio`` module whose components accept only constructor arguments gradio 3.41 and 4.x share."""
    gr = types.ModuleType("gradio")
    gr.made = []

    def component(kind):
        def make(**kwargs):
            assert set(kwargs) <= GRADIO_SHARED_KWARGS, kwargs
            made = SimpleNamespace(kind=kind, events=[], **kwargs)

            def change(**event):
                assert set(event) <= EVENT_KWARGS, event
                made.events.append(("change", event))

            made.change = change
            gr.made.append(made)
            return made

        return make

    gr.update = lambda **kwargs: kwargs  # gradio 3.41 and 4.x both have it (a dict of what changes)

    class Block:
        def __init__(self, *args, **kwargs):
            assert set(kwargs) <= {"open", "elem_id", "elem_classes"}, kwargs

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    gr.Accordion = gr.Row = Block
    gr.Checkbox, gr.Radio, gr.Slider, gr.Dropdown, gr.Textbox = (
        component(k) for k in ("cb", "radio", "slider", "dropdown", "textbox")
    )
    return gr


def make_p(prompts=("a photo of an astronaut",), seeds=(1234,), batch_size=1, n_iter=1, scripts=None,
           script_args=()):  # fmt: skip
    """The outer job as the Script hooks see it after process_images_inner fixed prompts and seeds."""
    total = batch_size * n_iter
    prompts = list(prompts) * (total // len(prompts)) if len(prompts) < total else list(prompts)
    seeds = list(seeds) + [seeds[-1] + i + 1 for i in range(total - len(seeds))]
    return SimpleNamespace(
        extra_generation_params={}, iteration=0, batch_index=0, batch_size=batch_size, n_iter=n_iter,
        all_prompts=prompts, all_negative_prompts=["blurry"] * total, all_seeds=seeds, prompt=prompts[0],
        negative_prompt="blurry", seed=seeds[0], steps=12, cfg_scale=6.0, sampler_name="Euler a",
        scheduler="Automatic", outpath_samples="outputs", scripts=scripts, script_args=list(script_args),
        save_samples=lambda: True, prompts=prompts[:batch_size], seeds=seeds[:batch_size],
        subseeds=seeds[:batch_size], negative_prompts=["blurry"] * batch_size,
    )  # fmt: skip


def img2img_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(StableDiffusionProcessingImg2Img) if f.init}
