"""WebUI installer (run by the launcher at start-up): the pinned LiteRT, ONNX and dlib runtimes and the models.

The host's protobuf and numpy are pinned by the launcher; pip gets a constraints file with
their current versions so installing a runtime can never move them. onnxruntime (for the
optional learned check) is installed only when no onnxruntime build is importable: an existing
onnxruntime or onnxruntime-gpu (ControlNet's preprocessors bring one) is used as it is. The same
for dlib (the judge's optional identity check): a dlib the user built is used as it is, else the
``dlib-bin`` wheel, which needs nothing else (no numpy of its own).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
import tempfile

import launch  # type: ignore[import-not-found]

# Every package installed here gets an exact version (tests/test_security.py checks each run_pip
# install); a new runtime (e.g. onnxruntime for a learned diagnosis) is pinned the same way.
LITERT = "ai-edge-litert"
LITERT_VERSION = "2.3.0"
ONNXRUNTIME = "onnxruntime"
ONNXRUNTIME_VERSION = "1.23.2"
DLIB = "dlib-bin"
DLIB_VERSION = "20.0.1.post1"
KEEP = ("numpy", "protobuf")  # never changed by our install


def installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def pip_install(dist: str, version: str) -> None:
    """``pip install dist==version`` with the host's numpy and protobuf held where they are."""
    pins = [f"{keep}=={installed_version(keep)}" for keep in KEEP if installed_version(keep)]
    fd, constraints = tempfile.mkstemp(prefix="humanrefine-constraints-", suffix=".txt")
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(pins) + "\n")
    try:
        launch.run_pip(
            f'install "{dist}=={version}" -c "{constraints}"',
            f"HumanRefine requirement: {dist}=={version} (keeping {', '.join(pins)})",
        )
    except Exception as exc:  # the WebUI must still start; diagnosis will say what is missing
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        print(f"[HumanRefine] could not install {dist}=={version}: {first}")
    finally:
        os.unlink(constraints)


def install_litert() -> None:
    if installed_version(LITERT) != LITERT_VERSION:
        pip_install(LITERT, LITERT_VERSION)


def install_onnxruntime() -> None:
    """Only when no onnxruntime module is importable: never replace the host's (or ControlNet's) build."""
    if importlib.util.find_spec("onnxruntime") is None:
        pip_install(ONNXRUNTIME, ONNXRUNTIME_VERSION)


def install_dlib() -> None:
    """Only when no dlib module is importable: a dlib the user built (or another wheel's) stays."""
    if importlib.util.find_spec("dlib") is None:
        pip_install(DLIB, DLIB_VERSION)


def fetch_models() -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from lib_humanrefine import models
    from lib_humanrefine.webui import webui_models_dir

    folder = webui_models_dir()
    if folder:
        models.set_models_dir(folder)
    notes: list[str] = []
    try:
        written = models.fetch(notes=notes)
    except Exception as exc:  # the WebUI must still start; diagnosis will say what to run
        print(f"[HumanRefine] could not fetch models into {models.models_dir()}: {exc}")
        return
    for note in notes:  # e.g. the learned check's encoder offline: diagnosis runs without it
        print(f"[HumanRefine] {note}")
    if written:
        print(f"[HumanRefine] models written to {models.models_dir()}")


install_litert()
install_onnxruntime()
install_dlib()
fetch_models()
