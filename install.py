"""WebUI installer (run by the launcher at start-up): the pinned LiteRT runtime and the models.

The host's protobuf and numpy are pinned by the launcher; pip gets a constraints file with
their current versions so installing LiteRT can never move them.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import tempfile

import launch  # type: ignore[import-not-found]

# Every package installed here gets an exact version (tests/test_security.py checks each run_pip
# install); a new runtime (e.g. onnxruntime for a learned diagnosis) is pinned the same way.
LITERT = "ai-edge-litert"
LITERT_VERSION = "2.3.0"
KEEP = ("numpy", "protobuf")  # never changed by our install


def installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def install_litert() -> None:
    if installed_version(LITERT) == LITERT_VERSION:
        return
    pins = [f"{dist}=={installed_version(dist)}" for dist in KEEP if installed_version(dist)]
    fd, constraints = tempfile.mkstemp(prefix="humanrefine-constraints-", suffix=".txt")
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(pins) + "\n")
    try:
        launch.run_pip(
            f'install "{LITERT}=={LITERT_VERSION}" -c "{constraints}"',
            f"HumanRefine requirement: {LITERT}=={LITERT_VERSION} (keeping {', '.join(pins)})",
        )
    except Exception as exc:  # the WebUI must still start; diagnosis will say what is missing
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        print(f"[HumanRefine] could not install {LITERT}=={LITERT_VERSION}: {first}")
    finally:
        os.unlink(constraints)


def fetch_models() -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from lib_humanrefine import models
    from lib_humanrefine.webui import webui_models_dir

    folder = webui_models_dir()
    if folder:
        models.set_models_dir(folder)
    try:
        written = models.fetch()
    except Exception as exc:  # the WebUI must still start; diagnosis will say what to run
        print(f"[HumanRefine] could not fetch models into {models.models_dir()}: {exc}")
        return
    if written:
        print(f"[HumanRefine] models written to {models.models_dir()}")


install_litert()
fetch_models()
