import json
import subprocess
import sys

import pytest
from conftest import REPO
from PIL import Image


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "lib_humanrefine", *args], capture_output=True, text=True, cwd=REPO, env=env
    )


def test_bad_arguments_exit_2_with_one_line():
    result = run_cli("diagnose")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "error" in result.stderr
    result = run_cli("bench", "--data", "x", "--threshold", "7")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_unreadable_input_exit_2(models_ready, tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    result = run_cli("diagnose", str(tmp_path / "bad.jpg"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "bad.jpg" in result.stderr and "Traceback" not in result.stderr


def test_missing_models_one_line_no_traceback(tmp_path):
    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    result = run_cli("--models-dir", str(tmp_path / "empty"), "diagnose", str(tmp_path / "a.png"))
    assert result.returncode == 2
    assert "models fetch" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    check = run_cli("--models-dir", str(tmp_path / "empty"), "models", "check")
    assert check.returncode == 2 and "missing" in check.stdout


def test_diagnose_writes_report_and_overlay(models_ready, astronaut, grace_hopper, tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    Image.fromarray(astronaut).save(images / "astronaut.png")
    Image.fromarray(grace_hopper).save(images / "hopper.jpg")
    out = tmp_path / "out"
    result = run_cli("diagnose", str(images), "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["version"] == 1 and len(report["images"]) == 2
    for entry in report["images"]:
        assert {"path", "width", "height", "verdict", "score", "people", "parts"} <= set(entry)
        assert entry["verdict"] in ("ok", "suspect") and 0 <= entry["score"] <= 1
        faces = [p for p in entry["parts"] if p["kind"] == "face"]
        assert faces, "each photo has a visible face"
        for part in entry["parts"]:
            assert part["kind"] in ("hand", "face", "body")
            x0, y0, x1, y1 = part["box"]
            assert 0 <= x0 < x1 and 0 <= y0 < y1 and isinstance(part["reasons"], list)
        assert (out / entry["overlay"]).is_file()
    assert "2 image(s)" in result.stdout


def test_bench_prints_the_figures(models_ready, astronaut, grace_hopper, tmp_path):
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    Image.fromarray(grace_hopper).save(tmp_path / "b.png")
    (tmp_path / "labels.csv").write_text("path,label,kind\na.png,1,photo\nb.png,0,photo\n")
    result = run_cli("bench", "--data", str(tmp_path), "--json", str(tmp_path / "bench.json"), "--no-tta")
    assert result.returncode == 0, result.stderr
    figures = json.loads((tmp_path / "bench.json").read_text())
    for key in (
        "n_pos",
        "n_neg",
        "auroc",
        "recall_at_fpr10",
        "hands_found_in_positives",
        "latency_ms_p50",
        "latency_ms_p95",
    ):
        assert key in figures
    assert figures["n_pos"] == 1 and figures["n_neg"] == 1 and figures["by_image_kind"]["photo"]["n"] == 2
    work = figures["unet_work"]
    assert work["every_part"] > 0  # both photos show a face
    flagged, every = work["flagged"], work["all"]
    assert flagged["steps"] >= work["flagged_parts"] and every["steps"] >= flagged["steps"]
    assert every["clean_images_with_steps"] == 1  # "all" repaints the normal photo's face too
    assert figures["refine_ms_clean_flagged"]["n"] == 1


@pytest.mark.parametrize("args", [["models", "check"]])
def test_models_check_ok(models_ready, args):
    result = run_cli(*args)
    assert result.returncode == 0 and "verified" in result.stdout
