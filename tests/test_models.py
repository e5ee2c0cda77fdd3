import shutil
import zipfile

import pytest

from lib_humanrefine import models
from lib_humanrefine.errors import ModelsMissing


def test_registry_pins_every_detector_model():
    assert {
        "palm_detection_full.tflite",
        "hand_landmark_full.tflite",
        "pose_detection.tflite",
        "pose_landmark_full.tflite",
        "face_detection_short_range.tflite",
        "face_landmark.tflite",
    } <= set(models.MODELS)
    for m in models.MODELS.values():
        assert len(m.sha256) == 64 and m.member.startswith("mediapipe/modules/")


def test_check_reports_missing_and_corrupt(models_ready, tmp_path):
    for name in models.MODELS:
        shutil.copy(models_ready / name, tmp_path / name)
    assert not any(models.check(tmp_path).values())
    (tmp_path / "pose_detection.tflite").unlink()
    data = bytearray((tmp_path / "face_landmark.tflite").read_bytes())
    data[1000] ^= 0xFF
    (tmp_path / "face_landmark.tflite").write_bytes(bytes(data))
    problems = models.check(tmp_path)
    assert problems["pose_detection.tflite"] == "missing"
    assert "SHA-256 mismatch" in problems["face_landmark.tflite"]
    assert problems["hand_landmark_full.tflite"] is None


def test_model_path_message_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv(models.ENV_MODELS_DIR, str(tmp_path))
    models.set_models_dir(None)
    with pytest.raises(ModelsMissing) as err:
        models.model_path("palm_detection_full.tflite")
    message = str(err.value)
    assert "models fetch" in message and str(tmp_path) in message and "\n" not in message


def test_extract_rejects_a_tampered_wheel(models_ready, tmp_path):
    wheel = tmp_path / "mediapipe-0.10.21-fake.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for m in models.MODELS.values():
            data = (models_ready / m.name).read_bytes()
            zf.writestr(m.member, data if m.name != "palm_detection_full.tflite" else data[:-1] + b"x")
    with pytest.raises(ModelsMissing, match="palm_detection_full"):
        models.extract_from_wheel(wheel, tmp_path / "out")


def test_extract_from_a_good_wheel(models_ready, tmp_path):
    wheel = tmp_path / "mediapipe-0.10.21-copy.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for m in models.MODELS.values():
            zf.writestr(m.member, (models_ready / m.name).read_bytes())
    out = tmp_path / "out"
    assert sorted(models.fetch(out, wheel=wheel)) == sorted(models.MODELS)
    assert models.fetch(out, wheel=wheel) == []  # intact: nothing rewritten
