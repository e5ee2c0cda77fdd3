"""Made-up candidates for proving the judge: what a host might hand back for one inpaint request,
made in code from the request's own crop (no diffusion model anywhere).

*Benign* candidates are the crop itself after a harmless change (a re-encode, ±2 % brightness, a
resample); the judge must keep them. *Bad* ones are the failures users meet: another person's
face, a colour cast, blur, the part erased, mirrored, duplicated, fingers warped, the patch
shifted (a seam), pure noise (a broken model), another picture. The judge must reject them.

Every maker takes the crop at the generation size (H x W x 3 uint8 RGB), the part's keypoints in
the crop's pixels (hand: 21 landmarks, face: 468 mesh points; None when unknown), the part's size
in those pixels, a seeded ``numpy.random.Generator`` and, for the face swap, a donor (another
picture and its face mesh). Each returns a new array of the crop's shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ..conditions import masks
from ..detect.types import FINGERS


@dataclass
class Donor:
    """Another person's face: a picture and its 468-point mesh in that picture's pixels."""

    image: np.ndarray
    landmarks: np.ndarray


@dataclass
class Context:
    keypoints: np.ndarray | None  # the part's points in the crop's pixels
    size: float  # the part's size in the crop's pixels
    rng: np.random.Generator
    donor: Donor | None = None
    other: np.ndarray | None = None  # another picture, for "other picture"


Maker = Callable[[np.ndarray, Context], np.ndarray]


def _encoded(image: np.ndarray, ext: str, params: list[int]) -> np.ndarray:
    ok, data = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"OpenCV could not encode {ext}")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _scaled(image: np.ndarray, gains) -> np.ndarray:
    return np.clip(image.astype(np.float32) * np.asarray(gains, np.float32), 0, 255).round().astype(np.uint8)


def _part_mask(shape, ctx: Context, grow: float) -> np.ndarray:
    """The part's hull grown by ``grow`` part sizes, or a centred disc when the points are unknown."""
    if ctx.keypoints is not None and np.isfinite(ctx.keypoints).all(axis=1).sum() >= 3:
        return masks.hull_mask(ctx.keypoints, shape, grow * ctx.size)
    mask = np.zeros(shape[:2], np.uint8)
    h, w = shape[:2]
    cv2.circle(mask, (w // 2, h // 2), max(2, round(ctx.size * (0.5 + grow))), 255, -1)
    return mask


# --- benign ---------------------------------------------------------------------------------


def unchanged(crop, ctx):
    return crop.copy()


def jpeg(crop, ctx):
    return _encoded(crop, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 85])


def webp(crop, ctx):
    return _encoded(crop, ".webp", [cv2.IMWRITE_WEBP_QUALITY, 80])


def brighter(crop, ctx):
    return _scaled(crop, 1.02)


def darker(crop, ctx):
    return _scaled(crop, 0.98)


def resampled(crop, ctx):
    """Down to half size and back up: a softer copy of the same pixels."""
    h, w = crop.shape[:2]
    small = cv2.resize(crop, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


# --- bad ------------------------------------------------------------------------------------


def colour_cast(crop, ctx):
    return _scaled(crop, (1.35, 1.0, 0.7))


def blurred(crop, ctx):
    return cv2.GaussianBlur(crop, (0, 0), 6)


def mirrored(crop, ctx):
    return np.ascontiguousarray(crop[:, ::-1])


def shifted(crop, ctx):
    """The crop moved by 8 % of its size (edges repeated): content no longer meets its surroundings."""
    h, w = crop.shape[:2]
    dx, dy = 0.08 * w, 0.08 * h * (1 if ctx.rng.random() < 0.5 else -1)
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(crop, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)


def noise(crop, ctx):
    return ctx.rng.integers(0, 256, crop.shape, dtype=np.uint8)


def erased(crop, ctx):
    """The part painted out with its surroundings (OpenCV's inpainting from the edges)."""
    hole = _part_mask(crop.shape, ctx, 0.15)
    return cv2.inpaint(crop, hole, 5, cv2.INPAINT_TELEA)


def duplicated(crop, ctx):
    """A second copy of the part half a part size beside it, blended in."""
    region = _part_mask(crop.shape, ctx, 0.05)
    h, w = crop.shape[:2]
    dx = 0.5 * ctx.size * (1 if ctx.rng.random() < 0.5 else -1)
    moved = cv2.warpAffine(crop, np.float32([[1, 0, dx], [0, 1, 0]]), (w, h), borderMode=cv2.BORDER_REFLECT)
    alpha = masks.feather(cv2.warpAffine(region, np.float32([[1, 0, dx], [0, 1, 0]]), (w, h)), 0.05 * ctx.size)
    return masks.composite(crop, moved, alpha)


def warped_fingers(crop, ctx):
    """A smooth random displacement (up to a third of the hand) around the fingers only: bent, kinked
    and melted fingers."""
    h, w = crop.shape[:2]
    if ctx.keypoints is None:
        return crop.copy()
    fingers = np.zeros((h, w), np.uint8)
    for chain in FINGERS.values():
        pts = ctx.keypoints[list(chain[1:]), :2]
        fingers = np.maximum(fingers, masks.limb_mask(pts, (h, w), 0.15 * ctx.size))
    reach = cv2.GaussianBlur(fingers.astype(np.float32) / 255, (0, 0), max(1.0, 0.08 * ctx.size))
    sigma = max(1.0, 0.12 * ctx.size)
    field = []
    for _ in range(2):
        raw = cv2.GaussianBlur(ctx.rng.standard_normal((h, w)).astype(np.float32), (0, 0), sigma)
        raw /= max(float(np.abs(raw).max()), 1e-6)
        field.append(raw * 0.35 * ctx.size * reach)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(crop, xs + field[0], ys + field[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def face_swap(crop, ctx):
    """Another person's face fitted onto this face's mesh (an affine fit of the 468 points) and
    cloned in with Poisson blending, so the skin tone and light match: a plausible wrong face."""
    if ctx.donor is None or ctx.keypoints is None:
        raise ValueError("a face swap needs this face's mesh and a donor face")
    h, w = crop.shape[:2]
    src, dst = ctx.donor.landmarks[:, :2].astype(np.float32), ctx.keypoints[:, :2].astype(np.float32)
    matrix, _ = cv2.estimateAffine2D(src, dst, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("the donor face does not fit this face")
    warped = cv2.warpAffine(ctx.donor.image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # The face without its outline (the hull shrunk), so jaw and hair stay this picture's.
    region = masks.erode(masks.hull_mask(dst, (h, w)), 0.06 * ctx.size)
    box = masks.bbox(region)
    if box is None:
        raise ValueError("the face is too small to swap")
    region[[0, -1], :] = 0  # seamlessClone needs the region off the border
    region[:, [0, -1]] = 0
    x0, y0, x1, y1 = masks.bbox(region)
    centre = ((x0 + x1) // 2, (y0 + y1) // 2)
    bgr = cv2.seamlessClone(
        cv2.cvtColor(warped, cv2.COLOR_RGB2BGR), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), region, centre,
        cv2.NORMAL_CLONE,
    )  # fmt: skip
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def other_picture(crop, ctx):
    if ctx.other is None:
        raise ValueError("'other picture' needs another picture")
    return cv2.resize(ctx.other, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_AREA)


BENIGN: dict[str, Maker] = {
    "unchanged": unchanged,
    "jpeg q85": jpeg,
    "webp q80": webp,
    "brightness +2%": brighter,
    "brightness -2%": darker,
    "resampled": resampled,
}
BAD: dict[str, Maker] = {
    "other face": face_swap,
    "colour cast": colour_cast,
    "blur": blurred,
    "erased": erased,
    "mirrored": mirrored,
    "duplicated": duplicated,
    "fingers warped": warped_fingers,
    "shifted": shifted,
    "noise": noise,
    "other picture": other_picture,
}
# Which part kinds each bad candidate applies to (a face is not duplicated, fingers are a hand's).
BAD_KINDS: dict[str, tuple[str, ...]] = {
    "other face": ("face",),
    "duplicated": ("hand",),
    "fingers warped": ("hand",),
}
MAKERS: dict[str, Maker] = {**BENIGN, **BAD}


def applies(name: str, kind: str) -> bool:
    return kind in BAD_KINDS.get(name, ("hand", "face", "pose"))
