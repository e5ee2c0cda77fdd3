"""Reading images into the one in-memory form every stage uses: H x W x 3 uint8 RGB numpy."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BadImage

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
MIN_SIDE = 16
MAX_PIXELS = 64_000_000


def to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """PIL image or numpy array (gray, RGB, RGBA; uint8/uint16/float) -> H x W x 3 uint8 RGB."""
    if isinstance(image, Image.Image):
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(image, dtype=np.float64)
            image = Image.fromarray((arr / max(arr.max(), 1.0) * 255).astype(np.uint8))
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba)
        array = np.asarray(image.convert("RGB"))
    else:
        array = np.asarray(image)
        if array.dtype != np.uint8:
            if np.issubdtype(array.dtype, np.floating):
                array = np.clip(array * (255.0 if array.max() <= 1.0 else 1.0), 0, 255)
            elif array.max() > 255:
                array = array / (array.max() / 255.0)
            array = array.astype(np.uint8)
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        elif array.ndim == 3 and array.shape[2] == 4:
            alpha = array[:, :, 3:4].astype(np.float32) / 255.0
            array = (array[:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
        elif array.ndim == 3 and array.shape[2] == 1:
            array = np.repeat(array, 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise BadImage(f"unsupported image shape {array.shape}")
    if min(array.shape[:2]) < MIN_SIDE:
        raise BadImage(f"image is too small ({array.shape[1]}x{array.shape[0]}; need at least {MIN_SIDE} px a side)")
    return np.ascontiguousarray(array)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read a file (EXIF orientation applied) or raise BadImage with a one-line reason."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise BadImage(f"{path}: image too large ({img.width}x{img.height})")
            img.load()
            img = ImageOps.exif_transpose(img)
            return to_rgb_array(img)
    except BadImage as exc:
        raise BadImage(f"{path}: {exc}") if not str(exc).startswith(str(path)) else exc from None
    except FileNotFoundError:
        raise BadImage(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"{path}: not a readable image ({exc.__class__.__name__})") from None


def find_images(paths: list[str | os.PathLike]) -> list[Path]:
    """Files given directly, plus image files inside given folders (recursively, sorted)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.exists():
            found.append(path)
        else:
            raise BadImage(f"{path}: no such file or folder")
    return found
