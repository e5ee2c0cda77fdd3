"""Where users are (issue 29): SDXL-family checkpoints, models without ControlNet, Forge Neo's API
differences and ADetailer beside HumanRefine, through the WebUI glue with stand-ins of the hosts
(tests/webui_stand_ins.py) and of the loaded model as each host leaves it (tests/model_stand_ins.py).
The lab (../shared/lab) runs the same paths in the real hosts."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import model_stand_ins as models
import numpy as np
import pytest
import webui_stand_ins as stand_ins
from PIL import Image
from test_webui_contract import infotext

from lib_humanrefine.hosts.base import Control
from lib_humanrefine.hosts.families import FAMILIES

SD15_MODELS = ("control_v11f1p_sd15_depth [cf3f2f5a]", "control_v11p_sd15_openpose [cab727d4]")
XL_DEPTH, UNION = "diffusers_xl_depth_mid [0b666080]", "controlnet-union-sdxl-1.0-promax [7fbcaa6a]"
ALL_MODELS = (*SD15_MODELS, XL_DEPTH, UNION)


@pytest.fixture
def webui(monkeypatch, tmp_path, models_ready):
    """``webui(flavour, sd_model, models)``: stand-ins installed, scripts/humanrefine.py loaded;
    verification off so the stand-in's shifted pixels count as a fix."""

    def make(flavour="a1111", sd_model=None, cn_models=ALL_MODELS, **kwargs):
        env = stand_ins.install(monkeypatch, tmp_path, flavour, cn_models, sd_model=sd_model, **kwargs)
        env = stand_ins.load_script(env, models_ready)
        env.shared.opts.humanrefine_verify = False
        return env

    yield make
    from lib_humanrefine import models as registry

    registry.set_models_dir(None)


@pytest.fixture(scope="module")
def hands_image(shared_data):
    """A photo with two hands, a face and a body (skips without ../shared/data)."""
    from lib_humanrefine.images import load_image

    return load_image(shared_data / "real" / "hamer_test1.jpg")


def run(env, image, p=None, args=(True,)):
    """process -> per image postprocess_image_after_composite -> postprocess; (image, result line)."""
    p = p or stand_ins.make_p()
    env.script.process(p, *args)
    pp = SimpleNamespace(image=Image.fromarray(image), index=0)
    env.script.postprocess_image_after_composite(p, pp, *args)
    env.script.postprocess(p, SimpleNamespace(images=[pp.image], infotexts=[""]), *args)
    return pp.image, infotext(p, 0, "HumanRefine result")


def all_units(env):
    return [u for one in env.rec.passes for u in one.units]


# --- SDXL ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flavour", "sd_model"),
    [
        ("a1111", models.a1111_model("sdxl")),
        ("forge", models.forge_model("sdxl")),
        ("neo", models.neo_model("sdxl")),
        ("a1111", models.classic_model("sdxl")),
    ],  # fmt: skip
    ids=["a1111", "forge", "neo", "classic"],
)
def test_an_sdxl_checkpoint_gets_native_1024_crops_and_no_sd15_controlnet(webui, astronaut, flavour, sd_model):
    env = webui(flavour, sd_model)
    out, result = run(env, astronaut)
    face, seam = env.rec.passes
    assert max(face.p.width, face.p.height) == 1024 and (seam.p.width, seam.p.height) == (face.p.width, face.p.height)
    assert face.p.init_images[0].size == (face.p.width, face.p.height)
    assert [u.module for u in face.units] == ["reference_only"]  # faces: reference only, on SDXL too
    assert result == "P1 face fixed (not verified)"
    assert not any("sd15" in u.model for u in all_units(env))


def test_sdxl_hands_get_the_sdxl_depth_model_and_bodies_the_union_model_with_its_control_type(webui, hands_image):
    env = webui("a1111", models.a1111_model("sdxl"))
    run(env, hands_image, args=(True, "all", 0.5, "threshold", True, False, False))
    part, seam = env.rec.passes[:2]
    assert max(part.p.width, part.p.height) == 1024
    assert [(u.module, u.model) for u in part.units] == [("none", XL_DEPTH), ("reference_only", "None")]
    assert part.units[0].union_control_type == "Unknown" and part.units[0].ignored == []
    assert seam.units == []
    env.rec.passes.clear()
    env.shared.opts.humanrefine_depth_model = f"{UNION} (for SDXL, union)"  # as the settings picker stores it
    run(env, hands_image, args=(True, "all", 0.5, "threshold", True, False, False))
    depth = env.rec.passes[0].units[0]
    assert (depth.model, depth.union_control_type, depth.ignored) == (UNION, "Depth", [])


def test_the_union_control_type_reaches_sd_webui_controlnet_and_forge_says_it_has_none(webui, capsys):
    from lib_humanrefine.hosts.controlnet import find_controlnet

    depth = Control("depth", 0.6, image=np.full((64, 48), 200, np.uint8))
    pose = Control("openpose", 1.0, image=np.full((64, 48, 3), 90, np.uint8))
    webui("a1111", models.a1111_model("sdxl"), cn_models=(*SD15_MODELS, UNION))
    bridge = find_controlnet(None)
    units = [bridge.make_unit(s) for s in bridge.units_for([depth, pose], FAMILIES["sdxl"], {})]
    assert [(u.model, u.union_control_type) for u in units] == [(UNION, "Depth"), (UNION, "OpenPose")]
    assert isinstance(units[0], stand_ins.ControlNetUnitA1111) and units[0].image.shape == (64, 48, 3)
    webui("forge", models.forge_model("sdxl"), cn_models=(*SD15_MODELS, UNION))
    bridge = find_controlnet(None)
    units = [bridge.make_unit(s) for s in bridge.units_for([depth], FAMILIES["sdxl"], {})]
    assert [(type(u), u.model) for u in units] == [(stand_ins.ControlNetUnitForge, UNION)]
    assert f"depth: {UNION} (union, no control type: this ControlNet has none)" in bridge.notes


def test_on_forge_the_console_and_report_say_the_union_model_runs_without_a_control_type(webui, hands_image, capsys):
    env = webui("forge", models.forge_model("sdxl"), cn_models=(*SD15_MODELS, UNION))
    run(env, hands_image, args=(True, "all", 0.5, "threshold", True, False, False))
    depth = env.rec.passes[0].units[0]
    assert depth.model == UNION and not hasattr(depth, "union_control_type")
    said = f"depth: {UNION} (union, no control type: this ControlNet has none)"
    err = capsys.readouterr().err
    assert err.count(said) == 1  # once per job, not per pass
    assert f"controls: None/{UNION}@0.55, reference_only/None@1" in err  # no "(Depth)": none was set


def test_without_an_sdxl_model_the_infotext_says_which_to_download_and_where(webui, hands_image, tmp_path, capsys):
    env = webui("a1111", models.a1111_model("sdxl"), cn_models=SD15_MODELS)
    _out, result = run(env, hands_image, args=(True, "all", 0.5, "threshold", True, False, False))
    assert [u.module for u in all_units(env)] == ["reference_only", "reference_only"]  # two hands, no depth
    folder = tmp_path / "models" / "ControlNet"
    assert result.endswith(
        "; no SDXL depth ControlNet: download diffusers_xl_depth_mid.safetensors from huggingface.co/lllyasviel/"
        "sd_control_collection or diffusion_pytorch_model_promax.safetensors from huggingface.co/xinsir/"
        f"controlnet-union-sdxl-1.0 into {folder}"
    )
    err = capsys.readouterr().err
    assert "control_v11f1p_sd15_depth [cf3f2f5a] (for SD 1.5) cannot run with it" in err
    assert "model: SDXL (DiffusionEngine), native size 1024 px" in err


def test_an_unhinted_model_file_is_placed_by_its_header(webui, hands_image, tmp_path):
    """A name that says nothing ("my_depth"): the SDXL depth file's header makes it the SDXL depth model;
    an SD 1.5 file under an unhinted name is never used for SDXL."""
    from test_families import ADM, HINT, write_header

    xl = write_header(tmp_path / "my_depth.safetensors", {HINT: (16, 3, 3, 3), ADM: (1280, 2816)})
    env = webui("forge", models.forge_model("sdxl"), cn_models=("None_depth_a [1]", "my_depth [2]"),
                model_paths={"my_depth [2]": xl})  # fmt: skip
    run(env, hands_image, args=(True, "all", 0.5, "threshold", True, False, False))
    assert env.rec.passes[0].units[0].model == "my_depth [2]"


def test_forge_loads_its_checkpoint_lazily_the_refine_route_plans_with_the_real_one(webui):
    """Forge and Neo keep a FakeInitialModel in shared.sd_model until the first job; the refine route
    and the tab plan before any pass runs, so they load the selected checkpoint first."""
    from lib_humanrefine.hosts.webui import WebUIHost, current_family

    env = webui("forge", models.forge_model("sdxl"), lazy=True)
    assert type(env.shared.sd_model).__name__ == "FakeInitialModel"
    assert current_family(load=False).key == "sd15" and env.rec.reloads == 0  # (the settings page: no load)
    host = WebUIHost.standalone("Euler", "Automatic", {})
    assert env.rec.reloads == 1 and host.family.key == "sdxl"
    assert host.notes[:2] == ["model: SDXL (StableDiffusionXL), native size 1024 px", f"depth: {XL_DEPTH}"]
    assert current_family().key == "sdxl"


# --- models without ControlNet -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flavour", "sd_model", "label", "native"),
    [
        ("forge", models.forge_model("flux"), "Flux", 1024),
        ("forge", models.forge_model("chroma"), "Chroma", 1024),
        ("forge", models.forge_model("sd3"), "SD 3", 1024),
        ("a1111", models.a1111_model("sd3"), "SD 3", 1024),
        ("neo", models.neo_model("flux"), "Flux", 1024),
        ("neo", models.neo_model("zimage"), "Z-Image", 1024),
        ("neo", models.neo_model("lumina2"), "Lumina 2", 1024),
        ("neo", models.neo_model("qwen"), "Qwen-Image", 1328),
        ("neo", models.neo_model("wan"), "Wan", 1024),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_models_without_controlnet_inpaint_plainly_at_their_native_size_and_say_so(
    webui, astronaut, capsys, flavour, sd_model, label, native
):
    env = webui(flavour, sd_model)
    out, result = run(env, astronaut)
    assert [one.p.scripts for one in env.rec.passes] == [None, None]  # no ControlNet, no reference
    assert all(one.units == [] for one in env.rec.passes)
    face = env.rec.passes[0].p
    assert max(face.width, face.height) == native
    assert (
        result
        == f"P1 face fixed (not verified); no ControlNet for this model ({label}): plain inpainting, no reference"
    )
    assert not np.array_equal(np.asarray(out), astronaut)
    assert f"no ControlNet for this model ({label})" in capsys.readouterr().err


# --- Forge Neo -------------------------------------------------------------------------------------


def test_neo_lists_models_without_hash_and_takes_its_own_unit_dataclass(webui, hands_image):
    env = webui("neo", models.neo_model("sd1"), cn_models=("control_v11f1p_sd15_depth", "diffusers_xl_depth_mid"))
    run(env, hands_image, args=(True, "all", 0.5, "threshold", True, False, False))
    part = env.rec.passes[0]
    depth, reference = part.units
    assert isinstance(depth, stand_ins.ControlNetUnitNeo) and depth.model == "control_v11f1p_sd15_depth"
    assert depth.module == "None" and isinstance(depth.image, np.ndarray) and depth.image.ndim == 3
    assert (reference.module, reference.model) == ("reference_only", "None")
    assert len(part.units) == 2  # Neo's script slot: ours alone, padded to at least one


def test_forge_classic_units_carry_the_image_as_gradio3s_image_and_mask_pair(webui, hands_image):
    env = webui("classic", models.classic_model("sd1"))
    run(env, hands_image, args=(True, "all", 0.5, "threshold", True, False, False))
    depth, reference = env.rec.passes[0].units
    assert isinstance(depth, stand_ins.ControlNetUnitClassic) and depth.model.startswith("control_v11f1p_sd15_depth")
    # Classic's get_input_data: (unit.image["image"] < 5).all() and (unit.image["mask"] > 5).any()
    image, mask = depth.image["image"], depth.image["mask"]
    assert image.ndim == 3 and (image >= 5).any() and mask.shape == image.shape and not (mask > 5).any()
    assert reference.module == "reference_only" and isinstance(reference.image["image"], np.ndarray)


def test_neo_postprocess_image_args_carry_an_index_which_is_not_the_infotext_key(webui, astronaut):
    """Neo (and Forge) pass PostprocessImageArgs(image, index) with index counting across batches;
    create_infotext is called with the batch position: the summaries follow p.batch_index."""
    env = webui("neo", models.neo_model("sd1"))
    p = stand_ins.make_p(seeds=[3, 4], n_iter=2)
    env.script.process(p, True)
    for iteration in range(2):
        p.iteration, p.batch_index = iteration, 0
        pp = SimpleNamespace(image=Image.fromarray(astronaut), index=iteration)  # Neo: a global index
        env.script.postprocess_image_after_composite(p, pp, True)
    assert infotext(p, 0, "HumanRefine result") == "P1 face fixed (not verified)"


# --- ADetailer beside HumanRefine --------------------------------------------------------------------


class ADetailerStandIn(stand_ins.Script):
    """What !adetailer.py does to the job (ADetailer 25.3.0, scripts/!adetailer.py): title "ADetailer";
    ``process`` writes its infotext keys; ``postprocess_image`` (before the composite, so before
    HumanRefine's after-composite hook) inpaints each detected face through its own img2img pass marked
    ``_ad_inner`` whose scripts exclude HumanRefine; with batch index 0 it calls every script's
    ``postprocess`` on ``copy(p)`` and after the batch's last image every script's ``process`` on
    ``copy(p)`` (to hook ControlNet again)."""

    def __init__(self, box=(180, 60, 300, 220)):
        super().__init__()
        self.box = box
        self.inner = []

    def title(self):
        return "ADetailer"

    def process(self, p, *args):
        if getattr(p, "_ad_disabled", False):
            return
        if not (args and args[0] is not False and any(isinstance(a, dict) and a.get("ad_model") != "None"
                                                       for a in args)):  # fmt: skip
            p._ad_disabled = True
            return
        p.extra_generation_params.update({"ADetailer model": args[2]["ad_model"], "ADetailer version": "25.3.0"})

    def postprocess_image(self, p, pp, *args):
        if getattr(p, "_ad_disabled", False):
            return
        if p.batch_index == 0:
            p.scripts.postprocess(copy.copy(p), SimpleNamespace(images=[], infotexts=[]))
        inner = SimpleNamespace(_ad_inner=True, _ad_disabled=True, extra_generation_params={
            k: v for k, v in p.extra_generation_params.items() if not callable(v)})  # fmt: skip
        self.inner.append(inner)
        image = np.asarray(pp.image).copy()
        face_model = "face" in args[2]["ad_model"]
        x0, y0, x1, y1 = self.box if face_model else (0, 0, 40, 40)  # (stands in for what it detects)
        image[y0:y1, x0:x1] = 255 - image[y0:y1, x0:x1]  # its repaint of the face
        pp.image = Image.fromarray(image)
        if p.batch_index == p.batch_size - 1:
            p.scripts.process(copy.copy(p))


class Runner:
    """modules/scripts.py ScriptRunner: each always-on script gets its slice of p.script_args."""

    def __init__(self, *scripts):
        self.alwayson_scripts = list(scripts)

    def process(self, p):
        for script in self.alwayson_scripts:
            script.process(p, *p.script_args[script.args_from : script.args_to])

    def postprocess(self, p, processed):
        for script in self.alwayson_scripts:
            if hasattr(script, "postprocess"):  # (ScriptRunner.ordered_scripts: only scripts that implement it)
                script.postprocess(p, processed, *p.script_args[script.args_from : script.args_to])


def adetailer_job(env, images, ad_args, hr_args=(True,), prompts=("a photo of an astronaut",)):
    """A job with ADetailer (first, as "!adetailer.py" sorts) and HumanRefine, run hook by hook like
    process_images_inner: process; per image postprocess_image (ADetailer), then
    postprocess_image_after_composite (HumanRefine) and the infotext; postprocess."""
    ad = ADetailerStandIn()
    ad.args_from, ad.args_to = 0, len(ad_args)
    env.script.args_from, env.script.args_to = len(ad_args), len(ad_args) + len(hr_args)
    p = stand_ins.make_p(prompts=prompts, seeds=[5, 6], batch_size=len(images), n_iter=1,
                         script_args=[*ad_args, *hr_args])  # fmt: skip
    p.scripts = Runner(ad, env.script)
    p.scripts.process(p)
    out = []
    for i, image in enumerate(images):
        p.batch_index = i
        pp = SimpleNamespace(image=Image.fromarray(image))
        ad.postprocess_image(p, pp, *ad_args)
        env.script.postprocess_image_after_composite(p, pp, *hr_args)
        out.append((np.asarray(pp.image), infotext(p, i), infotext(p, i, "HumanRefine result")))
    p.scripts.postprocess(p, SimpleNamespace(images=[o[0] for o in out], infotexts=[""] * len(out)))
    return p, ad, out


AD_FACE = [True, False, {"ad_model": "mediapipe_face_full", "ad_tab_enable": True}, {"ad_model": "None"}]


def test_beside_adetailer_faces_are_left_to_it_and_every_image_keeps_both_infotexts(webui, astronaut, capsys):
    env = webui("a1111")
    p, ad, out = adetailer_job(env, [astronaut, astronaut], AD_FACE)
    assert env.rec.passes == []  # the only part is a face: ADetailer's
    for image, summary, result in out:
        assert summary.split()[0] in ("ok", "suspect")  # diagnosed after ADetailer's repaint
        assert result == "nothing to fix; faces left to ADetailer"
        assert not np.array_equal(image, astronaut)  # ADetailer's repaint is kept
    assert p.extra_generation_params["ADetailer model"] == "mediapipe_face_full"
    assert all("HumanRefine" not in inner.extra_generation_params for inner in ad.inner)
    assert "ADetailer inpaints faces in this job" in capsys.readouterr().err


def test_adetailer_rerunning_process_on_a_copy_of_the_job_does_not_start_a_second_job(webui, astronaut):
    """Before the fix, ADetailer's process(copy(p)) after the batch's last image made a new JobState
    write its own (empty) infotext callables into the shared extra_generation_params: the last
    image of every batch lost its HumanRefine lines."""
    env = webui("a1111")
    p, _ad, out = adetailer_job(env, [astronaut, astronaut], AD_FACE, prompts=["astronaut <humanrefine:faces>"])
    assert len(env.script._jobs) == 0  # the job ended; no job was left open for the copy
    # the prompt names faces: refined all the same (on ADetailer's repaint, where no pose links it to a person)
    assert [o[2].endswith("face fixed (not verified)") for o in out] == [True, True]
    assert len(env.rec.passes) == 4


def test_adetailer_on_a_hand_model_leaves_hands_and_the_setting_turns_it_off(webui, astronaut):
    env = webui("a1111")
    ad_hands = [True, False, {"ad_model": "hand_yolov8n.pt"}]
    _p, _ad, out = adetailer_job(env, [astronaut], ad_hands)
    assert out[0][2] == "P1 face fixed (not verified); hands left to ADetailer"
    env.rec.passes.clear()
    env.shared.opts.humanrefine_leave_to_adetailer = False
    _p, _ad, out = adetailer_job(env, [astronaut], AD_FACE)
    assert out[0][2].endswith("face fixed (not verified)") and len(env.rec.passes) == 2  # refined after it
    env.rec.passes.clear()
    env.shared.opts.humanrefine_leave_to_adetailer = True
    _p, _ad, out = adetailer_job(env, [astronaut], [False, False, {"ad_model": "face_yolov8n.pt"}])  # disabled
    assert out[0][2] == "P1 face fixed (not verified)"


def test_adetailers_inner_pass_is_not_a_job_even_when_it_runs_every_script(webui, astronaut):
    env = webui("a1111")
    inner = stand_ins.make_p()
    inner._ad_inner = True  # ADetailer's own img2img pass (ad_only_selected_scripts off runs all scripts)
    env.script.process(inner, True)
    assert "HumanRefine" not in inner.extra_generation_params and env.script._jobs == {}


# --- settings ------------------------------------------------------------------------------------


def test_the_settings_pickers_say_which_family_each_model_is_for_loaded_family_first(webui):
    from lib_humanrefine.webui.ui import controlnet_model_choices

    webui("a1111", models.a1111_model("sdxl"))
    assert controlnet_model_choices() == [
        "Automatic", "None", f"{UNION} (for SDXL, union)", f"{XL_DEPTH} (for SDXL)",
        f"{SD15_MODELS[0]} (for SD 1.5)", f"{SD15_MODELS[1]} (for SD 1.5)",
    ]  # fmt: skip
    webui("neo", models.neo_model("sd1"), cn_models=("diffusers_xl_depth_mid", "control_v11p_sd15_openpose"))
    assert controlnet_model_choices()[2:] == [
        "control_v11p_sd15_openpose (for SD 1.5)",
        "diffusers_xl_depth_mid (for SDXL)",
    ]
