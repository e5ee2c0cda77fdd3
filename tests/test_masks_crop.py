import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib_humanrefine.conditions import masks
from lib_humanrefine.conditions.crop import context_crop, crop_image, generation_size
from lib_humanrefine.conditions.reference import reference_image


def square_mask(shape=(200, 300), box=(100, 50, 180, 150)):
    m = np.zeros(shape, np.uint8)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = 255
    return m


def test_hull_mask_covers_points_and_grows():
    pts = np.array([[50, 50], [100, 60], [80, 120]])
    m = masks.hull_mask(pts, (200, 200))
    assert all(m[y, x] for x, y in pts)
    grown = masks.hull_mask(pts, (200, 200), grow=10)
    assert grown.sum() > m.sum() and (grown[m > 0] == 255).all()
    assert grown[50, 40] == 255 and m[50, 40] == 0


def test_ring_is_dilation_minus_erosion():
    m = square_mask()
    r = masks.ring(m, grow=10, shrink=5)
    assert r[100, 140] == 0  # deep inside: kept
    assert r[100, 102] == 255 and r[100, 95] == 255  # either side of the edge
    assert r[100, 85] == 0  # beyond the grown edge
    assert ((r > 0) <= (masks.dilate(m, 10) > 0)).all()


def test_feather_stays_inside_the_mask():
    m = square_mask()
    alpha = masks.feather(m, 12)
    assert alpha.max() == pytest.approx(1.0) and alpha[100, 140] == pytest.approx(1.0)
    assert (alpha[m == 0] == 0).all()
    assert 0 < alpha[100, 101] < 1  # soft edge


def test_composite_keeps_exact_bytes_outside_alpha():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    alpha = np.zeros((64, 64), np.float32)
    alpha[20:40, 20:40] = 0.5
    out = masks.composite(a, b, alpha)
    assert np.array_equal(out[alpha == 0], a[alpha == 0])
    assert np.abs(out[30, 30].astype(int) - (a[30, 30].astype(int) + b[30, 30]) / 2).max() <= 1


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 900), st.integers(0, 700), st.integers(4, 300), st.integers(4, 300),
    st.sampled_from([512, 1024]), st.floats(0, 1),
)  # fmt: skip
def test_context_crop_contains_region_and_has_generation_aspect(x, y, w, h, native, context):
    shape = (768, 1024)
    region = (x, y, min(x + w, 1024), min(y + h, 768))
    crop, size = context_crop(region, shape, context, native)
    assert 0 <= crop.x0 <= region[0] and 0 <= crop.y0 <= region[1]
    assert crop.x1 >= region[2] and crop.y1 >= region[3] and crop.x1 <= 1024 and crop.y1 <= 768
    assert size[0] % 8 == 0 and size[1] % 8 == 0 and max(size) == pytest.approx(native, abs=4)
    assert size[0] / size[1] == pytest.approx(crop.width / crop.height, rel=0.1)


def test_small_parts_are_upscaled_to_native():
    assert generation_size(60, 40, 512) == (512, 344)
    assert generation_size(100, 100, 1024) == (1024, 1024)


def test_reference_removes_the_background():
    image = np.full((100, 100, 3), 200, np.uint8)
    mask = square_mask((100, 100), (20, 20, 60, 60))
    crop, size = context_crop((20, 20, 60, 60), image.shape, 0.5, 64)
    ref = reference_image(image, mask, crop, size)
    keep = crop_image(mask, crop, size) > 0
    assert ref.shape == (size[1], size[0], 3)
    assert (ref[~keep] == 0).all() and (ref[keep] == 200).all()
