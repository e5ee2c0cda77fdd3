"""``diagnose``/``bench --engine ray``: a local Ray instance (2 CPUs) gives the single-process report,
``--jsonl`` resumes, and Ctrl-C leaves a valid report marked incomplete. Each run is a subprocess of
the command line, so Ray's processes end with it (checked at the end)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from conftest import REPO

from lib_humanrefine.errors import HumanRefineError
from lib_humanrefine.images import find_images

SMALL = [  # small real photos of hands and a face from ../shared/data (seconds, not minutes, per run)
    "real/meshgraphormer_internet_fig1.jpg",
    "real/meshgraphormer_internet_fig2.jpg",
    "real/meshgraphormer_internet_fig3.jpg",
    "real/insightface_Tom_Hanks_54745.png",
]
COPIES = 300  # copies of one photo: a run a Ctrl-C catches midway even when the test reads its rows late
RAY = ("--engine", "ray", "--workers", "2")
TIMED = {"timings_ms"}  # differs between any two runs, engines or not


UNBUFFERED = {**os.environ, "PYTHONUNBUFFERED": "1"}  # each table row reaches the pipe when printed


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "lib_humanrefine", *map(str, args)], capture_output=True, text=True, cwd=REPO
    )


def untimed(entries: list[dict]) -> list[dict]:
    return [{k: v for k, v in entry.items() if k not in TIMED} for entry in entries]


def rows_of(out) -> list[dict]:
    files = sorted((out / "rows").glob("*.jsonl"))
    return [json.loads(line) for file in files for line in file.read_text().splitlines()]


@pytest.fixture(scope="module")
def ray_installed():
    pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install -r requirements-dev.txt)")


@pytest.fixture
def images(shared_data, tmp_path):
    """The small photos under varied names, and a file that is not an image."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for n, name in enumerate(SMALL):
        shutil.copy(shared_data / name, folder / ("sub" if n % 2 else "") / f"{n} photo {name.rsplit('/', 1)[1]}")
    (folder / "broken.png").write_bytes(b"not a picture")
    return folder


def test_ray_report_equals_the_single_process_one(models_ready, ray_installed, images, tmp_path):
    local = run_cli("diagnose", images, "--out", tmp_path / "local")
    ray = run_cli("diagnose", images, "--out", tmp_path / "ray", *RAY)
    assert local.returncode == ray.returncode == 2, ray.stderr  # 2: the broken file, named and skipped
    expected = json.loads((tmp_path / "local" / "report.json").read_text())
    got = json.loads((tmp_path / "ray" / "report.json").read_text())
    assert got["complete"] is expected["complete"] is True
    assert len(got["images"]) == len(SMALL) and any(e["parts"] for e in got["images"])
    assert untimed(got["images"]) == untimed(expected["images"])  # order, scores, parts, learned check, overlays
    assert got["skipped"] == expected["skipped"] and "broken.png" in got["skipped"][0]["path"]
    assert "broken.png" in ray.stderr and "error:" in ray.stderr
    for entry in got["images"]:
        overlay = entry["overlay"]
        assert (tmp_path / "ray" / overlay).read_bytes() == (tmp_path / "local" / overlay).read_bytes()
    assert not any("learned check off" in note for e in got["images"] for note in e["notes"])


def test_jsonl_rows_resume_across_engines(models_ready, ray_installed, images, tmp_path, shared_data):
    out = tmp_path / "out"
    first = run_cli("diagnose", images, "--out", out, "--jsonl", "--no-learned")
    assert first.returncode == 2, first.stderr
    assert not (out / "report.json").exists()
    assert json.loads((out / "rows.json").read_text())["complete"] is True
    before = rows_of(out)
    assert len(before) == len(SMALL) + 1 and sum("error" in row for row in before) == 1
    for n, name in enumerate(SMALL[:2]):  # two more images: only they are diagnosed on the second run
        shutil.copy(shared_data / name, images / f"later {n}.jpg")
    second = run_cli("diagnose", images, "--out", out, "--jsonl", "--no-learned", *RAY)
    assert second.returncode == 0, second.stderr
    assert f"{len(SMALL) + 1} of {len(SMALL) + 3} image(s) already in" in second.stdout
    assert "2 image(s)" in second.stdout
    rows = rows_of(out)
    paths = [row["path"] for row in rows]
    assert len(paths) == len(set(paths)) == len(SMALL) + 3 and rows[: len(before)] == before
    summary = json.loads((out / "rows.json").read_text())
    assert summary["complete"] is True and summary["rows"] == len(SMALL) + 3
    # the same rows as report.json of a single-process run over the whole folder
    assert run_cli("diagnose", images, "--out", tmp_path / "whole", "--no-learned").returncode == 2  # broken.png
    report = json.loads((tmp_path / "whole" / "report.json").read_text())
    by_path = {row["path"]: row for row in rows}
    for entry in report["images"]:
        row = by_path[entry["path"]]
        assert row["overlay"].startswith("overlays/") and (out / row["overlay"]).is_file()
        assert untimed([row]) == untimed([{**entry, "overlay": row["overlay"]}])
    third = run_cli("diagnose", images, "--out", out, "--jsonl", "--no-learned")
    assert third.returncode == 0 and "0 image(s)" in third.stdout and len(rows_of(out)) == len(rows)


def test_interrupted_ray_run_leaves_valid_rows_that_resume(models_ready, ray_installed, images, tmp_path):
    for n in range(COPIES):  # enough images that the run is still going when the first rows are in
        shutil.copy(images / f"0 photo {SMALL[0].rsplit('/', 1)[1]}", images / f"copy {n:02d}.jpg")
    (images / "broken.png").unlink()
    total = len(list(images.rglob("*.*")))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "lib_humanrefine", "diagnose", str(images), "--out", str(out), "--jsonl"]
    process = subprocess.Popen(
        [*command, "--no-learned", "--no-tta", *RAY], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=UNBUFFERED, start_new_session=True,
    )  # fmt: skip
    try:
        lines = []
        for line in process.stdout:  # the header, then a row per diagnosed image
            lines.append(line)
            if len(lines) == 3:
                break
        os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C in a terminal: to Ray's processes too
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted after" in stderr and "Traceback" not in stderr
    summary = json.loads((out / "rows.json").read_text())
    assert summary["complete"] is False and 2 <= summary["rows"] < total
    assert not list((out / "rows").glob(".*.tmp"))  # no half-written block
    done = len(rows_of(out))
    resumed = run_cli(*command[3:], "--no-learned", "--no-tta")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done} of {total} image(s) already in" in resumed.stdout
    paths = [row["path"] for row in rows_of(out)]
    assert len(paths) == len(set(paths)) == total
    assert json.loads((out / "rows.json").read_text())["complete"] is True


def test_interrupted_ray_run_writes_report_json_marked_incomplete(models_ready, ray_installed, images, tmp_path):
    for n in range(COPIES):
        shutil.copy(images / f"0 photo {SMALL[0].rsplit('/', 1)[1]}", images / f"copy {n:02d}.jpg")
    (images / "broken.png").unlink()
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "lib_humanrefine", "diagnose", str(images), "--out", str(out), "--no-learned",
         "--no-tta", "--no-overlay", *RAY],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=UNBUFFERED,
    )  # fmt: skip
    try:
        for n, _line in enumerate(process.stdout):
            if n == 2:
                break
        process.send_signal(signal.SIGINT)
        _stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] is False and 1 <= len(report["images"]) < COPIES
    order = [e["path"] for e in report["images"]]
    assert order == [str(p) for p in find_images([images])][: len(order)]  # the first images, in the folder's order


class _FakeRay(types.ModuleType):
    """Ray's calls that ``started`` makes; ``shutdown`` takes ``ctrl_c`` Ctrl-Cs on its way."""

    def __init__(self, ctrl_c: int):
        super().__init__("ray")
        context = types.SimpleNamespace(execution_options=types.SimpleNamespace())
        self.data = types.SimpleNamespace(DataContext=types.SimpleNamespace(get_current=lambda: context))
        self.ctrl_c, self.shut_down = ctrl_c, False

    def init(self, **options):
        pass

    def cluster_resources(self):
        return {"CPU": 2.0}

    def shutdown(self):
        for _ in range(self.ctrl_c):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs here, in the main thread
        self.shut_down = True


@pytest.fixture
def fake_ray(monkeypatch):
    def install(ctrl_c: int) -> _FakeRay:
        ray = _FakeRay(ctrl_c)
        monkeypatch.setitem(sys.modules, "ray", ray)
        monkeypatch.setitem(sys.modules, "ray.data", ray.data)
        return ray

    return install


def test_ctrl_c_while_ray_shuts_down_waits_until_it_is_down(fake_ray):
    """A Ctrl-C inside ray.shutdown once ended the process from Ray's own thread (exit 1, no report):
    it is held until Ray is down, then raised; a failure of the run itself stays the one raised."""
    from lib_humanrefine import scale

    ray = fake_ray(ctrl_c=1)
    with pytest.raises(KeyboardInterrupt), scale.started(workers=2) as workers:
        assert workers == 2
    assert ray.shut_down
    ray = fake_ray(ctrl_c=1)
    with pytest.raises(HumanRefineError, match="the run's own"), scale.started(workers=2):
        raise HumanRefineError("the run's own")
    assert ray.shut_down
    ray = fake_ray(ctrl_c=0)
    with scale.started(workers=2):
        pass
    assert ray.shut_down and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ray = fake_ray(ctrl_c=2)  # a second Ctrl-C: the user insists, at once
    with pytest.raises(KeyboardInterrupt), scale.started(workers=2):
        pass
    assert not ray.shut_down


def test_ctrl_c_after_the_last_image_keeps_the_report_complete(models_ready, cli, monkeypatch, images, tmp_path):
    from lib_humanrefine import folder, scale

    @contextlib.contextmanager
    def started_then_ctrl_c(address=None, workers=None):
        yield 2
        raise KeyboardInterrupt  # as started() raises a Ctrl-C that came while Ray shut down

    monkeypatch.setattr(scale, "started", started_then_ctrl_c)
    monkeypatch.setattr(scale, "ray_results", lambda jobs, settings, workers: folder.local_results(jobs, settings))
    code, out, err = cli("diagnose", images, "--out", tmp_path / "out", "--no-learned", *RAY)
    assert code == 130 and f"interrupted after {len(SMALL)} of {len(SMALL) + 1} image(s)" in err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["complete"] is True and len(report["images"]) == len(SMALL)


def test_bench_on_ray_gives_the_single_process_figures(models_ready, ray_installed, images, tmp_path):
    (images / "broken.png").unlink()
    names = sorted(p.relative_to(images).as_posix() for p in images.rglob("*.*"))
    (images / "labels.csv").write_text("path,label\n" + "".join(f"{n},{i % 2}\n" for i, n in enumerate(names)))
    figures = {}
    for engine, extra in (("local", ()), ("ray", RAY)):
        json_path = tmp_path / f"{engine}.json"
        result = run_cli("bench", "--data", images, "--no-learned", "--no-stability", "--json", json_path, *extra)
        assert result.returncode == 0, result.stderr
        figures[engine] = json.loads(json_path.read_text())
    timed = {"latency", "stage_ms", "rss_mb", "refine_ms"}  # timings and this process's memory

    def untimed_figures(result: dict) -> dict:
        return {k: v for k, v in result.items() if not any(k.startswith(t) for t in timed)}

    assert figures["ray"]["n_pos"] + figures["ray"]["n_neg"] == len(SMALL)
    assert untimed_figures(figures["ray"]) == untimed_figures(figures["local"])


def test_without_ray_one_line_says_how_to_install_it(models_ready, cli, monkeypatch, images, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as where it is not installed
    code, out, err = cli("diagnose", images, "--out", tmp_path / "out", "--engine", "ray")
    assert code == 2 and err.count("\n") == 0 and "pip install 'ray[data]==" in err
    assert not (tmp_path / "out" / "report.json").exists()  # refused before any work
    code, _out, err = cli("diagnose", images, "--out", tmp_path / "out", "--workers", "2")
    assert code == 2 and "--engine ray" in err
    code, _out, err = cli("diagnose", images, "--out", tmp_path / "out", "--engine", "ray", "--workers", "0")
    assert code == 2 and "--workers must be 1 or more" in err


def test_core_and_webui_path_do_not_import_ray():
    code = (
        "import sys, lib_humanrefine.cli, lib_humanrefine.bench, lib_humanrefine.folder, lib_humanrefine.service, "
        "lib_humanrefine.engine; sys.exit('ray' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_no_ray_process_is_left_behind():
    """Runs last in this file: every run above shut its Ray instance down. A Ray instance is named
    after the process that started it (``--session-name=session_<time>_<pid>``); one whose starter
    is gone was left behind (instances of runs still going, elsewhere on the machine, are not)."""
    time.sleep(1)
    found = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
    starters = {
        int(match[1]) for line in found if "raylet" in line or "gcs_server" in line
        for match in [re.search(r"--session-name=session_\S*_(\d+)\b", line)] if match
    }  # fmt: skip
    assert not [pid for pid in starters if not Path(f"/proc/{pid}").exists()]


def test_a_ray_worker_runs_its_models_on_the_one_cpu_ray_gives_it(monkeypatch):
    """Ray books one CPU per actor: two-thread detectors and encoder on every core would double-book them;
    an explicit $HUMANREFINE_THREADS is the user's and stays."""
    from lib_humanrefine import scale
    from lib_humanrefine.detect import runtime

    monkeypatch.setattr(runtime, "NUM_THREADS", 2)
    monkeypatch.delenv("HUMANREFINE_THREADS", raising=False)
    scale._worker_environment(None, None)
    assert runtime.NUM_THREADS == scale.WORKER_THREADS == 1
    monkeypatch.setattr(runtime, "NUM_THREADS", 3)
    monkeypatch.setenv("HUMANREFINE_THREADS", "3")
    scale._worker_environment(None, None)
    assert runtime.NUM_THREADS == 3
