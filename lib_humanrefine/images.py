"""Reading images into the one in-memory form every stage uses: H x W x 3 uint8 RGB numpy.

Accepted: every format Pillow reads (PNG, JPEG, WebP, BMP, TIFF, GIF...; folders are searched
for ``IMAGE_SUFFIXES``), every Pillow mode, animated files (their first frame), EXIF rotation
applied; TIFFs Pillow cannot read (float RGB / RGBA, as scientific and HDR tools write them) through
``tifffile`` where it is installed (scikit-image depends on it). Sizes from ``MIN_SIDE`` px a side up
to ``MAX_PIXELS``. Values: integers by their type's range (uint16 / ``I;16`` 0-65535), floats in 0-1
or 0-255 (see ``to_uint8``).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BadImage

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
MIN_SIDE = 16
MAX_PIXELS = 64_000_000  # 8000 x 8000; about 200 MB as RGB, a few copies of which the stages make
LIMITS_TEXT = f"at least {MIN_SIDE} px a side and at most {MAX_PIXELS // 1_000_000} megapixels (e.g. 8000x8000)"
_NUMERIC_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}  # one number per pixel, wider than 8 bits


def check_size(width: int, height: int) -> None:
    """BadImage, stating the limits, for an image too small or too large to diagnose."""
    if min(width, height) < MIN_SIDE:
        raise BadImage(f"image is too small ({width}x{height}); images must be {LIMITS_TEXT}")
    if width * height > MAX_PIXELS:
        raise BadImage(f"image is too large ({width}x{height}); images must be {LIMITS_TEXT}")


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Numbers to 0-255: bool -> 0/255; uint8 as is; uint16 by its range (0-65535); other integers
    as 8-bit when they fit, else as 16-bit, else scaled to their maximum; floats in 0-1 (maximum
    <= 1) scaled by 255, else read as 0-255 (scaled to their maximum if it is larger). NaN is 0;
    values below 0 become 0."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        array = np.nan_to_num(array.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
        top = float(array.max()) if array.size else 0.0
        scale = 255.0 if top <= 1.0 else 1.0 if top <= 255.0 else 255.0 / top
    elif np.issubdtype(array.dtype, np.integer):
        top = int(array.max()) if array.size else 0
        if (array.dtype.kind == "u" and array.dtype.itemsize == 2) or 255 < top <= 65535:
            scale = 255.0 / 65535.0
        else:
            scale = 1.0 if top <= 255 else 255.0 / top
    else:
        raise BadImage(f"unsupported pixel type {array.dtype}")
    return np.clip(np.rint(array * np.float32(scale)), 0, 255).astype(np.uint8)


def to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """PIL image (any mode) or numpy array (H x W gray, H x W x 1/3/4; any numeric type, see
    ``to_uint8``) -> H x W x 3 uint8 RGB; transparency is composited on white. BadImage otherwise."""
    if isinstance(image, Image.Image):
        check_size(image.width, image.height)
        if image.mode in _NUMERIC_MODES:
            image = np.asarray(image)
        else:
            try:
                return _pil_to_rgb(image)
            except ValueError:  # a mode Pillow cannot convert to RGB
                raise BadImage(f"unsupported image mode {image.mode}") from None
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise BadImage(f"unsupported image shape {array.shape}; give H x W, H x W x 3 (RGB) or H x W x 4 (RGBA)")
    check_size(array.shape[1], array.shape[0])
    array = to_uint8(array)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.shape[2] == 4:
        alpha = array[:, :, 3:4].astype(np.float32) / 255.0
        array = np.rint(array[:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(array)


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode == "La":  # premultiplied alpha: Pillow converts it only to LA
        image = image.convert("LA")
    if image.mode not in ("RGBA", "LA", "PA", "RGBa") and "transparency" in image.info:
        image = image.convert("RGBA")  # P / L / RGB with a transparent colour
    if image.mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB")))


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read a file (first frame; EXIF orientation applied) or raise BadImage with a one-line reason."""
    path = Path(path)
    try:
        return to_rgb_array(_open(path))
    except BadImage as exc:
        raise BadImage(f"{path}: {exc}") from None


def _open(path: Path) -> Image.Image:
    """The decoded first frame of a file, or BadImage saying why not."""
    try:
        if path.is_dir():
            raise BadImage("is a folder, not an image file")
        if path.stat().st_size == 0:
            raise BadImage("empty file (0 bytes)")
    except FileNotFoundError:
        raise BadImage("no such file") from None
    except PermissionError:
        raise BadImage("permission denied (the file cannot be read)") from None
    return decode(path)


def decode(source: str | os.PathLike | io.BytesIO) -> Image.Image | np.ndarray:
    """The decoded first frame (EXIF orientation applied) of a file or of bytes in memory; BadImage
    saying why not. The size is checked before any pixel is decoded. A TIFF Pillow cannot read comes
    back as the numpy array of its first page (``to_rgb_array`` takes both)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is lower
            with Image.open(source) as img:
                check_size(img.width, img.height)
                img.load()
                return ImageOps.exif_transpose(img)  # a copy, also when there is nothing to rotate
    except FileNotFoundError:
        raise BadImage("no such file") from None
    except PermissionError:
        raise BadImage("permission denied (the file cannot be read)") from None
    except Image.DecompressionBombError:
        raise BadImage(f"image is too large; images must be {LIMITS_TEXT}") from None
    except UnidentifiedImageError:
        if _is_tiff(source):
            return _tiff_page(source)
        raise BadImage("not an image file that can be read (PNG, JPEG, WebP, BMP, TIFF, GIF...)") from None
    except MemoryError:
        raise BadImage("not enough memory to read this image") from None
    except BadImage:
        raise
    except Exception as exc:  # Pillow's decoders raise many types (OSError, SyntaxError, struct.error...)
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else exc.__class__.__name__
        raise BadImage(f"damaged or truncated image ({detail})") from None


_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
# EXIF orientation (2-8) of a TIFF page as numpy moves, as ImageOps.exif_transpose does for Pillow's images
_ORIENTED = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).swapaxes(0, 1), 8: lambda a: np.rot90(a, 1),
}  # fmt: skip


def _is_tiff(source) -> bool:
    try:
        if isinstance(source, io.BytesIO):
            return source.getvalue()[:4] in _TIFF_SIGNATURES
        with open(source, "rb") as fh:
            return fh.read(4) in _TIFF_SIGNATURES
    except OSError:
        return False


def _tiff_page(source) -> np.ndarray:
    """The first page of a TIFF Pillow cannot read (float RGB), read by tifffile, samples last."""
    try:
        import tifffile
    except ImportError:
        raise BadImage(
            "a TIFF that Pillow cannot read (e.g. float RGB); install tifffile to read it: pip install tifffile"
        ) from None
    if isinstance(source, io.BytesIO):
        source.seek(0)
    try:
        with tifffile.TiffFile(source) as tif:
            page = tif.pages[0]  # (pages.first and tags.valueof are newer than some WebUIs' tifffile)
            axes, shape = page.axes, page.shape
            height, width = shape[axes.index("Y")], shape[axes.index("X")]
            check_size(width, height)
            array = page.asarray()
            tag = page.tags.get(274)  # EXIF/TIFF Orientation
            orientation = tag.value if tag is not None else 1
    except BadImage:
        raise
    except MemoryError:
        raise BadImage("not enough memory to read this image") from None
    except Exception as exc:  # tifffile raises TiffFileError, ValueError, KeyError, codec errors...
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else exc.__class__.__name__
        raise BadImage(f"damaged or unsupported TIFF ({detail})") from None
    if axes.startswith("S") and array.ndim == 3:  # planar: one plane per sample
        array = np.moveaxis(array, 0, -1)
    if array.ndim != 2 and (array.ndim != 3 or axes.replace("S", "") != "YX"):
        raise BadImage(f"unsupported TIFF layout {axes} {shape}; give one image with 1, 3 or 4 samples per pixel")
    return np.ascontiguousarray(_ORIENTED.get(int(orientation), lambda a: a)(array))


def find_images(paths: list[str | os.PathLike], skip_folder: str | os.PathLike | None = None) -> list[Path]:
    """Files given directly (any name), plus files named ``*<IMAGE_SUFFIXES>`` inside given folders
    (recursively, sorted; a ``skip_folder`` inside a given folder, the output of an earlier run, is left
    out); each file once."""
    skip = Path(skip_folder).resolve() if skip_folder is not None else None
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = (p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if skip is not None and skip != path.resolve():
                files = (p for p in files if skip not in p.resolve().parents)
            found += sorted(files)
        elif path.exists():
            found.append(path)
        else:
            raise BadImage(f"{path}: no such file or folder")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())
