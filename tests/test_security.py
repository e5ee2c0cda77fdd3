"""Security of the library: no pickles, models checked by SHA-256 before use, dependencies pinned."""

import re

from conftest import REPO

from lib_humanrefine import models, scale
from lib_humanrefine.detect import runtime

UNSAFE = re.compile(r"\bpickle\b|\bcPickle\b|\bdill\b|\bjoblib\b|torch\.load|allow_pickle\s*=\s*True")
ARRAY_LOAD = re.compile(r"\bnp\.load\(|\bnumpy\.load\(")


def unsafe_lines(text: str) -> list[str]:
    """Lines that load pickles, or load numpy arrays without allow_pickle=False."""
    return [
        line.strip()
        for line in text.splitlines()
        if UNSAFE.search(line) or (ARRAY_LOAD.search(line) and "allow_pickle=False" not in line)
    ]


def shipped_sources():
    yield from (REPO / "lib_humanrefine").rglob("*.py")
    yield from (REPO / "scripts").rglob("*.py")
    yield REPO / "install.py"
    yield REPO / "preload.py"


def test_nothing_in_the_extension_loads_pickles():
    found = {str(p.relative_to(REPO)): unsafe_lines(p.read_text()) for p in shipped_sources()}
    assert {path: lines for path, lines in found.items() if lines} == {}


def test_the_pickle_check_catches_what_it_should():
    assert unsafe_lines("import pickle\nx = torch.load(f)\nnp.load(f, allow_pickle=True)\na = np.load(f)")  == [
        "import pickle", "x = torch.load(f)", "np.load(f, allow_pickle=True)", "a = np.load(f)",
    ]  # fmt: skip
    assert unsafe_lines("a = np.load(f, allow_pickle=False)") == []


def test_every_model_file_is_pinned_by_size_and_sha256():
    for model in models.MODELS.values():
        assert re.fullmatch(r"[0-9a-f]{64}", model.sha256) and model.size > 100_000


def test_dependencies_are_pinned():
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (REPO / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-r "):
                pinned = r"^[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[0-9][^ ;]*( *;.*)?$"  # an extra allowed: ray[data]==X
                assert re.match(pinned, line), f"{name}: {line} is not pinned"
    install = (REPO / "install.py").read_text()
    version = re.search(r'LITERT_VERSION = "([^"]+)"', install).group(1)
    onnx = re.search(r'ONNXRUNTIME_VERSION = "([^"]+)"', install).group(1)
    assert 'install "{dist}=={version}"' in install  # pip is always given the exact version
    runtime_requirements = (REPO / "requirements.txt").read_text()
    assert f"ai-edge-litert=={version}" in runtime_requirements and f"onnxruntime=={onnx}" in runtime_requirements
    assert f"ai-edge-litert=={version}" == runtime.LITERT_PIN  # the version the error messages tell users to install
    assert all(wheel.requirement.count("==") == 1 for wheel in models.WHEELS.values())
    assert scale.RAY_REQUIREMENT in (REPO / "requirements-dev.txt").read_text().splitlines()  # the one users are told


def unpinned_installs(install_py: str) -> list[str] | None:
    """The ``launch.run_pip("install ...")`` commands whose first requirement has no exact version
    (None when there is no such call at all)."""
    commands = [m[1] for m in re.findall(r"run_pip\(\s*f?(['\"])install (.*?)\1", install_py, re.S)]
    return [c for c in commands if "==" not in c.split()[0]] if commands else None


def test_every_package_install_py_installs_is_pinned():
    """install.py runs inside the user's WebUI: each pip install names an exact version (and the
    host's numpy/protobuf are held by a constraints file)."""
    install = (REPO / "install.py").read_text()
    assert unpinned_installs(install) == [] and '-c "{constraints}"' in install
    assert unpinned_installs("launch.run_pip('install \"onnxruntime\" -c x', 'y')") == ['"onnxruntime" -c x']
    assert unpinned_installs('launch.run_pip(f"install onnxruntime=={V}", "y")') == []
