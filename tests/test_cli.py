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


# --- help, prog, options after the sub-command ---------------------------------------------------

SUBCOMMANDS = ["diagnose", "bench", "plan", "refine", "train", "models"]


def test_the_description_is_one_clean_line_naming_every_sub_command():
    from lib_humanrefine.cli import build_parser

    description = build_parser().description
    assert "\n" not in description and "`" not in description
    for name in SUBCOMMANDS:
        assert name in description


def test_help_shows_every_options_default():
    import argparse

    from lib_humanrefine.cli import build_parser

    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert sorted(subparsers.choices) == sorted(SUBCOMMANDS)
    for name, sub in [("", parser), *subparsers.choices.items()]:
        formatter = sub._get_formatter()
        for action in sub._actions:
            if not action.option_strings or action.nargs == 0 or action.required:  # flags, help, required ones
                continue
            shown = formatter._expand_help(action) if action.help else ""
            assert "default" in shown, f"{name} {action.option_strings[0]}: {shown!r}"
            if action.default not in (
                None,
                argparse.SUPPRESS,
                [],
                False,
            ) and "%(default)" in formatter._get_help_string(action):
                assert str(action.default) in shown


def test_plan_and_refine_share_the_webuis_default_policy():
    from lib_humanrefine.cli import build_parser
    from lib_humanrefine.options import SCRIPT_OPTIONS

    webui = next(o.default for o in SCRIPT_OPTIONS if o.key == "policy")
    parser = build_parser()
    assert parser.parse_args(["plan", "x.png"]).policy == webui == "all"
    refine_help = run_cli("refine", "--help").stdout
    assert f"default: {webui}" in " ".join(refine_help.split())


def test_help_and_errors_name_the_command_as_it_was_run():
    module = run_cli("--help")
    assert module.returncode == 0 and module.stdout.startswith("usage: python -m lib_humanrefine ")
    console = subprocess.run(
        [sys.executable, "-c", "import sys; from lib_humanrefine.__main__ import console; sys.argv[0] = 'x'; "
         "sys.exit(console())", "diagnose", "--threshold", "7"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert console.returncode == 2 and console.stderr.startswith("humanrefine diagnose: error: ")


def test_the_console_commands_hints_name_it(tmp_path):
    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    script = "import sys; from lib_humanrefine.__main__ import console; sys.exit(console())"
    missing = subprocess.run([sys.executable, "-c", script, "diagnose", str(tmp_path / "a.png"), "--models-dir",
                              str(tmp_path / "empty")], capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert missing.returncode == 2
    assert f"run: humanrefine --models-dir {tmp_path / 'empty'} models fetch" in missing.stderr
    module = run_cli("diagnose", str(tmp_path / "a.png"), "--models-dir", str(tmp_path / "empty"))
    assert "run: python -m lib_humanrefine --models-dir" in module.stderr


def test_global_options_are_taken_after_the_sub_command_too(tmp_path):
    before = run_cli("--models-dir", str(tmp_path / "empty"), "models", "check")
    after = run_cli("models", "check", "--models-dir", str(tmp_path / "empty"))
    assert after.returncode == before.returncode == 2
    assert after.stdout == before.stdout and str(tmp_path / "empty") in after.stdout
    from lib_humanrefine.cli import build_parser

    args = build_parser().parse_args(["--heads", "a.npz", "diagnose", "x.png"])
    assert str(args.heads) == "a.npz" and args.models_dir is None  # not reset by the sub-command
    args = build_parser().parse_args(["diagnose", "x.png", "--heads", "b.npz", "--models-dir", "m"])
    assert str(args.heads) == "b.npz" and str(args.models_dir) == "m"


# --- a missing dependency ------------------------------------------------------------------------

BLOCKER = """
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == {module!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Blocker())
for name in [m for m in sys.modules if m.split(".")[0] == {module!r}]:
    del sys.modules[name]
from lib_humanrefine.__main__ import run
sys.exit(run({prog!r}))
"""


def run_without(module: str, *args, prog="humanrefine"):
    return subprocess.run(
        [sys.executable, "-c", BLOCKER.format(module=module, prog=prog), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    ("module", "package", "args"),
    [
        ("numpy", "numpy", ["models", "check"]),  # missing before the command line is even read
        ("cv2", "opencv-python-headless", ["diagnose", "x.png"]),
        ("ai_edge_litert", "ai-edge-litert", ["diagnose", "x.png"]),
    ],
)
def test_a_missing_dependency_is_one_line_naming_the_install_command(models_ready, tmp_path, module, package, args):
    args = [str(tmp_path / a) if a.endswith(".png") else a for a in args]
    if args[0] == "diagnose":
        Image.new("RGB", (64, 64)).save(args[1])
        args += ["--out", str(tmp_path / "out")]
    result = run_without(module, *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert package in line and f"-m pip install {package}==" in line  # a checkout: the pinned package


def test_missing_sample_packages_say_what_to_install(models_ready, tmp_path):
    script = BLOCKER.replace("{module!r}", "m").replace("{{name!r}}", "{name!r}")
    script = script.replace('if name.split(".")[0] == m:', "if name.split(\".\")[0] in ('skimage', 'matplotlib'):")
    script = script.replace("== m]", "in ('skimage', 'matplotlib')]").replace("{prog!r}", "'humanrefine'")
    result = subprocess.run([sys.executable, "-c", script, "diagnose", "--samples", "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--samples needs scikit-image" in result.stderr and "pip install scikit-image==" in result.stderr


def test_an_installed_package_names_its_extra(monkeypatch):
    from lib_humanrefine import deps

    monkeypatch.setattr(deps, "CHECKOUT", False)
    exc = ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")
    message = deps.missing_message(exc)
    assert message.startswith("humanrefine: the learned check needs onnxruntime")
    assert message.endswith("-m pip install 'humanrefine[learned]'")
    assert deps.missing_message(ModuleNotFoundError("x", name="not_ours")) is None  # a bug shows as one


def test_training_without_its_packages_says_so_before_any_work(models_ready, tmp_path):
    (tmp_path / "labels.csv").write_text("path,label\n")
    for module, args, package in [("onnxruntime", [], "onnxruntime"), ("sklearn", ["--fresh"], "scikit-learn")]:
        result = run_without(module, "train", "--data", str(tmp_path), "--out", str(tmp_path / "h.npz"), *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert ("training needs " if module == "sklearn" else "the learned check needs ") in line
        assert f"-m pip install {package}==" in line and not (tmp_path / "h.npz").exists()


# --- output a person reads -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("/data/a/b/c/photo_of_people.png", 40, "/data/a/b/c/photo_of_people.png"),
        ("/data/generated/batch_0001/photo_of_people.png", 30, "/data/gen…/photo_of_people.png"),
        ("/data/generated/batch_0001/photo_of_people.png", 21, "…/photo_of_people.png"),
        ("/data/generated/batch_0001/photo_of_people.png", 20, "…photo_of_people.png"),
        ("/data/generated/batch_0001/photo_of_people.png", 19, "photo_of_people.png"),
        ("/data/generated/batch_0001/photo_of_people.png", 12, "photo…le.png"),
    ],
)
def test_a_long_path_keeps_its_file_name(monkeypatch, text, width, expected):
    from lib_humanrefine import cli

    monkeypatch.setattr(cli, "_ellipsis", lambda: "…")
    assert cli.fit_name(text, width) == expected and len(expected) <= width


def test_the_diagnose_table_fits_the_terminal_without_the_runtimes_chatter(models_ready, astronaut, tmp_path):
    import os

    folder = tmp_path / "a_long_folder_name_of_generated_pictures" / "batch_number_two_thousand_and_twenty_six"
    folder.mkdir(parents=True)
    Image.fromarray(astronaut).save(folder / "astronaut_in_white.png")
    env = {**os.environ, "COLUMNS": "80"}
    command = [sys.executable, "-m", "lib_humanrefine", "diagnose", str(folder), "--no-tta", "--out"]
    split = subprocess.run(command + [str(tmp_path / "o1")], capture_output=True, text=True, cwd=REPO, env=env)
    assert split.returncode == 0, split.stderr
    assert "XNNPACK" not in split.stdout + split.stderr  # stdout holds the table; the runtime's line is dropped
    merged = subprocess.run(  # as a terminal shows both streams
        command + [str(tmp_path / "o2")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env
    )
    header, row, summary = merged.stdout.strip().splitlines()
    assert header.startswith("image") and summary.startswith("1 image(s)")
    assert max(len(line) for line in (header, row)) <= 80
    assert "astronaut_in_white.png" in row  # the file name whole, the folders elided


def test_out_holds_only_this_runs_files(models_ready, astronaut, grace_hopper, tmp_path):
    Image.fromarray(astronaut).save(tmp_path / "astronaut.png")
    Image.fromarray(grace_hopper).save(tmp_path / "hopper.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "0007_mine_overlay.png").write_bytes(b"not listed in any report")
    first = run_cli("diagnose", tmp_path / "astronaut.png", tmp_path / "hopper.png", "--out", out, "--no-tta")
    assert first.returncode == 0, first.stderr
    assert "removed" not in first.stdout
    old = {entry["overlay"] for entry in json.loads((out / "report.json").read_text())["images"]}
    assert old == {"0000_astronaut_overlay.png", "0001_hopper_overlay.png"}
    second = run_cli("diagnose", tmp_path / "hopper.png", "--out", out, "--no-tta")
    assert second.returncode == 0, second.stderr
    assert f"{out}: removed 2 overlay(s) of an earlier run (listed in its report.json)" in second.stdout
    listed = {entry["overlay"] for entry in json.loads((out / "report.json").read_text())["images"]}
    assert listed == {"0000_hopper_overlay.png"}
    assert {p.name for p in out.iterdir()} == listed | {"report.json", "notes.txt", "0007_mine_overlay.png"}


def test_a_report_naming_other_files_removes_none(tmp_path):
    from lib_humanrefine.cli import remove_earlier_outputs

    outside = tmp_path / "precious_overlay.png"
    outside.write_bytes(b"x")
    out = tmp_path / "out"
    out.mkdir()
    (out / "photo.png").write_bytes(b"x")
    names = ["../precious_overlay.png", str(outside), "photo.png", "report.json", 7, None]
    (out / "report.json").write_text(json.dumps({"images": [{"overlay": n, "output": n} for n in names]}))
    assert remove_earlier_outputs(out) == 0
    assert outside.is_file() and (out / "photo.png").is_file() and (out / "report.json").is_file()


def webui_png(path, pixels, parameters: str):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", parameters)
    Image.fromarray(pixels).save(path, pnginfo=info)
    return path


INFOTEXT = (
    "an astronaut smiling, studio photo\nNegative prompt: blurry, lowres\nSteps: 28, Sampler: DPM++ 2M, "
    "Schedule type: Karras, CFG scale: 6.5, Seed: 1234567, Size: 1024x1024, Model hash: 31e35c80fc, "
    "Model: sd_xl_base_1.0, Version: v1.10.1"
)


def test_plan_reads_the_generation_parameters_of_a_webui_image(models_ready, cli, astronaut, tmp_path):
    source = webui_png(tmp_path / "webui.png", astronaut, INFOTEXT)
    code, stdout, err = cli("plan", source, "--out", tmp_path / "plan", "--no-learned")
    assert code == 0, err
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert plan["model"] == "sdxl" and plan["policy"] == "all" and plan["steps"]
    assert plan["generation"] == {
        "sampler": "DPM++ 2M",
        "from_image": ["prompt", "negative_prompt", "seed", "steps", "cfg_scale", "sampler", "model"],
    }
    for step in plan["steps"]:
        assert step["prompt"].startswith("an astronaut smiling, studio photo") and step["cfg_scale"] == 6.5
        assert "blurry, lowres" in step["negative_prompt"]
    assert {step["seed"] - 1000 * (step["index"] + 1) for step in plan["steps"]} == {1234567}  # the plan's offsets
    said = "from the image's infotext: prompt, negative prompt, seed 1234567, steps 28, CFG 6.5, sampler DPM++ 2M, "
    assert said + "model family sdxl (model sd_xl_base_1.0), size 1024x1024 (the image is 512x512)" in stdout
    assert "cost: about " in stdout and "× the work of one pass per detected hand and face" in stdout
    assert "UNet" not in stdout.replace("the raw UNet figures are in plan.json", "")

    code, stdout, err = cli("plan", source, "--out", tmp_path / "given", "--no-learned", "--seed", "5", "--model",
                            "sd15", "--prompt", "a person")  # fmt: skip
    assert code == 0, err
    given = json.loads((tmp_path / "given" / "plan.json").read_text())
    assert given["model"] == "sd15" and {step["seed"] - 1000 * (step["index"] + 1) for step in given["steps"]} == {5}
    assert given["steps"][0]["prompt"].startswith("a person") and "seed" not in given["generation"]["from_image"]
    assert "from the image's infotext: negative prompt, steps 28" in stdout


def test_plan_says_nothing_of_an_image_without_parameters(models_ready, cli, astronaut, tmp_path):
    Image.fromarray(astronaut).save(tmp_path / "plain.png")
    code, stdout, err = cli("plan", tmp_path / "plain.png", "--out", tmp_path / "plan", "--no-learned")
    assert code == 0, err
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert plan["model"] == "sd15" and plan["generation"]["from_image"] == [] and "infotext" not in stdout


def test_the_last_column_is_cut_at_a_word(monkeypatch):
    from lib_humanrefine import cli

    monkeypatch.setattr(cli, "_ellipsis", lambda: "…")
    text = "P1 right hand 0.93 fused fingers; learned hand check 0.9"
    assert cli.fit_text(text, 20) == "P1 right hand 0.93…"
    assert cli.fit_text(text, 24) == "P1 right hand 0.93…"
    assert cli.fit_text(text, 26) == "P1 right hand 0.93 fused…"
    assert cli.fit_text(text, 80) == text
