"""Contract tests of the WebUI glue with stand-ins of the WebUI objects (tests/webui_stand_ins.py:
signatures as in A1111 1.10.1 / Forge; p.extra_generation_params with callables evaluated by
create_infotext(**locals)). The real WebUI check (../shared/lab) complements these."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest
import webui_stand_ins as stand_ins
from PIL import Image


@pytest.fixture(params=["a1111"])
def webui(request, monkeypatch, models_ready, tmp_path):
    """Install the stand-ins and import scripts/humanrefine.py as the WebUI would."""
    env = stand_ins.load_script(
        stand_ins.install(monkeypatch, tmp_path, getattr(request, "param", "a1111")), models_ready
    )
    yield env
    from lib_humanrefine import models

    models.set_models_dir(None)


def infotext(p, index=0, key="HumanRefine"):
    """What A1111's create_infotext does with extra_generation_params: call callables with its locals."""
    value = p.extra_generation_params.get(key)
    return value(p=p, index=index, iteration=p.iteration) if callable(value) else value


def run_job(env, p, images, args):
    """process → per image postprocess_image_after_composite → postprocess, like process_images_inner."""
    env.script.process(p, *args)
    out = []
    for iteration in range(p.n_iter):
        p.iteration = iteration
        for batch_index in range(p.batch_size):
            p.batch_index = batch_index
            pp = SimpleNamespace(image=images[iteration * p.batch_size + batch_index], index=batch_index)
            env.script.postprocess_image_after_composite(p, pp, *args)
            out.append((pp.image, infotext(p, batch_index), infotext(p, batch_index, "HumanRefine result")))
    processed = SimpleNamespace(images=[o[0] for o in out], infotexts=["params"] * len(out))
    env.script.postprocess(p, processed, *args)
    return out, processed


def test_script_identity_settings_and_prompt_tag(webui):
    assert webui.script.title() == "HumanRefine"
    assert webui.script.show(False) is sys.modules["modules.scripts"].AlwaysVisible
    opts = webui.shared.opts
    assert opts.humanrefine_show_overlay is False and opts.humanrefine_candidates == 1
    assert opts.data_labels["humanrefine_candidates"].infotext == "HumanRefine candidates"  # pasted as override
    assert "humanrefine" in sys.modules["modules.extra_networks"].extra_network_registry


def test_diagnose_only_policy_keeps_the_image_and_reports(webui, astronaut):
    webui.shared.opts.humanrefine_show_overlay = True
    image = Image.fromarray(astronaut)
    (result,), processed = run_job(webui, stand_ins.make_p(), [image], [True, "off"])
    assert result[0] is image and result[1].split()[0] in ("ok", "suspect") and result[2] is None
    assert webui.rec.passes == []
    assert len(processed.images) == 2 and processed.images[1].size == image.size  # overlay appended


def test_policy_all_refines_the_face_through_a_nested_img2img_pass(webui, astronaut):
    webui.shared.opts.humanrefine_verify = False  # the stand-in's shifted pixels are kept whatever they look like
    p = stand_ins.make_p(prompts=["a photo of an astronaut <humanrefine:faces:0.4>"], seeds=[777])
    image = Image.fromarray(astronaut)
    (result,), _ = run_job(webui, p, [image], [True])
    one, seam = webui.rec.passes  # the face, then RealisHuman's seam ring at low denoise
    assert seam.p.denoising_strength == 0.3 and seam.units == [] and seam.p.seed == 777 + 1001
    p2 = one.p
    assert (p2.width, p2.height) == (488, 512) and p2.init_images[0].size == (488, 512)
    assert p2.inpaint_full_res is False and p2.inpainting_fill == 1 and p2.do_not_save_samples
    assert p2.denoising_strength == 0.4 and p2.steps == 12 and p2.cfg_scale == 6.0 and p2.sampler_name == "Euler a"
    assert p2.seed == 777 + 1000 and p2._humanrefine_inner is True
    assert "humanrefine" not in p2.prompt and p2.prompt.startswith("a photo of an astronaut")
    assert p2.negative_prompt.startswith("blurry")
    assert p2.cached_c is not stand_ins.StableDiffusionProcessingImg2Img.cached_c
    # the nested pass runs ControlNet alone, with our reference unit, not the outer job's units
    assert [s.title() for s in p2.scripts.alwayson_scripts] == ["ControlNet"]
    assert p2.scripts.alwayson_scripts[0] is not webui.rec.controlnet
    assert [(u.module, u.model, u.threshold_a) for u in one.units] == [("reference_only", "None", 0.5)]
    refined = np.asarray(result[0])
    changed = np.any(refined != astronaut, axis=2)
    assert changed.any() and result[2] == "P1 face fixed (not verified)"
    ys, xs = np.nonzero(changed)
    assert xs.min() >= 107 and xs.max() < 344 and ys.max() < 249  # only inside the step's crop
    assert "HumanRefine face strength" not in p.extra_generation_params  # default strength, tag for this image


def test_nested_passes_leave_the_consoles_total_progress_to_the_outer_job(webui, astronaut):
    webui.shared.opts.humanrefine_verify = False
    total = webui.shared.total_tqdm
    total.updateTotal(20)
    for _ in range(20):  # the outer txt2img's 20 steps
        total.update()
    run_job(webui, stand_ins.make_p(prompts=["an astronaut <humanrefine:faces>"]), [Image.fromarray(astronaut)], [True])
    assert len(webui.rec.passes) == 2  # the face and its seam ran, each stepping its sampler
    assert webui.shared.total_tqdm is total and (total.count, total.total) == (20, 20)  # still 100 %, not past it


def test_after_the_job_its_parameters_are_plain_json_for_forge_classics_processed_js(webui, astronaut):
    import json

    webui.shared.opts.humanrefine_verify = False
    p = stand_ins.make_p(prompts=["an astronaut <humanrefine:faces>"] * 2, seeds=[1, 2], batch_size=2)
    images = [Image.fromarray(astronaut)] * 2
    out, _ = run_job(webui, p, images, [True])
    assert all(text is not None and result is not None for _, text, result in out)  # per image, during the job
    params = json.loads(json.dumps(p.extra_generation_params))  # Classic: json.dumps(obj), no default=
    assert params["HumanRefine"] == out[0][1] and params["HumanRefine result"] == out[0][2]


def test_same_settings_give_the_same_result(webui, astronaut):
    webui.shared.opts.humanrefine_verify = False
    first, _ = run_job(webui, stand_ins.make_p(seeds=[5]), [Image.fromarray(astronaut)], [True])
    second, _ = run_job(webui, stand_ins.make_p(seeds=[5]), [Image.fromarray(astronaut)], [True])
    assert np.array_equal(np.asarray(first[0][0]), np.asarray(second[0][0]))
    third, _ = run_job(webui, stand_ins.make_p(seeds=[6]), [Image.fromarray(astronaut)], [True])
    assert not np.array_equal(np.asarray(first[0][0]), np.asarray(third[0][0]))


def test_a_lost_part_reverts_to_the_exact_original(webui, astronaut, monkeypatch):
    """Verification on: a pass that paints the face over grey loses the face and is thrown away."""

    def grey(p):
        p.init_images = [Image.new("RGB", p.init_images[0].size, (128, 128, 128))]

    webui.rec.before_pass.append(grey)
    image = Image.fromarray(astronaut)
    (result,), _ = run_job(webui, stand_ins.make_p(), [image], [True])
    assert result[0] is image and result[2] == "P1 face kept: face not found again (presence 0.00 < 0.50)"


def test_interrupt_mid_refine_keeps_the_image_as_it_is(webui, astronaut):
    webui.rec.before_pass.append(lambda p: webui.shared.state.interrupt())
    image = Image.fromarray(astronaut)
    (result,), _ = run_job(webui, stand_ins.make_p(), [image], [True])
    assert result[0] is image and result[2] == "P1 face not finished (stopped: interrupted)"
    webui.shared.state.interrupted = False
    webui.shared.state.skipped = True  # Skip before the image's turn: nothing runs
    passes = len(webui.rec.passes)
    (result,), _ = run_job(webui, stand_ins.make_p(), [image], [True])
    assert result[0] is image and result[2] == "not run: skipped" and len(webui.rec.passes) == passes


def test_batches_use_each_images_own_prompt_seed_and_summary(webui, astronaut):
    """batch 2 x count 2: per-image prompts switch refinement off for one image; seeds follow all_seeds."""
    webui.shared.opts.humanrefine_verify = False
    outer_cn = webui.rec.controlnet
    p = stand_ins.make_p(
        prompts=["astronaut", "astronaut <humanrefine:off>", "astronaut", "astronaut <humanrefine:flagged>"],
        seeds=[10, 11, 12, 13], batch_size=2, n_iter=2, scripts=SimpleNamespace(alwayson_scripts=[outer_cn]),
    )  # fmt: skip
    images = [Image.fromarray(astronaut) for _ in range(4)]
    results, _ = run_job(webui, p, images, [True])
    # image 2 off, image 4 flagged-only (a clean face): two passes (face, seam) each for images 1 and 3
    assert [p2.p.seed for p2 in webui.rec.passes] == [1010, 1011, 1012, 1013]
    assert results[1][1] == "off for this image (prompt)" and results[1][0] is images[1]
    assert results[3][2] == "nothing to fix"
    assert all(r[1].split()[0] in ("ok", "suspect") for r in (results[0], results[2], results[3]))


def test_outer_controlnet_units_do_not_leak_and_are_hooked_again_for_the_next_batch(webui, astronaut):
    """A1111: the outer job's UNet hook is removed for our passes and restored before batch 2."""
    webui.shared.opts.humanrefine_verify = False
    outer_cn = webui.rec.controlnet
    outer_unit = stand_ins.ControlNetUnitA1111(enabled=True, module="openpose_full", model="x")
    args = [None] * 5 + [outer_unit, stand_ins.ControlNetUnitA1111(), stand_ins.ControlNetUnitA1111()]
    p = stand_ins.make_p(seeds=[1, 2], n_iter=2, scripts=SimpleNamespace(alwayson_scripts=[outer_cn]),
                         script_args=args)  # fmt: skip
    outer_cn.process(p, *args[5:8])  # the outer job hooked its openpose unit
    assert webui.unet.hooked_by == id(p)
    webui.script.process(p, True)
    p.iteration, p.batch_index = 0, 0
    webui.script.postprocess_image_after_composite(p, SimpleNamespace(image=Image.fromarray(astronaut)), True)
    inner = webui.rec.passes[0]
    assert len(webui.rec.passes) == 2
    assert inner.hooked_by != id(p) and [u.module for u in inner.units] == ["reference_only"]
    assert webui.unet.hooked_by == id(p)  # hooked again: batch 2 samples with the outer unit
    assert outer_cn.calls[-1] == ("process", id(p), ["openpose_full"])
    calls = len(outer_cn.calls)
    p.iteration = 1  # the last batch: nothing needs the outer hook any more
    webui.script.postprocess_image_after_composite(p, SimpleNamespace(image=Image.fromarray(astronaut)), True)
    assert ("process", id(p), ["openpose_full"]) not in outer_cn.calls[calls:]


@pytest.mark.parametrize("webui", ["forge"], indirect=True)
def test_forge_units_are_dataclasses_on_a_copy_of_its_controlnet_script(webui, astronaut):
    webui.shared.opts.humanrefine_verify = False
    outer_cn = webui.rec.controlnet
    outer_cn.current_params = {0: "outer"}
    p = stand_ins.make_p(scripts=SimpleNamespace(alwayson_scripts=[outer_cn]))
    run_job(webui, p, [Image.fromarray(astronaut)], [True])
    one, _seam = webui.rec.passes
    (unit,) = one.units
    assert isinstance(unit, stand_ins.ControlNetUnitForge) and unit.module == "reference_only"
    assert isinstance(unit.image, np.ndarray) and unit.image.shape == (512, 488, 3)
    assert outer_cn.current_params == {0: "outer"}  # the outer instance's state is untouched


@pytest.mark.parametrize("webui", ["none"], indirect=True)
def test_without_controlnet_it_inpaints_plainly_and_says_so(webui, astronaut, capsys):
    webui.shared.opts.humanrefine_verify = False
    (result,), _ = run_job(webui, stand_ins.make_p(), [Image.fromarray(astronaut)], [True])
    one, _seam = webui.rec.passes
    assert one.p.scripts is None and result[2].startswith("P1 face fixed")
    assert "no ControlNet in this WebUI: plain inpainting" in capsys.readouterr().err


def test_hand_steps_send_depth_and_reference_units_with_the_listed_model(webui, shared_data):
    from lib_humanrefine.images import load_image

    webui.shared.opts.humanrefine_verify = False
    image = Image.fromarray(load_image(shared_data / "real" / "hamer_test1.jpg"))
    run_job(webui, stand_ins.make_p(), [image], [True, "all", 0.5, "threshold", True, False, False])
    assert len(webui.rec.passes) == 4  # two hands, each a part pass and a seam pass
    part, seam = webui.rec.passes[:2]
    assert [(u.module, u.model) for u in part.units] == [
        ("none", "control_v11f1p_sd15_depth [cf3f2f5a]"), ("reference_only", "None")]  # fmt: skip
    depth = part.units[0].image
    assert depth.shape == (part.p.height, part.p.width, 3) and depth.max() == 255 and 0 < (depth > 0).mean() < 0.6
    assert part.units[0].weight == 0.55 and seam.units == [] and seam.p.denoising_strength == 0.3


def test_params_txt_and_before_image_and_report(webui, astronaut, tmp_path):
    opts = webui.shared.opts
    opts.humanrefine_verify, opts.humanrefine_save_before, opts.humanrefine_save_report = False, True, True
    p = stand_ins.make_p(seeds=[42])
    image = Image.fromarray(astronaut)
    webui.script.process(p, True)
    pp = SimpleNamespace(image=image)
    webui.script.postprocess_image_after_composite(p, pp, True)
    assert (tmp_path / "params.txt").read_text() == "outer job parameters"  # nested passes wrote it; restored
    (before,) = [s for s in webui.rec.saved if s[0] == "save_image"]
    assert before[2] == "-before-humanrefine" and np.array_equal(before[1], astronaut) and before[3] == 42
    assert "Seed: 42" in before[4] and "HumanRefine: ok" in before[4]  # its parameters, with the diagnosis
    for fn in webui.callbacks.registered["on_image_saved"]:
        fn(SimpleNamespace(image=pp.image, filename=str(tmp_path / "00001-42.png"), p=p))
    report = (tmp_path / "00001-42.humanrefine.json").read_text()
    assert '"summary": "P1 face fixed (not verified)"' in report and '"controlnet"' in report


def test_wrong_api_args_give_one_readable_line_and_keep_the_image(webui, astronaut, capsys):
    p = stand_ins.make_p()
    image = Image.fromarray(astronaut)
    (result,), _ = run_job(webui, p, [image], [{"enabled": True, "policy": "most", "colour": 1}])
    text = p.extra_generation_params["HumanRefine"]
    assert text.startswith("error - unknown option(s) 'colour'") and "'policy' must be one of" in text  # said once
    assert result[0] is image and webui.rec.passes == []
    assert "[HumanRefine] unknown option(s) 'colour'" in capsys.readouterr().err  # not "[HumanRefine] HumanRefine: "


def test_missing_models_name_the_folder_and_the_exact_command(webui, tmp_path, astronaut):
    empty = tmp_path / "no-models"
    webui.shared.cmd_opts.humanrefine_models_dir = str(empty)
    image = Image.fromarray(astronaut)
    (result,), _ = run_job(webui, stand_ins.make_p(), [image], [True])
    assert result[0] is image
    assert str(empty) in result[1] and f"--models-dir {empty} models fetch" in result[1]
    assert "lib_humanrefine" in result[1] and "\n" not in result[1]
    assert "or restart the WebUI: it fetches them at start" in result[1]  # install.py runs at the next start
    webui.shared.cmd_opts.skip_install = True  # ... but not under --skip-install: the command alone
    (result,), _ = run_job(webui, stand_ins.make_p(), [image], [True])
    assert f"--models-dir {empty} models fetch" in result[1] and "restart" not in result[1]


def test_disabled_does_nothing_but_a_prompt_tag_switches_it_on(webui, astronaut):
    p = stand_ins.make_p()
    image = Image.fromarray(astronaut)
    (result,), _ = run_job(webui, p, [image], [False])
    assert "HumanRefine" not in p.extra_generation_params and result[0] is image
    p = stand_ins.make_p(prompts=["astronaut <humanrefine:diagnose>"])
    (result,), _ = run_job(webui, p, [image], [False])
    assert result[1].split()[0] in ("ok", "suspect") and result[2] is None and webui.rec.passes == []


def test_ui_uses_only_arguments_gradio3_and_4_share_and_pastes_back(webui):
    components = webui.script.ui(is_img2img=True)
    assert [c.kind for c in components] == [
        "cb", "radio", "slider", "radio", "cb", "cb", "cb", "slider", "slider", "slider"]  # fmt: skip
    assert all(c.elem_id.startswith("humanrefine_img2img_") for c in components)
    assert "HumanRefine policy" in webui.script.paste_field_names
    fields = dict((id(c), key) for c, key in webui.script.infotext_fields)
    pasted = {"HumanRefine": "ok 0.10", "HumanRefine policy": "flagged", "HumanRefine hands": "False"}
    values = [fields[id(c)](pasted) for c in components]
    assert values == [True, "flagged", 0.5, "balanced", False, True, True, 0.5, 0.35, 0.6]  # missing: defaults
    assert [fields[id(c)]({"Steps": "20"}) for c in components] == [False] + [None] * 9  # not ours: keep
    # The threshold slider follows the sensitivity: greyed under a preset with the preset's threshold.
    from lib_humanrefine.diagnose.learned import sensitivity_threshold
    from lib_humanrefine.webui import current_settings

    learned = current_settings().learned  # the settings page's learned check: the learned or landmark presets
    threshold, sensitivity = components[2], components[3]
    assert threshold.interactive is False and threshold.value == round(sensitivity_threshold("balanced", learned), 3)
    assert threshold.do_not_save_to_config is True  # ui-config.json would restore a stale value over the preset's
    ((event, wiring),) = sensitivity.events
    assert event == "change" and wiring["inputs"] == [sensitivity] and wiring["outputs"] == [threshold]
    assert wiring["fn"]("strict") == {"value": round(sensitivity_threshold("strict", learned), 3), "interactive": False}
    assert wiring["fn"]("threshold") == {"interactive": True}


def test_missing_litert_runtime_is_reported_in_one_line(monkeypatch):
    import builtins

    from lib_humanrefine.detect import runtime
    from lib_humanrefine.errors import HumanRefineError

    real_import = builtins.__import__

    def no_litert(name, *args, **kwargs):
        if name.startswith("ai_edge_litert"):
            raise ImportError("No module named 'ai_edge_litert'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_litert)
    with pytest.raises(HumanRefineError) as err:
        runtime._interpreter_class()
    assert "pip install ai-edge-litert==2.3.0" in str(err.value) and "\n" not in str(err.value)
