import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from lib_humanrefine.errors import BadImage
from lib_humanrefine.images import find_images, load_image, to_rgb_array


def test_corrupt_file_gives_one_line_reason(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(BadImage) as err:
        load_image(bad)
    assert "broken.png" in str(err.value) and "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(BadImage, match="no such file"):
        load_image(tmp_path / "nope.jpg")


def test_odd_modes_become_rgb_uint8(tmp_path):
    gray16 = Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 0))  # fully transparent red -> white
    palette = Image.new("P", (32, 32))
    for img, name in ((gray16, "g16.png"), (rgba, "rgba.png"), (palette, "p.png")):
        img.save(tmp_path / name)
        arr = load_image(tmp_path / name)
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
    assert (load_image(tmp_path / "rgba.png") == 255).all()
    assert load_image(tmp_path / "g16.png").max() == 255


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (60, 20), (0, 0, 0))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load_image(tmp_path / "rot.jpg").shape[:2] == (60, 20)


def test_too_small_and_wrong_shapes():
    with pytest.raises(BadImage, match="too small"):
        to_rgb_array(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(BadImage, match="unsupported"):
        to_rgb_array(np.zeros((32, 32, 2), np.uint8))
    assert to_rgb_array(np.ones((32, 32), np.float32)).max() == 255


def test_find_images_walks_folders(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (20, 20)).save(tmp_path / "sub" / "a.png")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in find_images([tmp_path])] == ["a.png"]
    with pytest.raises(BadImage):
        find_images([tmp_path / "missing"])


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 80), st.integers(1, 80), st.sampled_from([None, 1, 2, 3, 4, 5]),
    st.sampled_from([np.uint8, np.uint16, np.float32, np.int64]),
)  # fmt: skip
def test_any_array_becomes_rgb_or_a_clear_error(h, w, channels, dtype):
    shape = (h, w) if channels is None else (h, w, channels)
    array = (np.random.default_rng(h * w).random(shape) * 300).astype(dtype)
    try:
        out = to_rgb_array(array)
    except BadImage as exc:
        assert "\n" not in str(exc)
        assert min(h, w) < 16 or channels in (2, 5)
    else:
        assert out.shape == (h, w, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("shape", [(16, 16, 3), (16, 1500, 3), (1500, 16, 3), (17, 33, 3), (2048, 2048, 3)])
def test_odd_shapes_diagnose_and_plan_without_error(models_ready, shape):
    from lib_humanrefine.diagnose import diagnose_image
    from lib_humanrefine.plan import PlanOptions, make_plan

    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    detections, diagnosis = diagnose_image(image)
    assert diagnosis.verdict in ("ok", "suspect") and (diagnosis.width, diagnosis.height) == shape[1::-1]
    make_plan(image, detections, diagnosis, PlanOptions(policy="all"))
