"""Face detection + face mesh with the real models on real images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lib_humanrefine.images import load_image

# Face-mesh indices: eye outer corners (person's right, left), nose tip, outer lip edges, chin, forehead.
RIGHT_EYE, LEFT_EYE, NOSE, UPPER_LIP, LOWER_LIP, CHIN, FOREHEAD = 33, 263, 1, 0, 17, 152, 10


@pytest.fixture(scope="module")
def faces(models_ready):
    from lib_humanrefine.detect import faces

    return faces


# MediaPipe 0.10.21's own runtime on skimage's astronaut (mp.solutions, static mode), for agreement.
MP_MESH_INDICES = [1, 10, 33, 61, 152, 234, 263, 291, 454]
MP_MESH = [
    [224.1, 131.18, -23.31], [227.5, 72.43, -11.2], [194.65, 100.94, 3.93], [201.85, 139.45, 6.93],
    [221.34, 175.49, 8.71], [179.03, 111.05, 41.35], [256.71, 104.08, 4.48], [245.91, 142.24, 7.18],
    [270.86, 116.26, 42.08],
]  # fmt: skip
MP_DETECTION = {  # FaceDetection(model_selection=0) on the 512² image
    "score": 0.9217,
    "box": [177.57, 82.87, 272.91, 178.22],
    "kps": [[201.5, 104.9], [245.85, 109.1], [220.43, 127.26], [219.82, 148.61], [178.19, 115.72], [272.2, 123.87]],
}
MP_EXACT = {  # on the image already at the model's input size (INTER_AREA), normalised coords
    128: {"score": 0.9226, "box": [0.3478, 0.158, 0.5315, 0.3418], "kps": [
        [0.3982, 0.1969], [0.4843, 0.2118], [0.4335, 0.2435], [0.4275, 0.2842], [0.3474, 0.2134], [0.5295, 0.2436]]},
    192: {"score": 0.9065, "box": [0.3361, 0.1294, 0.5429, 0.3362], "kps": [
        [0.3946, 0.2006], [0.4844, 0.2072], [0.4353, 0.2585], [0.4313, 0.2909], [0.3452, 0.2056], [0.5305, 0.2188]]},
}  # fmt: skip


def _face_size(face) -> float:
    x0, y0, x1, y1 = face.box
    return float(np.sqrt((x1 - x0) * (y1 - y0)))


def _assert_upright_mesh(face):
    lm = face.landmarks
    assert lm is not None and lm.shape == (468, 3)
    assert face.mesh_score >= 0.5
    y = lm[:, 1]
    assert y[FOREHEAD] < max(y[RIGHT_EYE], y[LEFT_EYE]) < y[NOSE] < y[UPPER_LIP] < y[LOWER_LIP] < y[CHIN]
    # Unmirrored image: the person's right eye is on the image's left.
    assert lm[RIGHT_EYE, 0] < lm[NOSE, 0] < lm[LEFT_EYE, 0]
    assert face.keypoints[0, 0] < face.keypoints[1, 0]
    # Detector keypoints agree with the mesh (eyes within 15 % of the face size).
    size = _face_size(face)
    assert np.linalg.norm(face.keypoints[0] - lm[[33, 133], :2].mean(0)) < 0.15 * size
    assert np.linalg.norm(face.keypoints[1] - lm[[263, 362], :2].mean(0)) < 0.15 * size


def test_astronaut_one_face_upper_left(faces, astronaut):
    found = faces.detect_faces(astronaut)
    assert len(found) == 1
    face = found[0]
    h, w = astronaut.shape[:2]
    x0, y0, x1, y1 = face.box_xyxy
    assert 0 < x0 < x1 < w / 2 + 40 and 0 < y0 < y1 < h / 2  # her face: upper left of centre
    assert 60 < x1 - x0 < 160
    assert face.score > 0.8
    _assert_upright_mesh(face)


def test_grace_hopper(faces, grace_hopper):
    found = faces.detect_faces(grace_hopper)
    assert len(found) == 1
    face = found[0]
    cx, cy = (face.box_xyxy[0] + face.box_xyxy[2]) / 2, (face.box_xyxy[1] + face.box_xyxy[3]) / 2
    assert 220 < cx < 310 and 190 < cy < 290
    _assert_upright_mesh(face)


def test_no_face_in_coffee(faces):
    skimage_data = pytest.importorskip("skimage.data")
    assert faces.detect_faces(skimage_data.coffee()) == []


@pytest.mark.parametrize("degrees", [-40, 30])
def test_rotated_face_maps_back(faces, astronaut, degrees):
    """Rotating the image about the face must rotate the mesh with it: checks the eye-line ROI
    rotation and the projection back to image pixels. (BlazeFace itself is trained on roughly
    upright faces; at 90° its keypoints are off and the mesh with them.)"""
    upright = faces.detect_faces(astronaut)[0]
    centre = upright.landmarks[:, :2].mean(0)
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), degrees, 1.0)
    found = faces.detect_faces(cv2.warpAffine(astronaut, matrix, astronaut.shape[1::-1]))
    assert len(found) == 1 and found[0].landmarks is not None
    inverse = cv2.invertAffineTransform(matrix)
    back = found[0].landmarks[:, :2] @ inverse[:, :2].T + inverse[:, 2]
    err = np.linalg.norm(back - upright.landmarks[:, :2], axis=1).mean()
    assert err < 0.03 * _face_size(upright)


def test_scale_invariance_through_downscale(faces, astronaut):
    """A 2x upscaled image (downscaled internally by an integer factor) gives the same face, 2x."""
    big = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    small_face = faces.detect_faces(astronaut)[0]
    big_face = faces.detect_faces(big)[0]
    size = _face_size(small_face)
    assert np.abs(np.array(big_face.box_xyxy) / 2 - small_face.box_xyxy).max() < 0.1 * size
    err = np.linalg.norm(big_face.landmarks[:, :2] / 2 - small_face.landmarks[:, :2], axis=1).mean()
    assert err < 0.05 * size


@pytest.mark.parametrize("size", [128, 192])
def test_detectors_match_mediapipe(faces, astronaut, size):
    """With an input already at the model's size both runtimes see the same tensor, so anchors,
    decoding and weighted NMS must reproduce MediaPipe's detection to rounding."""
    spec = faces.SHORT_RANGE if size == 128 else faces.FULL_RANGE
    image = cv2.resize(astronaut, (size, size), interpolation=cv2.INTER_AREA)
    best = faces.run_detector(image, spec, 0.5)[0]
    ref = MP_EXACT[size]
    assert best.score == pytest.approx(ref["score"], abs=2e-3)
    np.testing.assert_allclose(best.box / size, ref["box"], atol=2e-3)
    np.testing.assert_allclose(best.keypoints / size, ref["kps"], atol=2e-3)


def test_mesh_matches_mediapipe(faces, astronaut):
    """Given MediaPipe's detection, our ROI, crop and projection reproduce its face mesh."""
    from lib_humanrefine.detect.geometry import RawDetection

    det = RawDetection(MP_DETECTION["score"], np.array(MP_DETECTION["box"]), np.array(MP_DETECTION["kps"]))
    landmarks, presence = faces.face_mesh(astronaut, faces.face_roi(det))
    assert presence > 0.99
    np.testing.assert_allclose(landmarks[MP_MESH_INDICES], MP_MESH, atol=0.3)  # px, on a ~95 px face


def test_shrink_maps_pixels(faces):
    image = np.zeros((1030, 777, 3), dtype=np.uint8)
    small, factor = faces.shrink(image)
    assert factor == 2 and small.shape[:2] == (515, 388)
    assert faces.shrink(image[:500, :500])[1] == 1


@pytest.mark.parametrize("shape", [(20, 20000), (16, 8000), (8000, 16), (17, 3000)])
def test_a_strip_inside_the_limits_shrinks_to_at_least_one_row(faces, astronaut, shape):
    """The factor never exceeds the short side (OpenCV refused the empty resize: ``!ssize.empty()``)."""
    strip = cv2.resize(astronaut, shape[::-1], interpolation=cv2.INTER_AREA)
    small, factor = faces.shrink(strip)
    assert min(small.shape[:2]) >= 1 and factor <= min(shape) and small.shape[0] * factor <= shape[0]
    assert faces.detect_faces(strip) == []


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("real/zidane.jpg", 2),
        ("real/bus.jpg", 2),  # ~60 px faces in 810x1080: full-range model
        ("real/insightface_t1.jpg", 5),
        ("gen/hastings_sc_pizza_08.png", 5),  # five close, overlapping faces
        ("gen/hastings_sc_hug_08.png", 2),  # cheek to cheek: the full-range box straddles both
    ],
)
def test_group_photos(faces, shared_data, name, count):
    found = faces.detect_faces(load_image(shared_data / name))
    assert len(found) == count
    assert all(f.landmarks is not None for f in found)
    assert [f.score for f in found] == sorted((f.score for f in found), reverse=True)


def test_small_faces_in_full_body_shot(faces, shared_data):
    found = faces.detect_faces(load_image(shared_data / "gen/hastings_sdxl_volleyball_02.jpg"))
    assert len(found) >= 3
    assert all(40 < f.box_xyxy[2] - f.box_xyxy[0] < 80 for f in found)


@pytest.mark.parametrize("name", ["ai/foundhand_1.jpg", "ai/foundhand_9.jpg", "real/opencvdoc_handSrc.jpg"])
def test_hands_are_not_faces(faces, shared_data, name):
    """The short-range model fires on these hands (score > 0.5); the mesh check must drop them."""
    image = load_image(shared_data / name)
    small, factor = faces.shrink(image)
    assert faces.detect_faces(image) == []
    if name.startswith("ai/"):
        assert faces.run_detector(small, faces.SHORT_RANGE, 0.5, factor)


def test_max_faces(faces, shared_data):
    image = load_image(shared_data / "real/insightface_t1.jpg")
    every = faces.detect_faces(image)
    two = faces.detect_faces(image, max_faces=2)
    assert len(every) == 5 and len(two) == 2
    assert [f.box_xyxy for f in two] == [f.box_xyxy for f in every[:2]]
