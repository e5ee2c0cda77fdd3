"""install.py inside a WebUI: pinned runtimes, never replacing the host's onnxruntime or moving numpy/protobuf."""

import importlib.util
import runpy
import sys
import types

import pytest
from conftest import REPO

from lib_humanrefine import models


def run_install(monkeypatch, onnxruntime_present: bool, dlib_present: bool = True) -> list[tuple[str, str]]:
    calls = []

    def run_pip(command, desc):
        constraints = command.split('-c "')[1].rstrip('"')
        with open(constraints) as fh:
            calls.append((command, fh.read()))

    monkeypatch.setitem(sys.modules, "launch", types.SimpleNamespace(run_pip=run_pip))
    real_find_spec = importlib.util.find_spec
    present = {"onnxruntime": onnxruntime_present, "dlib": dlib_present}
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: real_find_spec(name, *a) if present.get(name, True) else None,
    )
    monkeypatch.setattr(models, "fetch", lambda *a, **k: [])
    runpy.run_path(str(REPO / "install.py"), run_name="install")
    return calls


def test_an_importable_onnxruntime_is_left_alone(monkeypatch):
    pytest.importorskip("onnxruntime")
    calls = run_install(monkeypatch, onnxruntime_present=True)
    assert not any("onnxruntime" in command for command, _ in calls)


def test_without_onnxruntime_the_pin_is_installed_keeping_numpy(monkeypatch):
    calls = run_install(monkeypatch, onnxruntime_present=False)
    (command, constraints), *_ = [c for c in calls if "onnxruntime" in c[0]]
    assert '"onnxruntime==1.23.2"' in command
    import numpy

    assert f"numpy=={numpy.__version__}" in constraints


def test_without_dlib_the_pinned_wheel_is_installed_keeping_numpy(monkeypatch):
    calls = run_install(monkeypatch, onnxruntime_present=True, dlib_present=False)
    (command, constraints), *_ = [c for c in calls if "dlib" in c[0]]
    assert '"dlib-bin==20.0.1.post1"' in command
    import numpy

    assert f"numpy=={numpy.__version__}" in constraints


def test_an_importable_dlib_is_left_alone(monkeypatch):
    pytest.importorskip("dlib")
    assert not any("dlib" in command for command, _ in run_install(monkeypatch, onnxruntime_present=True))
