"""The third-party modules HumanRefine imports, and the one line that says how to install a missing one.

Imports nothing outside the standard library, so it can speak when numpy itself is missing. From a
checkout the line names the pinned package (as requirements.txt pins it); from an installed
``humanrefine`` it names the extra that brings it, so pip keeps the versions the package declares.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = (Path(__file__).resolve().parents[1] / "requirements.txt").is_file()


@dataclass(frozen=True)
class Dependency:
    module: str  # the top-level import name
    distribution: str  # the pinned requirement
    extra: str  # "" for the base install
    needed_for: str  # what needs it, for "<needed_for> needs <distribution>"


_NUMPY = "numpy==1.26.4" if sys.version_info < (3, 13) else "numpy==2.3.5"
_SKIMAGE = "scikit-image==0.24.0" if sys.version_info < (3, 13) else "scikit-image==0.25.2"
DEPENDENCIES: dict[str, Dependency] = {
    d.module: d
    for d in (
        Dependency("numpy", _NUMPY, "", "this command"),
        Dependency("cv2", "opencv-python-headless==4.10.0.84", "", "this command"),
        Dependency("PIL", "pillow==10.4.0", "", "this command"),
        Dependency("ai_edge_litert", "ai-edge-litert==2.3.0", "", "HumanRefine's detectors"),
        Dependency("onnxruntime", "onnxruntime==1.23.2", "learned", "the learned check"),
        Dependency("skimage", _SKIMAGE, "cli", "--samples"),
        Dependency("matplotlib", "matplotlib==3.9.4", "cli", "--samples"),
        Dependency("sklearn", "scikit-learn==1.6.1", "train", "training"),
        Dependency("ray", "ray[data]==2.60.0", "scale", "--engine ray"),
    )
}


def install_command(module: str) -> str:
    """How to install the module into the Python that runs HumanRefine."""
    dep = DEPENDENCIES[module]
    if CHECKOUT:
        target = dep.distribution
    else:
        target = f"humanrefine[{dep.extra}]" if dep.extra else "humanrefine"
    return pip_install_command(target)


def pip_install_command(*args: str) -> str:
    """``<this Python> -m pip install ARGS...``, quoted for this platform's shell: installs into the
    environment that runs HumanRefine (the WebUI's venv inside a WebUI), not whatever ``pip`` is first
    on the PATH."""
    return shell_join([sys.executable, "-m", "pip", "install", *args])


def shell_join(words: list[str]) -> str:
    """One command line, quoted for this platform's shell."""
    return subprocess.list2cmdline(words) if sys.platform == "win32" else shlex.join(words)


def missing_line(module: str) -> str:
    """E.g. "the learned check needs onnxruntime (module onnxruntime); install it with: ..."."""
    dep = DEPENDENCIES[module]
    package = dep.distribution.split("==")[0]
    return f"{dep.needed_for} needs {package} (module {module}); install it with: {install_command(module)}"


def missing_message(exc: ImportError, prog: str = "humanrefine") -> str | None:
    """One line for an import of a known dependency that failed, else None (a bug: let it show)."""
    module = (getattr(exc, "name", None) or "").split(".")[0]
    return f"{prog}: {missing_line(module)}" if module in DEPENDENCIES else None
