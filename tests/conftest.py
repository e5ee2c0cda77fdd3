"""Shared fixtures: real models (fetched once if missing), real images from registry packages,
and ../shared/data when it is present (tests needing it skip cleanly otherwise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def models_ready():
    """The real MediaPipe models, verified; downloaded from the package index when missing."""
    from lib_humanrefine import models

    models.fetch()
    assert not any(models.check().values())
    return models.models_dir()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "labels.csv").is_file():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skimage_data.astronaut())


@pytest.fixture(scope="session")
def grace_hopper() -> np.ndarray:
    cbook = pytest.importorskip("matplotlib.cbook")
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        return np.asarray(Image.open(fh).convert("RGB"))


@pytest.fixture
def cli(capsys):
    """Run the command line in this process (models stay loaded): returns (exit code, stdout, stderr).

    LiteRT's own "INFO: Created TensorFlow Lite XNNPACK delegate" line is not ours and is dropped."""
    from lib_humanrefine import models
    from lib_humanrefine.cli import main

    def run(*args):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's errors
            code = exc.code
        captured = capsys.readouterr()
        err = "\n".join(line for line in captured.err.splitlines() if not line.startswith("INFO: "))
        return code, captured.out, err

    yield run
    models.set_models_dir(None)
