"""Bad and odd images through the library: each is read correctly or refused with one clear line."""

import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from lib_humanrefine.errors import BadArgument, BadImage
from lib_humanrefine.images import MAX_PIXELS, find_images, load_image, to_rgb_array


def one_line_refusal(path, match: str) -> str:
    with pytest.raises(BadImage) as err:
        load_image(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and match in message, message
    return message


def png_header_only(path, width: int, height: int):
    """A PNG whose header claims width x height (no pixel data): what a decompression bomb looks like to Pillow."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    return path


# --- damaged, empty, mislabelled files ---------------------------------------------------------


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    one_line_refusal(tmp_path / "empty.png", "empty file")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(tmp_path, astronaut, fmt):
    path = tmp_path / f"cut.{fmt.lower()}"
    Image.fromarray(astronaut).save(path, format=fmt)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    one_line_refusal(path, "truncated")


def test_png_that_is_a_jpeg_is_read_by_its_content(tmp_path, astronaut):
    Image.fromarray(astronaut).save(tmp_path / "photo.png", format="JPEG")
    Image.fromarray(astronaut).save(tmp_path / "photo.jpg", format="JPEG")
    assert np.array_equal(load_image(tmp_path / "photo.png"), load_image(tmp_path / "photo.jpg"))


def test_jpg_that_is_text(tmp_path):
    (tmp_path / "notes.jpg").write_text("this is not a picture\n")
    one_line_refusal(tmp_path / "notes.jpg", "not an image file")


def test_folder_given_as_an_image(tmp_path):
    (tmp_path / "pics.png").mkdir()
    one_line_refusal(tmp_path / "pics.png", "is a folder")


# --- sizes -------------------------------------------------------------------------------------


def test_one_pixel_image_states_the_limits(tmp_path):
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    message = one_line_refusal(tmp_path / "dot.png", "too small")
    assert "16 px" in message and "64 megapixels" in message


@pytest.mark.parametrize(
    "size",
    [(9000, 9000), (10_000, 10_000), (20_000, 20_000)],
    ids=["over-our-limit", "pillow-warns", "pillow-decompression-bomb"],
)
def test_too_large_images_are_refused_before_decoding(tmp_path, size):
    path = png_header_only(tmp_path / "huge.png", *size)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not leak out
        message = one_line_refusal(path, "too large")
    assert "64 megapixels" in message


def test_largest_allowed_array_is_accepted_and_one_more_row_is_not():
    side = int(MAX_PIXELS**0.5)
    assert to_rgb_array(np.zeros((side, side, 3), np.uint8)).shape == (side, side, 3)
    with pytest.raises(BadImage, match="too large"):
        to_rgb_array(np.zeros((side + 1, side, 3), np.uint8))


# --- pixel types and every Pillow mode ---------------------------------------------------------


def test_float_tiff_in_0_1_is_not_black(tmp_path):
    values = np.linspace(0.0, 1.0, 64 * 64, dtype=np.float32).reshape(64, 64)
    Image.fromarray(values, mode="F").save(tmp_path / "float.tif")
    out = load_image(tmp_path / "float.tif")
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255 and abs(int(out[32, 0, 0]) - 128) <= 2


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.full((32, 32, 3), 0.5, np.float32), 128),  # 0-1 floats
        (np.full((32, 32, 3), 200.0, np.float64), 200),  # 0-255 floats
        (np.full((32, 32), np.nan, np.float32), 0),  # NaN
        (np.full((32, 32, 3), 65535, np.uint16), 255),  # 16-bit, by its range
        (np.full((32, 32, 3), 257 * 100, np.uint16), 100),
        (np.ones((32, 32), bool), 255),
        (np.full((32, 32, 1), 77, np.int64), 77),
    ],
    ids=["float01", "float255", "nan", "uint16-max", "uint16-mid", "bool", "int-1-channel"],
)
def test_numeric_arrays_by_their_range(values, expected):
    out = to_rgb_array(values)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8 and (out == expected).all()


RED = (255, 0, 0)
MODES = {  # mode -> (a pixel value meaning red, or a number; the expected RGB)
    "1": (1, (255, 255, 255)),
    "L": (76, (76, 76, 76)),
    "LA": ((76, 255), (76, 76, 76)),
    "P": (None, RED),
    "PA": (None, RED),
    "RGBA": ((255, 0, 0, 0), (255, 255, 255)),  # fully transparent: white background
    "I;16": (65535, (255, 255, 255)),
    "I": (257 * 60, (60, 60, 60)),
    "F": (0.25, (64, 64, 64)),
    "CMYK": ((0, 255, 255, 0), RED),
    "YCbCr": ((76, 85, 255), (254, 0, 0)),
    "RGBX": ((255, 0, 0, 0), RED),
    "LAB": ((255, 128, 128), (254, 255, 254)),
    "HSV": ((0, 255, 255), RED),
    "I;16B": (65535, (255, 255, 255)),
}


def make_mode(mode: str) -> Image.Image:
    value, _ = MODES[mode]
    if mode in ("P", "PA"):
        image = Image.new("RGB", (40, 30), RED).convert(mode)
    else:
        image = Image.new(mode, (40, 30), value)
    return image


@pytest.mark.parametrize("mode", list(MODES))
def test_every_pillow_mode_in_memory(mode):
    out = to_rgb_array(make_mode(mode))
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8
    assert np.abs(out[10, 10].astype(int) - MODES[mode][1]).max() <= 2, out[10, 10]


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "RGBA", "I;16", "I", "F", "CMYK", "I;16B"])
def test_every_pillow_mode_from_a_file(tmp_path, mode):
    path = tmp_path / f"{mode.replace(';', '_')}.tif"
    make_mode(mode).save(path)
    assert np.abs(load_image(path)[10, 10].astype(int) - MODES[mode][1]).max() <= 2


def test_unconvertible_mode_and_shapes_say_so():
    with pytest.raises(BadImage, match="unsupported image shape"):
        to_rgb_array(np.zeros((32, 32, 2), np.uint8))
    with pytest.raises(BadImage, match="unsupported image shape"):
        to_rgb_array(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(BadImage, match="unsupported pixel type"):
        to_rgb_array(np.zeros((32, 32, 3), np.complex64))


# --- orientation, animation, folders -----------------------------------------------------------


def test_exif_rotation_turns_the_pixels(tmp_path):
    image = Image.new("RGB", (60, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 10, 20))  # red on the left
    exif = image.getexif()
    exif[0x0112] = 3  # displayed rotated by 180 degrees
    image.save(tmp_path / "upside.png", exif=exif)
    out = load_image(tmp_path / "upside.png")
    assert out.shape == (20, 60, 3) and out[10, -3, 0] > 200 and out[10, 3, 2] > 200  # red now on the right


@pytest.mark.parametrize("suffix", [".gif", ".png", ".webp"])
def test_animated_images_give_their_first_frame(tmp_path, suffix):
    frames = [Image.new("RGB", (48, 48), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(tmp_path / f"anim{suffix}", save_all=True, append_images=frames[1:], lossless=True)
    assert Image.open(tmp_path / f"anim{suffix}").n_frames == 3
    out = load_image(tmp_path / f"anim{suffix}")
    assert out[5, 5, 0] > 240 and out[5, 5, 1] < 15


def test_folders_include_gifs_like_files_do(tmp_path):
    Image.new("RGB", (20, 20)).save(tmp_path / "a.gif")
    Image.new("RGB", (20, 20)).save(tmp_path / "b.PNG")
    assert [p.name for p in find_images([tmp_path])] == ["a.gif", "b.PNG"]
    assert len(find_images([tmp_path, tmp_path / "a.gif"])) == 2  # each file once


# --- the library's entry points ----------------------------------------------------------------


def test_diagnose_image_reads_what_to_rgb_array_reads(models_ready, astronaut):
    from lib_humanrefine.diagnose import diagnose_image

    _, reference = diagnose_image(astronaut, tta=False)
    _, from_floats = diagnose_image(astronaut / 255.0, tta=False)
    _, from_pil = diagnose_image(Image.fromarray(astronaut), tta=False)
    for other in (from_floats, from_pil):
        assert len(other.parts) == len(reference.parts) and other.score == pytest.approx(reference.score, abs=0.02)


@pytest.mark.parametrize("threshold", [float("nan"), 1.5, -0.1, "0.5", None])
def test_diagnose_image_refuses_a_bad_threshold(models_ready, threshold):
    from lib_humanrefine.diagnose import diagnose_image

    with pytest.raises(BadArgument, match="threshold"):
        diagnose_image(np.zeros((64, 64, 3), np.uint8), threshold=threshold)


def test_diagnose_image_refuses_a_wrong_shape(models_ready):
    from lib_humanrefine.diagnose import diagnose_image

    with pytest.raises(BadImage, match="unsupported image shape"):
        diagnose_image(np.zeros((64, 64, 2), np.uint8))


def test_no_people(models_ready):
    from lib_humanrefine.diagnose import diagnose_image

    detections, diagnosis = diagnose_image(np.full((512, 512, 3), 200, np.uint8))
    assert diagnosis.verdict == "ok" and diagnosis.parts == [] and detections.people == []


def test_a_crowd_of_twenty_five_people(models_ready, astronaut):
    """A 5 x 5 tiling: valid result; at most 6 people are analysed (docs/cli.md, input limits)."""
    from lib_humanrefine.diagnose import diagnose_image
    from lib_humanrefine.diagnose.report import image_dict
    from lib_humanrefine.plan import PlanOptions, make_plan

    crowd = np.tile(astronaut, (5, 5, 1))
    detections, diagnosis = diagnose_image(crowd)
    assert len(detections.people) <= 6 and diagnosis.verdict in ("ok", "suspect")
    assert image_dict(diagnosis)["width"] == 2560
    make_plan(crowd, detections, diagnosis, PlanOptions(policy="all"))


def test_make_plan_refuses_another_images_diagnosis(models_ready, astronaut):
    from lib_humanrefine.diagnose import diagnose_image
    from lib_humanrefine.plan import PlanOptions, make_plan

    detections, diagnosis = diagnose_image(astronaut, tta=False)
    with pytest.raises(BadImage, match="512x512"):
        make_plan(astronaut[:256], detections, diagnosis, PlanOptions())


def test_make_plan_names_every_bad_option(models_ready, astronaut):
    from lib_humanrefine.diagnose import diagnose_image
    from lib_humanrefine.plan import PlanOptions, make_plan

    detections, diagnosis = diagnose_image(astronaut, tta=False)
    options = PlanOptions(model="sd4", policy="most", steps=0, candidates=2.5, cfg_scale=float("nan"))
    with pytest.raises(BadArgument) as err:
        make_plan(astronaut, detections, diagnosis, options)
    message = str(err.value)
    assert "\n" not in message
    for name in ("model", "policy", "steps", "candidates", "cfg_scale"):
        assert name in message


def test_a_very_large_photo_is_diagnosed_like_the_small_one(models_ready, astronaut):
    import cv2

    from lib_humanrefine.diagnose import diagnose_image

    scale = 7000 / 512  # 49 megapixels, under the limit
    large = cv2.resize(astronaut, (7000, 7000), interpolation=cv2.INTER_LINEAR)
    small_det, small = diagnose_image(astronaut, tta=False)
    large_det, big = diagnose_image(large, tta=False)
    assert len(large_det.people) == len(small_det.people) == 1 and len(large_det.faces) == len(small_det.faces)
    face_small, face_large = np.array(small_det.faces[0].box), np.array(large_det.faces[0].box) / scale
    assert np.abs(face_small - face_large).max() < 12  # the same face, in the large image's pixels
    assert big.width == 7000 and big.verdict in ("ok", "suspect")


# --- TIFFs Pillow cannot read: float RGB, as scientific and HDR tools write them -------------------


@pytest.mark.parametrize(
    ("dtype", "scale", "planar"),
    [("float32", 1.0, False), ("float16", 1.0, False), ("float64", 255.0, False), ("float32", 1.0, True)],
    ids=["float32-0-1", "float16", "float64-0-255", "float32-planar"],
)
def test_float_rgb_tiff_is_read_like_the_float_grey_ones(tmp_path, dtype, scale, planar):
    tifffile = pytest.importorskip("tifffile")
    rgb = np.stack(np.meshgrid(np.linspace(0, 1, 48), np.linspace(0, 1, 32)) + [np.full((32, 48), 0.5)], axis=-1)
    data = (rgb * scale).astype(dtype)
    if planar:
        tifffile.imwrite(tmp_path / "rgb.tif", np.moveaxis(data, -1, 0), photometric="rgb", planarconfig="separate")
    else:
        tifffile.imwrite(tmp_path / "rgb.tif", data, photometric="rgb")
    out = load_image(tmp_path / "rgb.tif")
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - np.rint(rgb * 255).astype(int)).max() <= 1  # each channel where it was
    grey = tmp_path / "grey.tif"
    Image.fromarray(data[..., 0].astype(np.float32) / scale, mode="F").save(grey)  # Pillow reads this one itself
    assert np.array_equal(load_image(grey)[..., 0], out[..., 0])


def test_float_rgba_tiff_is_composited_on_white_and_its_orientation_applied(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    rgba = np.zeros((20, 30, 4), np.float32)
    rgba[..., 0] = 1.0  # red, half of it transparent
    rgba[:, :15, 3] = 1.0
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", extrasamples=[2])
    out = load_image(tmp_path / "rgba.tif")
    assert (out[:, :15] == (255, 0, 0)).all() and (out[:, 15:] == 255).all()
    # Orientation 6 (rotate 90 clockwise), as Pillow applies it to the 8-bit copy of the same picture
    picture = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    tifffile.imwrite(tmp_path / "turned.tif", picture, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    tifffile.imwrite(tmp_path / "turned8.tif", np.rint(picture * 255).astype(np.uint8), photometric="rgb",
                     extratags=[(274, "H", 1, 6, True)])  # fmt: skip
    assert load_image(tmp_path / "turned.tif").shape == (30, 20, 3)
    assert np.array_equal(load_image(tmp_path / "turned.tif"), load_image(tmp_path / "turned8.tif"))


def test_float_tiffs_too_large_damaged_or_without_tifffile_are_one_line(tmp_path, monkeypatch):
    import sys

    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "huge.tif", shape=(9000, 9000, 3), dtype="float32", photometric="rgb")  # sparse
    with pytest.raises(BadImage, match=r"huge\.tif: image is too large \(9000x9000\)"):
        load_image(tmp_path / "huge.tif")
    tifffile.imwrite(tmp_path / "rgb.tif", np.full((32, 32, 3), 0.5, np.float32), photometric="rgb")
    whole = (tmp_path / "rgb.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(whole[:200])
    with pytest.raises(BadImage, match=r"cut\.tif: damaged or unsupported TIFF"):
        load_image(tmp_path / "cut.tif")
    monkeypatch.setitem(sys.modules, "tifffile", None)
    with pytest.raises(BadImage, match="install tifffile to read it: pip install tifffile"):
        load_image(tmp_path / "rgb.tif")
