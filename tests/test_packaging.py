"""The package: pyproject.toml's dependencies agree with requirements*.txt, the wheel holds
lib_humanrefine (its learned heads included) and nothing else, and installs the ``humanrefine`` command."""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the TOML reader pip vendors
    from pip._vendor import tomli as tomllib
from packaging.requirements import Requirement  # pytest's dependency

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
HEAVY = {"gradio", "playwright", "scikit-learn", "fastapi", "uvicorn"}


def requirement_lines(path: Path) -> list[str]:
    """The requirements of a requirements file, ``-r`` includes followed, comments dropped."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if line.startswith("-r "):
            lines += requirement_lines(path.parent / line[3:].strip())
        elif line and not line.startswith("#"):
            lines.append(line)
    return lines


def normalised(spec: str) -> str:
    return str(Requirement(spec))


def names(specs: list[str]) -> set[str]:
    return {Requirement(spec).name.lower().replace("_", "-") for spec in specs}


RUNTIME = {normalised(s) for s in requirement_lines(REPO / "requirements.txt")}
DEV = {normalised(s) for s in requirement_lines(REPO / "requirements-dev.txt")}


def test_every_pyproject_requirement_is_pinned_as_in_the_requirements_files():
    extras = PROJECT["optional-dependencies"]
    for group, specs in [("dependencies", PROJECT["dependencies"]), *extras.items()]:
        for spec in specs:
            assert normalised(spec) in DEV, f"{group}: {spec} is not pinned so in requirements*.txt"
    for spec in PROJECT["dependencies"] + extras["learned"]:
        assert normalised(spec) in RUNTIME, f"{spec} (diagnosing) is not in requirements.txt"


def test_the_dev_extra_is_requirements_dev_txt():
    assert {normalised(s) for s in PROJECT["optional-dependencies"]["dev"]} | {
        normalised(s) for s in PROJECT["dependencies"]
    } == DEV


def test_diagnosing_pulls_no_webui_browser_or_training_package():
    base = names(PROJECT["dependencies"])
    assert base == {"ai-edge-litert", "numpy", "opencv-python-headless", "pillow"}
    for extra in ("learned", "cli"):
        assert not names(PROJECT["optional-dependencies"][extra]) & HEAVY, extra
    assert "scikit-learn" in names(PROJECT["optional-dependencies"]["train"])


def test_the_cli_extra_brings_the_learned_check_and_the_sample_photos():
    cli = names(PROJECT["optional-dependencies"]["cli"])
    assert names(PROJECT["optional-dependencies"]["learned"]) <= cli and {"scikit-image", "matplotlib"} <= cli


def test_the_missing_dependency_pins_are_the_requirements_files_pins():
    from lib_humanrefine.deps import DEPENDENCIES

    for dep in DEPENDENCIES.values():
        assert normalised(dep.distribution) in {normalised(s.split(";")[0]) for s in DEV if _applies(s)}, dep
        group = PROJECT["optional-dependencies"][dep.extra] if dep.extra else PROJECT["dependencies"]
        assert Requirement(dep.distribution).name in names(group), dep


def _applies(spec: str) -> bool:
    marker = Requirement(spec).marker
    return marker is None or marker.evaluate()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel pip builds from a copy of the repository's tracked files (the checkout stays clean):
    offline with the setuptools of requirements-dev.txt, else in pip's build isolation."""
    import setuptools

    source = tmp_path_factory.mktemp("source")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((REPO / name).read_bytes())
    out = tmp_path_factory.mktemp("wheel")
    offline = int(setuptools.__version__.split(".")[0]) >= 77
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)]
    result = subprocess.run(command + (["--no-build-isolation"] if offline else []), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    (built,) = out.glob("humanrefine-*.whl")
    return built


def test_the_wheel_holds_lib_humanrefine_and_its_heads_only(wheel):
    from lib_humanrefine import __version__

    assert wheel.name.startswith(f"humanrefine-{__version__}-py3-none-any")
    files = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in files}
    assert tops == {"lib_humanrefine", f"humanrefine-{__version__}.dist-info"}
    tracked = subprocess.run(["git", "ls-files", "lib_humanrefine"], cwd=REPO, capture_output=True, text=True)
    shipped = {name for name in tracked.stdout.split() if name.endswith((".py", ".npz"))}
    assert shipped <= set(files) and any(name.endswith("heads.npz") for name in files)
    assert not any(name.startswith(("javascript/", "scripts/", "tests/", "tools/")) for name in files)


def test_the_wheel_installs_the_humanrefine_command(wheel):
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read(info).decode())
        metadata = archive.read(info.replace("entry_points.txt", "METADATA")).decode()
    assert dict(entry_points["console_scripts"]) == {"humanrefine": "lib_humanrefine.__main__:console"}
    requires = [line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    base = [r for r in requires if "extra ==" not in r]
    assert names(base) == names(PROJECT["dependencies"])
    assert {line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Provides-Extra: ")} >= {
        "cli", "learned", "train", "dev"
    }  # fmt: skip
