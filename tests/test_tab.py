"""The HumanRefine tab without a browser: infotext reading and writing, the labels folder the teach
buttons fill, drawn-mask steps, the tab's session (refine, swap candidates, keep, teach) with the
stand-in host, and its wiring into a WebUI (stand-ins of the WebUI modules, real gradio)."""

from __future__ import annotations

import csv
import importlib.util
import io
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import webui_stand_ins as stand_ins
from conftest import REPO
from PIL import Image, PngImagePlugin
from stand_in_host import ShiftHost

from lib_humanrefine import infotext, teach
from lib_humanrefine.errors import CannotWrite
from lib_humanrefine.options import ScriptArgs, Settings
from lib_humanrefine.plan import PlanOptions, region_steps
from lib_humanrefine.webui import session as sessions

A1111_INFOTEXT = (
    "a photo of a woman, waving\nat the camera\nNegative prompt: blurry,\nlow quality\n"
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234, Size: 512x768, "
    'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: "a: 1f2e, b: 3c4d", Version: v1.10.1'
)


# --- infotext -------------------------------------------------------------------------------------------


def test_an_a1111_infotext_is_parsed_with_multiline_prompts_and_quoted_values():
    g = infotext.parse(A1111_INFOTEXT)
    assert g.prompt == "a photo of a woman, waving\nat the camera"
    assert g.negative_prompt == "blurry,\nlow quality"
    assert (g.seed, g.steps, g.cfg_scale, g.size) == (1234, 20, 6.5, (512, 768))
    assert (g.sampler_name, g.scheduler, g.model) == ("DPM++ 2M", "Karras", "v1-5-pruned-emaonly")
    assert g.params["Lora hashes"] == "a: 1f2e, b: 3c4d" and g.generated


def test_compose_adds_the_result_and_replaces_an_older_one_and_parses_back():
    g = infotext.parse(A1111_INFOTEXT)
    once = infotext.compose(g, {"HumanRefine result": "P1 face fixed (2/3 candidates passed), region: kept"})
    twice = infotext.compose(infotext.parse(once), {"HumanRefine result": "nothing to fix"})
    back = infotext.parse(twice)
    assert back.params["HumanRefine result"] == "nothing to fix" and twice.count("HumanRefine result") == 1
    assert (back.prompt, back.negative_prompt, back.seed) == (g.prompt, g.negative_prompt, 1234)
    assert 'Lora hashes: "a: 1f2e, b: 3c4d"' in twice
    assert infotext.parse(once).params["HumanRefine result"] == "P1 face fixed (2/3 candidates passed), region: kept"


def test_text_without_parameters_is_all_prompt():
    g = infotext.parse("just a prompt, with: one colon")
    assert (g.prompt, g.params, g.generated) == ("just a prompt, with: one colon", {}, False)
    assert infotext.parse("").prompt == "" and infotext.parse(None).params == {}


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_the_infotext_is_read_from_png_text_and_exif_user_comment(fmt):
    picture = Image.new("RGB", (32, 32), (90, 120, 200))
    buffer = io.BytesIO()
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", A1111_INFOTEXT)
        picture.save(buffer, format=fmt, pnginfo=info)
    else:  # how the WebUIs write JPEG and WebP: EXIF UserComment, "UNICODE" + UTF-16 big-endian
        exif = Image.Exif()
        exif[0x8769] = {0x9286: b"UNICODE\x00" + A1111_INFOTEXT.encode("utf-16-be")}
        picture.save(buffer, format=fmt, exif=exif.tobytes())
    with Image.open(io.BytesIO(buffer.getvalue())) as img:
        assert infotext.read(img) == A1111_INFOTEXT
    assert infotext.read(Image.new("RGB", (4, 4))) == ""


# --- the labels folder ----------------------------------------------------------------------------------


def rows(folder):
    with open(folder / "labels.csv", newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_verdicts_create_the_csv_append_rows_and_never_overwrite(tmp_path):
    folder = tmp_path / "labels"
    crop = np.full((40, 40, 3), 10, np.uint8)
    first = teach.add(folder, crop, 1, "hand", "generated-user")
    second = teach.add(folder, np.full((30, 30, 3), 200, np.uint8), 0, "image")
    assert rows(folder) == [["path", "label", "kind", "part"], [first.path.relative_to(folder).as_posix(), "1",
                            "generated-user", "hand"], [second.path.relative_to(folder).as_posix(), "0", "user",
                            "image"]]  # fmt: skip
    assert (first.row, second.row, first.new) == (2, 3, True)
    written = first.path.read_bytes()
    again = teach.add(folder, crop, 1, "hand")
    assert (again.new, again.row, again.path) == (False, 2, first.path) and len(rows(folder)) == 3
    with pytest.raises(CannotWrite, match=r"already labelled the other way .* line 2"):
        teach.add(folder, crop, 0, "hand")
    assert first.path.read_bytes() == written and len(rows(folder)) == 3
    assert np.array_equal(np.asarray(Image.open(first.path)), crop)


def test_the_labels_folder_says_how_many_verdicts_it_holds_and_what_train_would_use(tmp_path):
    folder = tmp_path / "labels"
    assert "holds 0 verdict(s)" in teach.train_note(folder) and "mark both kinds" in teach.train_note(folder)
    for n in range(3):
        teach.add(folder, np.full((8, 8, 3), n, np.uint8), 1, "image", "generated-user")
    teach.add(folder, np.full((8, 8, 3), 50, np.uint8), 0, "hand")
    teach.add(folder, np.full((8, 8, 3), 60, np.uint8), 1, "body")
    held = teach.holdings(folder)
    assert (held.malformed, held.fine, held.crops, held.verdicts) == (3, 0, {"hand": 1, "face": 0, "body": 1}, 5)
    note = teach.train_note(folder)
    assert "holds 5 verdict(s): 3 whole picture(s) (3 malformed, 0 fine) and 2 part crop(s) (1 hands, 1 people)" in note
    assert f"train --data {folder} --out my_heads.npz" in note and "fewer than 2 fine ones" in note
    for n in range(4):
        teach.add(folder, np.full((8, 8, 3), 100 + n, np.uint8), 0, "image")
    assert "only 7 whole pictures" in teach.train_note(folder)


def test_an_existing_csv_keeps_its_columns_and_rows(tmp_path):
    (tmp_path / "labels.csv").write_text("path,label,kind,part,group\nold.png,1,photo,image,g1", encoding="utf-8")
    taught = teach.add(tmp_path, np.zeros((8, 8, 3), np.uint8), 0, "face")
    assert rows(tmp_path)[:2] == [["path", "label", "kind", "part", "group"], ["old.png", "1", "photo", "image", "g1"]]
    assert rows(tmp_path)[2] == [taught.path.relative_to(tmp_path).as_posix(), "0", "user", "face", ""]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "labels.csv").write_text("path,label\na.png,1\n", encoding="utf-8")
    with pytest.raises(CannotWrite, match="needs path,label,kind,part"):
        teach.add(tmp_path / "other", np.zeros((8, 8, 3), np.uint8), 1, "hand")
    assert (tmp_path / "other" / "labels.csv").read_text() == "path,label\na.png,1\n"


def test_a_part_crop_is_a_square_with_context_padded_outside_the_image():
    image = np.arange(100 * 80 * 3, dtype=np.uint32).reshape(100, 80, 3).astype(np.uint8)
    crop = teach.part_crop(image, (0, 10, 20, 30), "hand")  # a 20 px hand at the left edge: 40 px square
    assert crop.shape == (40, 40, 3)
    assert (crop[:, :10] == 128).all()  # left of the image
    assert np.array_equal(crop[10:30, 10:30], image[10:30, 0:20])
    assert teach.part_crop(image, (10, 10, 60, 90), "body").shape == (88, 88, 3)


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CannotWrite, match="is a file, not a folder"):
        teach.add(blocker, np.zeros((4, 4, 3), np.uint8), 1, "hand")


# --- drawn regions ------------------------------------------------------------------------------------


def test_a_drawn_mask_becomes_one_step_per_area_largest_first_specks_ignored():
    image = np.full((256, 256, 3), 120, np.uint8)
    mask = np.zeros((128, 128), np.uint8)  # half size: resized to the image
    mask[10:30, 10:60] = 255
    mask[80:120, 80:120] = 255
    mask[60, 60] = 255  # a speck
    steps = region_steps(image, mask, PlanOptions(seed=7, part_resolution=256), first_index=3, denoise=0.45)
    assert [s.kind for s in steps] == ["region", "region"]
    assert [s.index for s in steps] == [3, 4] and steps[0].seed != steps[1].seed
    assert steps[0].mask.shape == (256, 256) and steps[0].mask.sum() > steps[1].mask.sum()
    assert steps[0].denoise == 0.45 and [c.kind for c in steps[0].controls] == ["reference"]
    assert region_steps(image, np.zeros((256, 256), np.uint8), PlanOptions(), 0, 0.5) == []


# --- the session --------------------------------------------------------------------------------------


@pytest.fixture
def diagnosed(models_ready, grace_hopper):
    settings = Settings(candidates=2, learned=False)
    return sessions.diagnose(grace_hopper, A1111_INFOTEXT, ScriptArgs(enabled=True), settings)


def test_rows_list_the_parts_with_the_plans_defaults(diagnosed):
    face = next(r for r in diagnosed.rows if r.kind == "face")
    assert face.label == "P1 face" and face.strength == 0.35 and face.candidates == 2
    assert (face.control, face.control_label) == (1.0, "Reference weight") and not face.flagged
    body = next(r for r in diagnosed.rows if r.kind == "body")
    assert body.control_label == "OpenPose weight" and body.strength == 0.6
    assert diagnosed.overlay.shape == diagnosed.image.shape


def test_refine_keeps_every_candidate_and_choosing_restores_exact_pixels(diagnosed):
    face = next(r for r in diagnosed.rows if r.kind == "face")
    image = diagnosed.image.copy()
    drawn = np.zeros(image.shape[:2], np.uint8)
    drawn[520:580, 40:160] = 255
    result = diagnosed.refine(
        [sessions.Pick(face.index, 0.4, 2, 0.8)], ShiftHost(), ScriptArgs(enabled=True), Settings(part_resolution=256),
        "sd15", "a woman", "blurry", 40, 12, 6.0, extra_mask=drawn, mask_strength=0.3,
    )  # fmt: skip
    face_step, region = result.steps
    assert face_step.step.denoise == 0.4 and face_step.step.controls[0].weight == 0.8  # the row's values
    assert region.kind == "region" and region.reason == "fixed (not verified)" and region.step.denoise == 0.3
    assert diagnosed.summary().endswith("drawn region fixed (not verified)")
    labels = [label for label, _ in diagnosed.candidate_options(face_step.index)]
    assert labels[0] == "original" and labels[1].startswith("#1 seed 1040: ") and len(labels) == 3
    assert len(diagnosed.candidate_pictures(face_step.index)) == 3

    outside = np.maximum(face_step.step.mask, face_step.step.ring) == 0
    refined = diagnosed.current.copy()
    back = diagnosed.choose(face_step.index, None)
    assert np.array_equal(back[~outside], image[~outside])  # the face is as it was
    region_pixels = np.maximum(region.step.mask, region.step.ring) > 0
    assert np.array_equal(back[region_pixels], refined[region_pixels])  # the drawn area is still refined
    assert "P1 face kept as it was (chosen by hand)" in diagnosed.summary()
    other = 1 - face_step.chosen
    diagnosed.choose(face_step.index, other)
    assert f"P1 face candidate {other + 1} (chosen by hand)" in diagnosed.result_infotext()
    with pytest.raises(ValueError, match="did not run"):
        diagnosed.choose(face_step.index, 5)


def test_an_image_without_infotext_gets_the_values_the_refinement_used(models_ready, grace_hopper):
    session = sessions.diagnose(grace_hopper, "", ScriptArgs(enabled=True), Settings(learned=False))
    face = next(r for r in session.rows if r.kind == "face")
    session.refine([sessions.Pick(face.index, 0.3, 1, 1.0)], ShiftHost(), ScriptArgs(enabled=True),
                   Settings(part_resolution=256), "sd15", "portrait", "", 99, 10, 5.0)  # fmt: skip
    back = infotext.parse(session.result_infotext())
    assert back.prompt == "portrait" and (back.seed, back.steps, back.size) == (99, 10, (512, 600))
    assert back.params["HumanRefine result"].startswith("P1 face ")


def test_nothing_picked_is_refused_and_teach_writes_the_face(diagnosed, tmp_path):
    with pytest.raises(ValueError, match="tick at least one part"):
        diagnosed.refine([], ShiftHost(), ScriptArgs(), Settings(), "sd15", "", "", 1, 10, 5.0)
    face = next(r for r in diagnosed.rows if r.kind == "face")
    taught = diagnosed.teach(tmp_path, face.index, malformed=True)
    assert rows(tmp_path)[1][1:] == ["1", "generated-user", "face"]
    x0, y0, x1, y1 = diagnosed.diagnosis.parts[face.index].box
    assert Image.open(taught.path).width == round(2 * max(x1 - x0, y1 - y0))


# --- widgets' values ------------------------------------------------------------------------------------


def test_masks_from_each_editor_are_read_the_same():
    from lib_humanrefine.webui.tab import mask_array

    shape = (60, 40, 3)
    drawn = np.zeros((60, 40), np.uint8)
    drawn[10:20, 5:15] = 255
    sketch = {"image": np.zeros(shape, np.uint8), "mask": np.dstack([drawn] * 3)}  # gradio 3's sketch tool
    rgba = np.zeros((60, 40, 4), np.uint8)
    rgba[..., 3] = drawn  # Forge's canvas: what was drawn is opaque
    for value in (sketch, Image.fromarray(rgba, "RGBA"), drawn, Image.fromarray(drawn).resize((20, 30))):
        mask = mask_array(value, shape)
        assert mask.shape == (60, 40) and set(np.unique(mask)) == {0, 255}
        assert abs(int((mask > 0).sum()) - 100) <= 20
    assert mask_array(np.zeros((60, 40), np.uint8), shape) is None and mask_array(None, shape) is None


def test_gallery_infotext_and_files_outside_gradios_folder(tmp_path):
    from lib_humanrefine.webui.tab import infotext_at, standalone_image_from_gallery

    info = '{"infotexts": ["grid", "first", "second"], "index_of_first_image": 1}'
    assert infotext_at(info, 2) == "second" and infotext_at(info, 7) == "" and infotext_at("not json", 0) == ""
    picture = Image.new("RGB", (8, 8))
    assert standalone_image_from_gallery([(picture, "caption")]) is picture
    outside = tmp_path / "secret.png"
    picture.save(outside)
    with pytest.raises(ValueError, match="outside gradio's temporary folder"):
        standalone_image_from_gallery([{"name": str(outside)}])


# --- inside a WebUI (stand-ins of its modules, the real gradio) -----------------------------------------


@pytest.fixture
def webui(monkeypatch, tmp_path, models_ready):
    gr = pytest.importorskip("gradio")
    env = stand_ins.install(monkeypatch, tmp_path, "a1111")
    monkeypatch.setitem(sys.modules, "gradio", gr)  # the tab needs real components
    bindings = []
    infotext_utils = SimpleNamespace(
        ParamBinding=lambda **kwargs: SimpleNamespace(**kwargs), register_paste_params_button=bindings.append,
        image_from_url_text=lambda value: Image.new("RGB", (16, 16)),
    )  # fmt: skip

    def ToolButton(*args, tooltip=None, **kwargs):  # a gr.Button subclass in the WebUI; a subclass here would make
        button = gr.Button(*args, **kwargs)  # gradio 4 write a .pyi file beside this test
        button.tooltip = tooltip
        return button

    extra = {
        "infotext_utils": infotext_utils, "ui_components": SimpleNamespace(ToolButton=ToolButton),
        "sd_samplers": SimpleNamespace(find_sampler_config=lambda name: {"Euler a": 1, "DPM++ 2M": 2}.get(name)),
        "sd_schedulers": SimpleNamespace(schedulers_map={"Karras": 1, "Automatic": 2}),
    }  # fmt: skip
    for name, module in extra.items():
        monkeypatch.setitem(sys.modules, f"modules.{name}", module)
    env.shared.opts.outdir_samples = ""
    env.shared.opts.outdir_img2img_samples = str(tmp_path / "img2img")
    env.shared.cmd_opts.humanrefine_models_dir = str(models_ready)
    env.bindings, env.tmp = bindings, tmp_path
    from lib_humanrefine.webui import tab

    tab.captured.clear()
    yield env
    tab.captured.clear()
    from lib_humanrefine import models

    models.set_models_dir(None)


def test_the_script_registers_the_tab_and_the_gallery_buttons(webui):
    spec = importlib.util.spec_from_file_location("humanrefine_script", REPO / "scripts" / "humanrefine.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    from lib_humanrefine.webui import tab

    assert webui.callbacks.registered["on_ui_tabs"] == [tab.on_ui_tabs]
    assert webui.callbacks.registered["on_after_component"] == [tab.on_after_component]


def test_on_ui_tabs_builds_the_tab_and_wires_send_buttons_both_ways(webui):
    import gradio as gr

    from lib_humanrefine.webui import tab

    with gr.Blocks():  # the WebUI's txt2img output panel, as on_after_component sees it
        gallery = gr.Gallery(elem_id="txt2img_gallery")
        tab.on_after_component(gallery, elem_id="txt2img_gallery")
        with gr.Row(elem_id="image_buttons_txt2img"):
            extras = gr.Button("📐", elem_id="txt2img_send_to_extras")
            tab.on_after_component(extras, elem_id="txt2img_send_to_extras")
        info = gr.Textbox(visible=False, elem_id="generation_info_txt2img")
        tab.on_after_component(info, elem_id="generation_info_txt2img")
    button = tab.captured["txt2img_send_to_humanrefine"]
    assert button.elem_id == "txt2img_send_to_humanrefine" and "HumanRefine tab" in button.tooltip
    [(blocks, title, elem_id)] = tab.on_ui_tabs()
    assert isinstance(blocks, gr.Blocks) and (title, elem_id) == ("HumanRefine", "humanrefine")
    assert [b.tabname for b in webui.bindings] == ["img2img", "inpaint"]
    assert all(isinstance(b.source_image_component, gr.Image) for b in webui.bindings)
    assert all(isinstance(b.source_text_component, gr.Textbox) for b in webui.bindings)
    triggers = [(t[0] if isinstance(t, tuple) else t) for d in blocks_dependencies(blocks) for t in d]
    assert button._id in triggers  # "Send to HumanRefine" is bound inside the tab's Blocks


def blocks_dependencies(blocks):
    """The ids of each event's triggers, for gradio 3 (dicts) and 4 (BlockFunction objects)."""
    if isinstance(getattr(blocks, "dependencies", None), list):
        return [list(d["targets"]) for d in blocks.dependencies]
    return [list(fn.targets) for fn in blocks.fns.values()]


def test_the_webui_backend_saves_labels_and_runs_jobs_like_the_webui(webui):
    from lib_humanrefine.webui import tab

    backend = tab.webui_backend()
    assert backend.mask_editor == ("sketch" if tab.gradio_major() < 4 else "upload")
    assert backend.labels_dir() == webui.tmp / "outputs" / "humanrefine-labels"
    webui.shared.opts.humanrefine_labels_dir = str(webui.tmp / "mine")
    assert backend.labels_dir() == webui.tmp / "mine"
    assert (tab.known_sampler("DPM++ 2M"), tab.known_sampler("No such"), tab.known_sampler(None)) == (
        "DPM++ 2M", "Euler a", "Euler a")  # fmt: skip
    assert (tab.known_scheduler("Karras"), tab.known_scheduler("bogus")) == ("Karras", "Automatic")
    assert backend.model() == "sd15"

    def work():
        (webui.tmp / "params.txt").write_text("a nested pass wrote this")
        return "done"

    assert backend.run_job(work) == "done"
    assert webui.shared.state.jobs[-1] == "humanrefine" and webui.shared.state.job == ""
    assert (webui.tmp / "params.txt").read_text() == "outer job parameters"
    assert ("torch_gc",) in webui.rec.saved
    calls = []

    def save_image(image, path, basename, seed=None, prompt=None, extension="png", info=None, **kwargs):
        calls.append(SimpleNamespace(path=path, seed=seed, prompt=prompt, extension=extension, info=info, **kwargs))
        return f"{path}/00001-{seed}-humanrefine.{extension}", None

    webui.modules["images"].save_image = save_image
    text = "a prompt\nSteps: 1, Seed: 2, Size: 8x8, HumanRefine result: nothing to fix"
    path = backend.save_image(Image.new("RGB", (8, 8)), text, 2, "a prompt")
    [call] = calls
    assert (call.path, call.info, call.suffix, call.extension) == (str(webui.tmp / "img2img"), text, "-humanrefine",
                                                                   "png")  # fmt: skip
    assert path == f"{webui.tmp / 'img2img'}/00001-2-humanrefine.png"


def test_parts_that_would_read_the_same_are_numbered():
    from lib_humanrefine.diagnose.types import Diagnosis, Part

    parts = [Part("hand", "right", 0, (0, 0, 9, 9), "hand"), Part("face", None, 0, (0, 0, 9, 9), "face"),
             Part("hand", "right", 0, (20, 0, 29, 9), "hand")]  # fmt: skip
    assert sessions.part_names(Diagnosis(40, 20, parts, 0.5)) == ["P1 right hand (1)", "P1 face", "P1 right hand (2)"]


def test_verdicts_from_several_processes_at_once_are_all_kept(tmp_path):
    """The tab in two WebUIs, or a script beside it, writing one labels folder: every row is kept, and
    one picture labelled both ways at once gets one row (the other process is refused)."""
    import os
    import subprocess
    import sys
    import time

    from conftest import REPO

    folder, start, workers, count = tmp_path / "labels", tmp_path / "go", 4, 15
    procs = [
        subprocess.Popen([sys.executable, str(REPO / "tests" / "teach_worker.py"), str(folder), str(start), str(w),
                          str(count)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in range(workers)
    ]  # fmt: skip
    time.sleep(1.5)  # every process imported and waiting
    start.touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _out, err in results]
    table = rows(folder)
    assert table[0] == ["path", "label", "kind", "part"]
    hands = [r for r in table[1:] if r[3] == "hand"]
    assert len(hands) == workers * count and len({r[0] for r in hands}) == workers * count
    assert all((folder / r[0]).is_file() for r in table[1:])
    faces = [r for r in table[1:] if r[3] == "face"]
    answers = sorted(out.strip().split(":")[0] for out, _err in results)
    assert len(faces) == 1 and answers.count("new") == 1  # one row for the picture, written once
    kept = int(faces[0][1])
    assert answers.count("same") == sum(w % 2 == kept for w in range(workers)) - 1
    assert answers.count("refused") == sum(w % 2 != kept for w in range(workers))


def test_a_labels_csv_that_is_not_utf8_is_named_in_the_tabs_words(tmp_path):
    from lib_humanrefine.webui import user_message

    latin1 = "path,label,kind,part\ncrops/caf\xe9.png,1,user,hand\n".encode("latin-1")
    (tmp_path / "labels.csv").write_bytes(latin1)
    with pytest.raises(CannotWrite) as err:
        teach.add(tmp_path, np.zeros((8, 8, 3), np.uint8), 1, "hand")
    assert user_message(err.value) == f"{tmp_path / 'labels.csv'} is not UTF-8 text: save it as CSV UTF-8 or choose " \
                                      "another labels folder"  # fmt: skip
    assert (tmp_path / "labels.csv").read_bytes() == latin1 and not (tmp_path / "crops").exists()
