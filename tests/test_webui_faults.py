"""Faults in the WebUI path, injected into the stand-ins of the host (tests/webui_stand_ins.py):
ControlNet missing, unusable or rejecting a unit; the host's API changed; out of memory in a nested
pass; Interrupt and Skip (always-on and the refine route); a full disk; a bug in our own glue. In
every case the generated image comes out unchanged or correctly refined (only verified steps
applied, nothing else touched) and the infotext / report says what happened."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import sys
import types
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import webui_stand_ins as stand_ins
from PIL import Image
from test_webui_contract import infotext, run_job

CUDA_OOM = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 8.00 GiB total capacity; 6.10 GiB already allocated)"


class OutOfMemoryError(RuntimeError):
    """What torch raises (torch.cuda.OutOfMemoryError is a RuntimeError subclass of this name)."""


@pytest.fixture
def host(monkeypatch, tmp_path, models_ready):
    """``host(flavour, models)`` installs the stand-ins and imports scripts/humanrefine.py as the
    WebUI would; verification is off so the stand-in's shifted pixels count as a fix."""

    def make(flavour="a1111", models=("control_v11f1p_sd15_depth [cf3f2f5a]", "control_v11p_sd15_openpose [cab727d4]")):
        env = stand_ins.load_script(stand_ins.install(monkeypatch, tmp_path, flavour, models), models_ready)
        env.shared.opts.humanrefine_verify = False
        env.tmp = tmp_path
        return env

    yield make
    from lib_humanrefine import models

    models.set_models_dir(None)


@pytest.fixture(scope="module")
def two_faces(astronaut, grace_hopper):
    """Two people side by side: planned as 'P2 face' (right), then 'P1 face' (left)."""
    right = cv2.resize(grace_hopper, (grace_hopper.shape[1] * 512 // grace_hopper.shape[0], 512))
    return np.ascontiguousarray(np.concatenate([astronaut, right], axis=1))


def refine_one(env, image: np.ndarray, p=None, args=(True,)):
    """One image through process → per-image hook → on_image_saved (report written) → postprocess.
    Returns (image out, result infotext, report or None)."""
    env.shared.opts.humanrefine_save_report = True
    p = p or stand_ins.make_p()
    original = Image.fromarray(image)
    env.script.process(p, *args)
    pp = SimpleNamespace(image=original)
    env.script.postprocess_image_after_composite(p, pp, *args)
    saved = env.tmp / "00001-1234.png"
    for fn in env.callbacks.registered["on_image_saved"]:
        fn(SimpleNamespace(image=pp.image, filename=str(saved), p=p))
    env.script.postprocess(p, SimpleNamespace(images=[pp.image], infotexts=[""]), *args)
    value = p.extra_generation_params.get("HumanRefine result")
    result = value(p=p, index=0, iteration=0) if callable(value) else value
    report_file = saved.with_suffix(".humanrefine.json")
    report = json.loads(report_file.read_text()) if report_file.exists() else None
    return pp.image, result, report


def on_pass(env, n: int = 0, action=None):
    """Run ``action(p)`` at the start of the n-th nested pass (1-based); returns the list of passes
    started."""
    attempts = []

    def hook(p):
        attempts.append(p)
        if len(attempts) == n:
            action(p)

    env.rec.before_pass.append(hook)
    return attempts


def raise_(exc):
    def action(p):
        raise exc

    return action


def unchanged_outside(out, before, box) -> bool:
    x0, y0, x1, y1 = box
    outside = np.ones(before.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    return np.array_equal(np.asarray(out)[outside], before[outside])


# --- ControlNet ----------------------------------------------------------------------------------


def test_controlnet_installed_without_models_runs_the_reference_unit_and_says_so(host, astronaut):
    env = host(models=())
    out, result, report = refine_one(env, astronaut)
    (part, seam) = env.rec.passes
    assert [u.module for u in part.units] == ["reference_only"] and result == "P1 face fixed (not verified)"
    (depth,) = [n for n in report["controlnet"] if n.startswith("depth:")]
    assert depth.startswith("depth: no SD 1.5 depth ControlNet model found; running without depth control")
    assert "download control_sd15_inpaint_depth_hand_fp16.safetensors from huggingface.co/hr16/" in depth
    assert not np.array_equal(np.asarray(out), astronaut)


@pytest.mark.parametrize("flavour", ["a1111", "forge"])
def test_a_unit_the_host_rejects_keeps_the_image_and_says_why(host, astronaut, flavour):
    env = host(flavour)
    env.rec.cn_faults.rejects["reference_only"] = RuntimeError("ControlNet model reference_only could not be loaded")
    attempts = on_pass(env)
    out, result, report = refine_one(env, astronaut)
    assert np.array_equal(np.asarray(out), astronaut) and env.rec.passes == [] and len(attempts) == 1
    assert result == "P1 face kept: the host failed (RuntimeError: ControlNet model reference_only could not be loaded)"
    assert report["steps"][0]["candidates"][0]["reason"].startswith("host failed (RuntimeError")


def test_a_rejected_unit_still_gives_the_outer_job_its_controlnet_back(host, astronaut):
    """A1111: the nested ControlNet unhooked the outer job's units before failing; batch 2 of the
    outer job must sample with them again (they were restored only after a successful pass)."""
    env = host()
    outer_cn = env.rec.controlnet
    env.rec.cn_faults.rejects["reference_only"] = RuntimeError("Recognizing Control Model failed")
    outer_unit = stand_ins.ControlNetUnitA1111(enabled=True, module="openpose_full", model="x")
    args = [None] * 5 + [outer_unit, stand_ins.ControlNetUnitA1111(), stand_ins.ControlNetUnitA1111()]
    p = stand_ins.make_p(seeds=[1, 2], n_iter=2, scripts=SimpleNamespace(alwayson_scripts=[outer_cn]),
                         script_args=args)  # fmt: skip
    outer_cn.process(p, *args[5:8])  # the outer job hooked its openpose unit
    assert env.unet.hooked_by == id(p)
    image = Image.fromarray(astronaut)
    env.script.process(p, True)
    pp = SimpleNamespace(image=image)
    env.script.postprocess_image_after_composite(p, pp, True)
    assert pp.image is image
    assert env.unet.hooked_by == id(p)  # hooked again for the next batch


# --- the host's API changed ------------------------------------------------------------------------


def img2img_without(*names):
    """The processing class with some init fields removed (an older or newer host)."""
    fields = [
        (f.name, f.type, dataclasses.field(default=f.default, init=f.init))
        for f in dataclasses.fields(stand_ins.StableDiffusionProcessingImg2Img)
        if f.name not in names
    ]
    return dataclasses.make_dataclass("StableDiffusionProcessingImg2Img", fields)


class Img2ImgBefore16:
    """A1111 before 1.6: a plain class whose __init__ takes **kwargs for the base class."""

    def __init__(self, init_images=None, mask=None, denoising_strength=0.75, **kwargs):
        self.init_images, self.mask, self.denoising_strength = init_images, mask, denoising_strength
        vars(self).update(kwargs)


class Img2ImgExplicit:
    """A plain class with explicit parameters only (no mask_blur, no scheduler)."""

    def __init__(self, prompt="", negative_prompt="", seed=-1, steps=20, cfg_scale=7.0, width=512, height=512,
                 init_images=None, mask=None, denoising_strength=0.75, sampler_name=None):  # fmt: skip
        vars(self).update({k: v for k, v in locals().items() if k != "self"})


FIELDS_REMOVED = img2img_without("scheduler", "mask_blur", "override_settings_restore_afterwards")


@pytest.mark.parametrize(
    "cls", [FIELDS_REMOVED, Img2ImgBefore16, Img2ImgExplicit], ids=["dataclass", "kwargs", "explicit"]
)
def test_a_processing_class_with_other_fields_still_refines(host, astronaut, cls):
    env = host()
    env.modules["processing"].StableDiffusionProcessingImg2Img = cls
    out, result, _ = refine_one(env, astronaut)
    part = env.rec.passes[0].p
    assert isinstance(part, cls) and part.denoising_strength == 0.35 and part.seed == 1234 + 1000
    assert result == "P1 face fixed (not verified)" and not np.array_equal(np.asarray(out), astronaut)
    if cls is Img2ImgBefore16:
        assert part.scheduler == "Automatic" and part.mask_blur == 4  # given to **kwargs
    else:
        assert not hasattr(part, "mask_blur") or part.mask_blur is None


def test_a_processing_class_that_needs_an_unknown_argument_keeps_the_image(host, astronaut):
    env = host()

    class NeedsMore(Img2ImgExplicit):
        def __init__(self, new_required, **kwargs):
            super().__init__(**kwargs)

    env.modules["processing"].StableDiffusionProcessingImg2Img = NeedsMore
    out, result, _ = refine_one(env, astronaut)
    assert np.array_equal(np.asarray(out), astronaut) and result.startswith("P1 face kept: the host failed (TypeError")


def test_shared_state_without_skipped_or_job_count(host, astronaut):
    env = host()
    env.shared.state = SimpleNamespace(interrupted=False, textinfo=None)
    out, result, _ = refine_one(env, astronaut)
    assert result == "P1 face fixed (not verified)" and not np.array_equal(np.asarray(out), astronaut)
    on_pass(env, 1, lambda p: setattr(env.shared.state, "interrupted", True))  # Interrupt still works
    out, result, _ = refine_one(env, astronaut)
    assert np.array_equal(np.asarray(out), astronaut) and result == "P1 face not finished (stopped: interrupted)"


def test_controlnet_script_module_without_external_code(host, astronaut, monkeypatch):
    env = host()
    cn = env.rec.controlnet
    monkeypatch.delitem(type(cn).process.__globals__, "external_code")
    out, result, report = refine_one(env, astronaut)
    (part, _seam) = env.rec.passes
    assert (
        part.p.scripts is None
        and result == "P1 face fixed (not verified); no ControlNet in this WebUI: plain inpainting"
    )
    assert report["controlnet"][1:] == [
        "ControlNet is installed but not usable here (its script module has no external_code.ControlNetUnit); "
        "plain inpainting"
    ]


def test_forge_lib_controlnet_without_global_state(host, astronaut, monkeypatch):
    env = host("forge")
    lib = types.ModuleType("lib_controlnet")
    lib.external_code = sys.modules["lib_controlnet"].external_code
    monkeypatch.setitem(sys.modules, "lib_controlnet", lib)
    monkeypatch.delitem(sys.modules, "lib_controlnet.global_state")
    out, result, report = refine_one(env, astronaut)
    assert env.rec.passes[0].p.scripts is None and result.startswith("P1 face fixed (not verified); no ControlNet")
    (note,) = report["controlnet"][1:]
    assert note.startswith("ControlNet is installed but not usable here (Forge's lib_controlnet has changed")
    assert note.endswith("plain inpainting") and "\n" not in note


def test_controlnet_unit_class_that_rejects_our_arguments(host, astronaut, monkeypatch):
    env = host()

    class NewUnit:
        def __init__(self, **kwargs):
            if "pixel_perfect" in kwargs:
                raise TypeError("__init__() got an unexpected keyword argument 'pixel_perfect'")

    external_code = type(env.rec.controlnet).process.__globals__["external_code"]
    monkeypatch.setattr(external_code, "ControlNetUnit", NewUnit)
    out, result, report = refine_one(env, astronaut)
    assert [pass_.p.scripts for pass_ in env.rec.passes] == [None, None]
    assert result == "P1 face fixed (not verified); ControlNet units could not be made: plain inpainting"
    assert report["controlnet"][-1] == ("ControlNet units could not be made (TypeError: __init__() got an unexpected "
                                        "keyword argument 'pixel_perfect'); plain inpainting")  # fmt: skip


# --- out of memory ---------------------------------------------------------------------------------


def test_out_of_memory_stops_the_images_passes_frees_memory_and_keeps_the_verified_work(host, two_faces, astronaut):
    """A batch of two: the OOM in image 1's third pass (its second face) ends image 1's refinement
    (no further pass), memory is given back at once, the first face's fix stays; image 2 is refined."""
    env = host()
    gc_before_pass = []
    env.rec.before_pass.append(lambda p: gc_before_pass.append(env.rec.saved.count(("torch_gc",))))
    attempts = on_pass(env, 3, raise_(OutOfMemoryError(CUDA_OOM)))
    p = stand_ins.make_p(seeds=[1234, 99], batch_size=2)
    images = [Image.fromarray(two_faces), Image.fromarray(astronaut)]
    (first, second), _ = run_job(env, p, images, [True])
    assert first[2] == "P2 face fixed (not verified), P1 face not finished (stopped: out of memory)"
    out = np.asarray(first[0])
    assert unchanged_outside(out, two_faces, (534, 0, 937, 409))  # only P2's crop changed
    assert not np.array_equal(out[:, 534:937], two_faces[:, 534:937])
    assert np.array_equal(out[:, :512], two_faces[:, :512])  # P1's face untouched
    assert len(attempts) == 3 + 2  # no pass after the OOM for image 1; image 2: face + seam
    assert second[2] == "P1 face fixed (not verified)"
    assert env.rec.saved.count(("torch_gc",)) == 1 + 1 + 1  # at the OOM, after image 1, after image 2
    assert gc_before_pass == [0, 0, 0, 2, 2]


def test_out_of_memory_is_told_by_its_message_too(host, astronaut):
    env = host()
    on_pass(env, 1, raise_(RuntimeError("MPS backend out of memory (MPS allocated: 17.9 GB)")))
    out, result, report = refine_one(env, astronaut)
    assert np.array_equal(np.asarray(out), astronaut) and result == "P1 face not finished (stopped: out of memory)"
    assert report["stopped"] == "out of memory" and ("torch_gc",) in env.rec.saved


def test_another_runtime_error_is_one_failed_candidate_not_a_stop(host, astronaut):
    env = host()
    env.shared.opts.humanrefine_candidates = 2
    on_pass(env, 1, raise_(RuntimeError("Expected all tensors to be on the same device")))
    out, result, report = refine_one(env, astronaut)
    assert result == "P1 face fixed (not verified)" and report["stopped"] is None
    first, second = report["steps"][0]["candidates"]
    assert first["reason"].startswith("host failed (RuntimeError") and second["passed"]


# --- Interrupt and Skip ----------------------------------------------------------------------------


def test_skip_mid_refine_skips_the_rest_of_the_batch_and_keeps_both_images(host, astronaut):
    env = host()
    on_pass(env, 1, lambda p: env.shared.state.skip())
    p = stand_ins.make_p(seeds=[5, 6], batch_size=2)
    images = [Image.fromarray(astronaut), Image.fromarray(astronaut)]
    (first, second), _ = run_job(env, p, images, [True])
    assert first[0] is images[0] and first[2] == "P1 face not finished (stopped: skipped)"
    assert second[0] is images[1] and second[2] == "not run: skipped"
    assert len(env.rec.passes) == 1  # the pass Skip cut short (its result thrown away), no other


@pytest.fixture
def webui_app(host):
    """The routes as the WebUI mounts them (on_app_started) on a bare FastAPI app, refine through
    the stand-in host's nested passes."""
    fastapi = pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    def make(flavour="a1111"):
        env = host(flavour)
        app = fastapi.FastAPI()
        for fn in env.callbacks.registered["on_app_started"]:
            fn(None, app)
        env.client = TestClient(app)
        return env

    return make


def b64(array):
    import base64
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def decoded(text):
    import base64
    import io

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))).convert("RGB"))


@pytest.mark.parametrize("stop", ["interrupt", "skip"])
def test_refine_route_stopped_mid_refine_returns_the_image_as_it_was_then(webui_app, two_faces, stop):
    env = webui_app()
    on_pass(env, 3, lambda p: getattr(env.shared.state, stop)())  # during the second face's pass
    response = env.client.post("/humanrefine/v1/refine", json={
        "image": b64(two_faces), "seed": 7, "options": {"verify": False}})  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    reason = {"interrupt": "interrupted", "skip": "skipped"}[stop]
    assert body["info"] == f"P2 face fixed (not verified), P1 face not finished (stopped: {reason})"
    assert body["report"]["refinement"]["stopped"] == reason
    out = decoded(body["image"])
    assert np.array_equal(out[:, :512], two_faces[:, :512]) and not np.array_equal(out, two_faces)
    assert env.shared.state.jobs == ["humanrefine"] and env.shared.state.job == ""  # begun and ended
    assert ("torch_gc",) in env.rec.saved


def test_refine_route_says_what_it_does_in_the_hosts_progress_text(webui_app, astronaut, monkeypatch):
    from lib_humanrefine import service

    env = webui_app()
    seen = []
    diagnose_for = service.diagnose_for

    def diagnosing(*args, **kwargs):
        seen.append(env.shared.state.textinfo)
        return diagnose_for(*args, **kwargs)

    monkeypatch.setattr(service, "diagnose_for", diagnosing)
    on_pass(env, 1, lambda p: seen.append(env.shared.state.textinfo))
    response = env.client.post("/humanrefine/v1/refine", json={"image": b64(astronaut), "options": {"verify": False}})
    assert response.status_code == 200, response.text
    assert seen == ["HumanRefine: diagnosing", "HumanRefine: P1 face"]  # what /sdapi/v1/progress answers


def test_refine_route_out_of_memory_returns_the_image_and_says_so(webui_app, astronaut):
    env = webui_app()
    on_pass(env, 1, raise_(OutOfMemoryError(CUDA_OOM)))
    body = env.client.post("/humanrefine/v1/refine", json={"image": b64(astronaut)}).json()
    assert np.array_equal(decoded(body["image"]), astronaut)
    assert body["info"] == "P1 face not finished (stopped: out of memory)"
    assert body["report"]["refinement"]["stopped"] == "out of memory"


def test_controlnet_model_names_from_a_request_are_only_looked_up_in_the_hosts_list(webui_app, astronaut):
    """A path given as a model name opens nothing: it is compared with the host's model names."""
    env = webui_app()
    body = env.client.post("/humanrefine/v1/refine", json={"image": b64(astronaut), "options": {
        "depth_model": "../../../../etc/passwd", "pose_model": "control_v11p_sd15_openpose"}}).json()  # fmt: skip
    assert body["report"]["controlnet"][1:] == [
        "depth: model '../../../../etc/passwd' is not installed; running without depth control",
        "openpose: control_v11p_sd15_openpose [cab727d4]",
    ]


def test_diagnose_route_in_the_webui_reads_the_webuis_models_folder(host, tmp_path):
    """Before any generation has run, the route must already use --humanrefine-models-dir."""
    fastapi = pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    env = host()
    empty = tmp_path / "webui-models"
    env.shared.cmd_opts.humanrefine_models_dir = str(empty)
    app = fastapi.FastAPI()
    for fn in env.callbacks.registered["on_app_started"]:
        fn(None, app)
    response = TestClient(app).post("/humanrefine/v1/diagnose", json={"image": b64(np.zeros((64, 64, 3), np.uint8))})
    assert response.status_code == 503 and str(empty) in response.json()["detail"]


# --- a full disk -----------------------------------------------------------------------------------


class DiskFull:
    """Every file HumanRefine writes through the atomic writer fails half-way with ENOSPC."""

    def __init__(self, monkeypatch):
        real = os.fdopen

        def fdopen(fd, mode="r", *args, **kwargs):
            fh = real(fd, mode, *args, **kwargs)
            if "w" in mode:

                def write(data):
                    raise OSError(errno.ENOSPC, "No space left on device")

                fh.write = write
            return fh

        monkeypatch.setattr(os, "fdopen", fdopen)


def test_disk_full_while_saving_the_before_image_still_refines_and_says_so(host, astronaut):
    env = host()
    env.shared.opts.humanrefine_save_before = True

    def save_image(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    env.modules["images"].save_image = save_image
    out, result, report = refine_one(env, astronaut)
    assert not np.array_equal(np.asarray(out), astronaut)
    assert result == ("P1 face fixed (not verified); before-image not saved "
                      "(OSError: [Errno 28] No space left on device)")  # fmt: skip
    assert report["before_image"] == "before-image not saved (OSError: [Errno 28] No space left on device)"


def test_disk_full_while_saving_the_report_is_one_line(host, astronaut, capsys, monkeypatch):
    env = host()
    DiskFull(monkeypatch)  # params.txt cannot be put back either
    out, result, report = refine_one(env, astronaut)
    assert report is None and result == "P1 face fixed (not verified)"
    assert not np.array_equal(np.asarray(out), astronaut)  # the host saves the refined image itself
    lines = [line for line in capsys.readouterr().err.splitlines() if "could not write" in line]
    assert len(lines) == 1 and "00001-1234.humanrefine.json" in lines[0] and "the disk is full" in lines[0]
    assert [p.name for p in env.tmp.rglob("*.tmp")] == []


# --- a bug in our own glue -------------------------------------------------------------------------


def test_a_bug_in_the_per_image_glue_keeps_the_job_going(host, astronaut, monkeypatch):
    from lib_humanrefine import prompt_tags

    env = host()
    real, calls = prompt_tags.parse, []

    def parse(prompt):
        calls.append(prompt)
        if len(calls) == 1:
            raise IndexError("list index out of range")
        return real(prompt)

    p = stand_ins.make_p(seeds=[5, 6], batch_size=2)
    env.script.process(p, True)
    monkeypatch.setattr(prompt_tags, "parse", parse)  # fails on the first image's own prompt
    out = []
    for index in (0, 1):
        p.batch_index = index
        pp = SimpleNamespace(image=Image.fromarray(astronaut))
        env.script.postprocess_image_after_composite(p, pp, True)
        out.append((pp.image, infotext(p, index, "HumanRefine result")))
    assert np.array_equal(np.asarray(out[0][0]), astronaut)
    assert out[0][1] == "error - IndexError: list index out of range"
    assert out[1][1] == "P1 face fixed (not verified)"


def test_a_report_is_written_only_beside_the_image_it_belongs_to(host, tmp_path):
    """A job that never reached postprocess stays tracked; an image of a later job that gets the id
    of one of its images (that image gone) must get its own report, not the stale one."""
    from lib_humanrefine.options import ScriptArgs, Settings
    from lib_humanrefine.webui import JobState, hooks

    host()  # the WebUI modules the report writer imports
    image, gone = Image.new("RGB", (4, 4)), Image.new("RGB", (4, 4))
    stale = JobState(ScriptArgs(), Settings(save_report=True))
    stale.add_report(gone, {"from": "an earlier job"})
    stale.reports[id(image)] = stale.reports.pop(id(gone))  # as if ``image`` had been given ``gone``'s id
    current = JobState(ScriptArgs(), Settings(save_report=True))
    current.add_report(image, {"from": "this job"})
    hooks.track(stale)
    hooks.track(current)
    try:
        hooks.on_image_saved(SimpleNamespace(image=image, filename=str(tmp_path / "00001.png"), p=None))
    finally:
        hooks.untrack(stale)
        hooks.untrack(current)
    assert json.loads((tmp_path / "00001.humanrefine.json").read_text()) == {"from": "this job"}
