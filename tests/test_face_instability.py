"""Face-mesh re-run (instability) signal: exact arithmetic with a stubbed mesh model, and on a
real photograph a normal face stays stable while the same face blurred into a smear does not."""

import cv2
import numpy as np
import pytest
from synthetic import face_with_eyes

from lib_humanrefine.diagnose import faces as face_diag


def test_instability_is_mean_shift_over_face_size(monkeypatch):
    face = face_with_eyes()
    x0, y0, x1, y1 = face.box
    size = max(x1 - x0, y1 - y0)
    shift = 0.08 * size
    calls = []

    def fake_mesh(image, roi):
        calls.append(roi)
        moved = face.landmarks.copy()
        moved[:, 0] += shift
        return moved, 0.99

    monkeypatch.setattr(face_diag, "face_mesh", fake_mesh)
    signal = face_diag.instability_signal(np.zeros((400, 400, 3), np.uint8), face)
    assert len(calls) == 3
    assert signal.value == pytest.approx(0.08, abs=1e-4)
    expected = (0.08 - face_diag.INSTABILITY_START) / (face_diag.INSTABILITY_FULL - face_diag.INSTABILITY_START)
    assert signal.score == pytest.approx(expected, abs=1e-3)
    assert "8% of face size" in signal.reason
    names = {s.name for s in face_diag.face_signals(face, np.zeros((400, 400, 3), np.uint8))}
    assert "face_instability" in names and "face_instability" not in {s.name for s in face_diag.face_signals(face)}


def test_real_face_is_stable_and_smeared_face_is_not(models_ready, grace_hopper):
    from lib_humanrefine.detect.faces import detect_faces

    face = detect_faces(grace_hopper)[0]
    stable = face_diag.instability_signal(grace_hopper, face)
    assert stable.score == 0.0, stable.reason
    smeared = grace_hopper.copy()
    x0, y0, x1, y1 = (int(v) for v in face.box)
    inner = smeared[y0:y1, x0:x1]
    smeared[y0:y1, x0:x1] = cv2.blur(inner, (max(3, (x1 - x0) // 3),) * 2)
    assert face_diag.instability_signal(smeared, face).value > 1.5 * stable.value
