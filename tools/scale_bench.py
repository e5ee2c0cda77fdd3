"""Throughput of ``diagnose`` in one process and on Ray Data with 1, 2, ... workers (local mode).

Runs the command line on a folder once per engine (``--no-overlay``: the diagnosis, not PNG
encoding), times each table row as it arrives and samples the processes' memory, then prints JSON:
per engine the images per second (overall and steady, i.e. after the first results), the start-up
seconds (wall time minus images / steady rate: interpreter, Ray, model loading), the peak resident
memory of each process doing the diagnosis, the load average around the run, and whether its
report.json equals the single-process one (entries compared without ``timings_ms``)::

    .venv/bin/python tools/scale_bench.py FOLDER [--workers 1 2] [--no-learned] [--json out/scale.json]

The CPU should be otherwise idle (the load average is printed to judge that). Needs Ray Data
(requirements-dev.txt or the ``[scale]`` extra) and the models (``python -m lib_humanrefine models fetch``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAY_WORKER = "MapWorker"  # in the command line of Ray Data's actor processes


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


def _diagnosing_processes(driver: int) -> dict[int, str]:
    """The driver and Ray's actor processes (started by this run's Ray: there is no other here)."""
    found = {driver: "driver"}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if RAY_WORKER in command:
                found[int(entry.name)] = "worker"
    return found


def measure(folder: Path, out: Path, engine_args: list[str], learned: bool) -> dict:
    command = [sys.executable, "-m", "lib_humanrefine", "diagnose", str(folder), "--out", str(out), "--no-overlay"]
    command += engine_args + ([] if learned else ["--no-learned"])
    peaks: dict[int, tuple[str, float]] = {}
    load_before = os.getloadavg()
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            for pid, role in _diagnosing_processes(process.pid).items():
                peaks[pid] = (role, max(peaks.get(pid, (role, 0.0))[1], _rss_mb(pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    arrivals = []
    lines = iter(process.stdout)
    next(lines, None)  # the table's header
    for line in lines:
        if not line.startswith("note:") and " image(s)" not in line:  # a table row: one image diagnosed
            arrivals.append(time.perf_counter() - start)
    process.wait()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    report = json.loads((out / "report.json").read_text())
    n = len(report["images"])
    first = arrivals[0] if arrivals else wall
    first_batch = sum(t <= first + 0.05 for t in arrivals)  # Ray hands results over a block at a time
    steady = (n - first_batch) / (wall - first) if n > first_batch and wall > first else None
    workers = [mb for role, mb in peaks.values() if role == "worker"]
    return {
        "command": " ".join(command[1:]),
        "exit": process.returncode,
        "images": n,
        "wall_s": round(wall, 1),
        "images_per_s": round(n / wall, 2),
        "images_per_s_steady": round(steady, 2) if steady else None,
        "startup_s": round(wall - n / steady, 1) if steady else None,
        "peak_rss_mb_driver": round(peaks.get(process.pid, ("driver", 0.0))[1], 0),
        "peak_rss_mb_per_worker": [round(mb) for mb in sorted(workers)],
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "report": report,
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
            results[name] = measure(args.folder, Path(scratch) / str(n), engine_args, not args.no_learned)
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
