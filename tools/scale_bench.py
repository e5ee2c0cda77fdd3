"""Throughput of ``diagnose`` in one process and on Ray Data with 1, 2, ... workers (local mode).

Runs the command line on a folder once per engine (``--no-overlay``: the diagnosis, not PNG
encoding), times it and samples its processes' memory, then prints JSON:
per engine the images per second (overall, and after the start-up), the start-up seconds (a cold
run on one image per worker: interpreter, Ray, model loading, one image each), the peak resident
memory of the driver and of each Ray worker, the load average around the run, and whether its
report.json equals the single-process one (entries compared without ``timings_ms``)::

    .venv/bin/python tools/scale_bench.py FOLDER [--workers 1 2] [--no-learned] [--json out/scale.json]

The CPU should be otherwise idle (the load average is printed to judge that). Needs Ray Data
(requirements-dev.txt or the ``[scale]`` extra) and the models (``python -m lib_humanrefine models fetch``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # lib_humanrefine from this checkout

RAY_WORKER = "MapWorker"  # in the command line of Ray Data's actor processes


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


def _descendants(root: int) -> dict[int, str]:
    """The processes under ``root`` (Ray's raylet and its workers are the driver's descendants), with
    their command lines."""
    parents, commands = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            commands[int(entry.name)] = command
    found, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found[child] = commands.get(child, "")
                frontier.append(child)
    return found


def run(folder: Path, out: Path, engine_args: list[str], learned: bool) -> dict:
    """One run of the command line: wall time, table rows' arrival times, peak memory per process."""
    command = [sys.executable, "-m", "lib_humanrefine", "diagnose", str(folder), "--out", str(out), "--no-overlay"]
    command += engine_args + ([] if learned else ["--no-learned"])
    peaks: dict[int, tuple[str, float]] = {}
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            processes = {process.pid: "driver"}
            processes.update({pid: "worker" for pid, cmd in _descendants(process.pid).items() if RAY_WORKER in cmd})
            for pid, role in processes.items():
                peaks[pid] = (role, max(peaks.get(pid, (role, 0.0))[1], _rss_mb(pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    process.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    return {
        "command": command,
        "exit": process.returncode,
        "wall_s": wall,
        "report": json.loads((out / "report.json").read_text()),
        "driver_mb": peaks.get(process.pid, ("driver", 0.0))[1],
        "workers_mb": sorted(mb for role, mb in peaks.values() if role == "worker"),
    }


def measure(folder: Path, scratch: Path, engine_args: list[str], learned: bool, workers: int) -> dict:
    """A cold start on one image per worker (start-up: interpreter, Ray, models, one image each),
    then the whole folder."""
    from lib_humanrefine.images import IMAGE_SUFFIXES

    first = scratch / "first"
    first.mkdir(parents=True)
    images = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    for n, image in enumerate(images[:workers]):
        shutil.copy(image, first / f"{n}{image.suffix}")
    load_before = os.getloadavg()[0]
    cold = run(first, scratch / "first-out", engine_args, learned)
    whole = run(folder, scratch / "out", engine_args, learned)
    n = len(whole["report"]["images"])
    after = (n - workers) / (whole["wall_s"] - cold["wall_s"]) if whole["wall_s"] > cold["wall_s"] else None
    return {
        "command": " ".join(whole["command"][1:]),
        "exit": whole["exit"],
        "images": n,
        "wall_s": round(whole["wall_s"], 1),
        "images_per_s": round(n / whole["wall_s"], 2),
        "startup_s": round(cold["wall_s"], 1),  # to one image per worker, from a cold start
        "images_per_s_after_startup": round(after, 2) if after else None,
        "peak_rss_mb_driver": round(whole["driver_mb"]),
        "peak_rss_mb_per_worker": [round(mb) for mb in whole["workers_mb"]],
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "report": whole["report"],
    }


def untimed(report: dict) -> list[dict]:
    return [{k: v for k, v in entry.items() if k != "timings_ms"} for entry in report["images"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="images to diagnose (e.g. copies of ../shared/data)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray workers per run (default 1 2)")
    parser.add_argument("--no-learned", action="store_true", help="landmark signals only")
    parser.add_argument("--no-local", action="store_true", help="skip the single-process run (no equality check)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not args.folder.is_dir():
        parser.error(f"{args.folder}: no such folder")
    runs = ([("local", [])] if not args.no_local else []) + [
        (f"ray {k} worker(s)", ["--engine", "ray", "--workers", str(k)]) for k in args.workers
    ]
    results = {}
    with tempfile.TemporaryDirectory(prefix="humanrefine-scale-") as scratch:
        for n, (name, engine_args) in enumerate(runs):
            print(f"{name} ...", file=sys.stderr, flush=True)
            workers = int(engine_args[-1]) if engine_args else 1
            results[name] = measure(args.folder, Path(scratch) / str(n), engine_args, not args.no_learned, workers)
            shown = {k: v for k, v in results[name].items() if k not in ("report", "command")}
            print(f"{name}: {json.dumps(shown)}", file=sys.stderr, flush=True)  # each run's figures as it ends
    reference = results.get("local", {}).get("report")
    for result in results.values():
        report = result.pop("report")
        result["complete"] = report["complete"]
        if reference is not None:
            result["report_equals_local"] = untimed(report) == untimed(reference) and (
                report["skipped"] == reference["skipped"]
            )
    figures = {"cpus": os.cpu_count(), "learned": not args.no_learned, "runs": results}
    text = json.dumps(figures, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
