"""Faults injected while the command line works: missing or damaged models, LiteRT failing, a full
disk, Ctrl-C. Each ends in one line saying what failed and what to do, the right exit status, and
no half-written file; outputs already written stay intact."""

import errno
import json
import os
import shutil

import pytest
from PIL import Image
from test_bad_input_cli import one_error_line, strict_json

import lib_humanrefine.diagnose
from lib_humanrefine import models
from lib_humanrefine.detect import runtime
from lib_humanrefine.errors import HumanRefineError, ModelsMissing


@pytest.fixture
def three_photos(tmp_path, astronaut, grace_hopper):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(astronaut).save(folder / "a.png")
    Image.fromarray(grace_hopper).save(folder / "b.jpg")
    Image.fromarray(astronaut[:, ::-1]).save(folder / "c.png")
    return folder


@pytest.fixture
def model_copy(models_ready, tmp_path):
    """A private copy of the models folder that a test may damage."""
    folder = tmp_path / "models"
    shutil.copytree(models_ready, folder)
    return folder


def leftovers(folder):
    """Temporary files of the atomic writer still lying around (there must be none)."""
    return [p.name for p in folder.rglob("*.tmp")]


class FailingWrites:
    """os.fdopen whose Nth file write stores half the data and then fails (disk full, Ctrl-C...)."""

    def __init__(self, monkeypatch, fail_on: int, error: BaseException):
        self.calls, self.fail_on, self.error = 0, fail_on, error
        self.real = os.fdopen
        monkeypatch.setattr(os, "fdopen", self)

    def __call__(self, fd, mode="r", *args, **kwargs):
        fh = self.real(fd, mode, *args, **kwargs)
        if "w" not in mode:
            return fh
        self.calls += 1
        if self.calls != self.fail_on:
            return fh
        error, real_write = self.error, fh.write

        def write(data):
            real_write(data[: len(data) // 2])
            raise error

        fh.write = write
        return fh


# --- models ------------------------------------------------------------------------------------


def test_detector_model_missing(cli, model_copy, three_photos, tmp_path):
    (model_copy / "pose_landmark_full.tflite").unlink()
    code, _, err = cli("--models-dir", model_copy, "diagnose", three_photos, "--out", tmp_path / "out")
    line = one_error_line(err)
    assert code == 2 and "pose_landmark_full.tflite is missing" in line
    assert line.endswith(models.fetch_command(model_copy))


def test_tampered_model_is_refused_before_use(cli, model_copy, three_photos, tmp_path):
    path = model_copy / "hand_landmark_full.tflite"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, one bit changed
    path.write_bytes(bytes(data))
    models.set_models_dir(model_copy)
    with pytest.raises(ModelsMissing, match="SHA-256"):
        runtime.load("hand_landmark_full.tflite")
    assert not [key for key in runtime._cache if key[1] == str(path)]  # never handed to LiteRT
    code, _, err = cli("--models-dir", model_copy, "diagnose", three_photos, "--out", tmp_path / "out")
    assert code == 2 and "SHA-256" in one_error_line(err)


def test_unreadable_model_file(cli, model_copy, monkeypatch):
    real = models.sha256_of

    def no_permission(path):
        if path.name == "face_landmark.tflite":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(models, "sha256_of", no_permission)
    code, out, err = cli("--models-dir", model_copy, "models", "check")
    assert code == 2 and "face_landmark.tflite: unreadable (Permission denied)" in out and "Traceback" not in err
    with pytest.raises(ModelsMissing, match="unreadable"):
        models.model_path("face_landmark.tflite")


def test_unreadable_model_file_for_real_is_fixed_by_fetch(model_copy, models_ready):
    path = model_copy / "face_landmark.tflite"
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip("running as a user who can read any file")
    assert models.check(model_copy)["face_landmark.tflite"].startswith("unreadable")
    import zipfile

    wheel = model_copy.parent / "mp.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for m in models.MODELS.values():
            zf.writestr(m.member, (models_ready / m.name).read_bytes())
    assert models.fetch(model_copy, wheel=wheel) and not any(models.check(model_copy).values())


# --- LiteRT ------------------------------------------------------------------------------------


def test_litert_failing_to_load_a_model(cli, models_ready, three_photos, tmp_path, monkeypatch):
    class BrokenInterpreter:
        def __init__(self, model_path, num_threads):
            raise ValueError(f"Could not open '{model_path}'.\nMore detail on a second line")

    monkeypatch.setattr(runtime, "_cache", {})
    monkeypatch.setattr(runtime, "_interpreter_class", lambda: BrokenInterpreter)
    code, _, err = cli("diagnose", three_photos, "--out", tmp_path / "out")
    line = one_error_line(err)
    assert code == 2 and "LiteRT could not load the model" in line and "palm_detection_full.tflite" in line  # the first
    assert "models fetch --force" in line and "ai-edge-litert==" in line
    report = strict_json(tmp_path / "out" / "report.json")
    assert report["complete"] is False and report["images"] == []


def test_litert_failing_while_running(cli, models_ready, three_photos, tmp_path, monkeypatch):
    model = runtime.load("pose_detection.tflite")

    def invoke():
        raise RuntimeError("Node number 12 (CONV_2D) failed to invoke.")

    monkeypatch.setattr(model.interpreter, "invoke", invoke)
    code, _, err = cli("diagnose", three_photos, "--out", tmp_path / "out")
    line = one_error_line(err)
    assert code == 2 and "LiteRT failed running the model pose_detection.tflite" in line
    assert "pip install --force-reinstall ai-edge-litert==" in line
    assert strict_json(tmp_path / "out" / "report.json")["complete"] is False
    with pytest.raises(HumanRefineError, match="CONV_2D"):  # the library says the same
        model.run(runtime.np.zeros(model.input_shape, runtime.np.float32))


# --- a full disk -------------------------------------------------------------------------------


def test_disk_full_while_saving_an_overlay(cli, models_ready, three_photos, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    FailingWrites(monkeypatch, fail_on=2, error=OSError(errno.ENOSPC, "No space left on device"))
    code, _, err = cli("diagnose", three_photos, "--out", out, "--no-tta")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err
    assert (
        lines[0].startswith("error: could not write")
        and "0001_b_overlay.png" in lines[0]
        and "disk is full" in lines[0]
    )
    assert leftovers(out) == [] and not (out / "0001_b_overlay.png").exists()
    Image.open(out / "0000_a_overlay.png").verify()  # the overlay written before is whole
    report = strict_json(out / "report.json")
    assert report["complete"] is False and [e.get("overlay") for e in report["images"]] == ["0000_a_overlay.png", None]


def test_disk_full_while_saving_the_report_keeps_the_old_one(cli, models_ready, three_photos, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text('{"old": true}')
    FailingWrites(monkeypatch, fail_on=4, error=OSError(errno.ENOSPC, "No space left on device"))
    code, _, err = cli("diagnose", three_photos, "--out", out, "--no-tta")
    line = one_error_line(err)
    assert code == 2 and "report.json" in line and "disk is full" in line
    assert json.loads((out / "report.json").read_text()) == {"old": True} and leftovers(out) == []
    assert len(list(out.glob("*_overlay.png"))) == 3


def test_disk_full_while_writing_bench_json(cli, models_ready, three_photos, tmp_path, monkeypatch):
    (three_photos / "labels.csv").write_text("path,label\na.png,1\nb.jpg,0\n")
    (tmp_path / "bench.json").write_text('{"old": true}')
    FailingWrites(monkeypatch, fail_on=1, error=OSError(errno.ENOSPC, "No space left on device"))
    code, _, err = cli("bench", "--data", three_photos, "--json", tmp_path / "bench.json", "--no-tta")
    last = err.strip().splitlines()[-1]  # after one progress line per image
    assert code == 2 and last.startswith("error: could not write") and "bench.json" in last and "Traceback" not in err
    assert json.loads((tmp_path / "bench.json").read_text()) == {"old": True} and leftovers(tmp_path) == []


# --- Ctrl-C --------------------------------------------------------------------------------------


def interrupt_on_call(monkeypatch, n: int):
    real, calls = lib_humanrefine.diagnose.diagnose_image, []

    def diagnose_image(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(lib_humanrefine.diagnose, "diagnose_image", diagnose_image)


def test_ctrl_c_mid_folder_keeps_a_partial_report(cli, models_ready, three_photos, tmp_path, monkeypatch):
    out = tmp_path / "out"
    interrupt_on_call(monkeypatch, 2)
    code, _, err = cli("diagnose", three_photos, "--out", out, "--no-tta")
    assert code == 130 and err.strip() == "interrupted after 1 of 3 image(s)"
    report = strict_json(out / "report.json")
    assert report["complete"] is False and [os.path.basename(e["path"]) for e in report["images"]] == ["a.png"]
    assert sorted(p.name for p in out.iterdir()) == ["0000_a_overlay.png", "report.json"]


def test_ctrl_c_while_writing_the_report(cli, models_ready, three_photos, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text('{"old": true}')
    FailingWrites(monkeypatch, fail_on=2, error=KeyboardInterrupt())
    code, _, _ = cli("diagnose", three_photos / "a.png", "--out", out, "--no-tta")
    assert code == 130 and json.loads((out / "report.json").read_text()) == {"old": True} and leftovers(out) == []


def test_ctrl_c_mid_plan_leaves_only_complete_plans(cli, models_ready, three_photos, tmp_path, monkeypatch):
    out = tmp_path / "plans"
    interrupt_on_call(monkeypatch, 3)
    code, _, err = cli("plan", three_photos, "--out", out)
    assert code == 130 and "their plans are complete" in err
    assert sorted(p.parent.name for p in out.glob("*/plan.json")) == ["0000_a", "0001_b"] and leftovers(out) == []


def test_a_bug_on_one_image_does_not_cost_the_others(cli, models_ready, three_photos, tmp_path, monkeypatch):
    real = lib_humanrefine.diagnose.diagnose_image

    def diagnose_image(image, *args, **kwargs):
        if image.shape[:2] != (512, 512):
            raise IndexError("index 7 is out of bounds")
        return real(image, *args, **kwargs)

    monkeypatch.setattr(lib_humanrefine.diagnose, "diagnose_image", diagnose_image)
    code, _, err = cli("diagnose", three_photos, "--out", tmp_path / "out", "--no-tta")
    line = one_error_line(err)
    assert code == 2 and "b.jpg: diagnosis failed (IndexError: index 7 is out of bounds); please report" in line
    report = strict_json(tmp_path / "out" / "report.json")
    assert len(report["images"]) == 2 and report["complete"] is True and len(report["skipped"]) == 1


def test_a_real_ctrl_c_in_a_fresh_process(models_ready, tmp_path, astronaut):
    import signal
    import subprocess
    import sys

    from conftest import REPO

    if sys.platform == "win32":
        pytest.skip("SIGINT is POSIX")
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(80):  # enough that a busy machine cannot finish them all before the signal lands
        Image.fromarray(astronaut[:, ::-1] if i % 2 else astronaut).save(folder / f"{i:02d}.png")
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "lib_humanrefine", "diagnose", str(folder), "--out", str(out), "--no-tta"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    process.stdout.readline()  # the table header
    process.stdout.readline()  # the first image is done
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in err and "interrupted after" in err
    report = strict_json(out / "report.json")
    assert report["complete"] is False and 1 <= len(report["images"]) < 80 and leftovers(out) == []
    assert {e["overlay"] for e in report["images"]} <= {p.name for p in out.glob("*_overlay.png")}
