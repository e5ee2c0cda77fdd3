"""Load check of ``POST /humanrefine/v1/diagnose``: concurrent clients while a generation runs.

Starts the routes on loopback (a bare FastAPI app under uvicorn with the real detectors, in a
child process) or uses a running WebUI (``--url``), then:

1. sends each test image once, alone: the single-request answers (they must all differ, or
   cross-talk could not be seen);
2. starts a "generation" that runs until the load is over: in the bare app a CPU-bound job standing
   in for the sampler (numpy matrix products in the server's thread pool); against a WebUI, small
   ``/sdapi/v1/txt2img`` requests one after another (they queue behind any job already running;
   ``/sdapi/v1/progress`` is sampled to tell how much of the load ran beside a generation);
3. fires ``--clients`` threads × ``--requests`` requests, each client cycling through the images
   from its own offset, so that different images are in flight together;
4. checks: no failed request and the server still answers (no crash); every answer equals the
   single-request answer for its image (no cross-talk; the timings are left out of the comparison);
   the server's resident memory after the load within ``--rss-slack`` of the memory before it (it
   is measured after a warm-up burst, so models and threads are already loaded). Against a WebUI
   the memory is printed but not judged: its generations load and free far more than the route.

Bounded: at most ``--max-seconds`` in all, ``--timeout`` per request. Prints the figures; exit
status 0 when every check passes, 1 otherwise, 2 on bad arguments. Examples::

    .venv/bin/python tools/api_load.py                      # bare app, 4 clients x 50 requests
    .venv/bin/python tools/api_load.py --url http://127.0.0.1:7860 [--auth user:pass] [--pid PID]

Images: ``--images FOLDER`` (its first ``--max-images`` images), else sample photos shipped by the
development requirements (scikit-image, matplotlib) and mirrored/cropped variants of them.
``tests/test_api_load.py`` runs a small version (2 clients x 5 requests) in CI.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROUTE = "/humanrefine/v1/diagnose"
GENERATE = "/loadtest/generate"  # the bare app's stand-in for a generation


# --- the bare server (child process) ------------------------------------------------------------


def make_app():
    """The routes as the WebUI mounts them, plus a CPU-bound 'generation' route."""
    import numpy as np
    from fastapi import FastAPI
    from starlette.concurrency import run_in_threadpool

    from lib_humanrefine import service
    from lib_humanrefine.webui import api

    def no_refine(payload):
        raise service.BadRequest("HumanRefine: this load-test server has no diffusion model; refine runs in a WebUI")

    app = FastAPI()
    api.install_routes(app, None, no_refine)

    def sample(seconds: float) -> int:
        """Matrix products for ``seconds`` (BLAS releases the GIL, like torch's sampler does)."""
        rng = np.random.default_rng(0)
        a, b = rng.random((384, 384), np.float32), rng.random((384, 384), np.float32)
        steps, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            a = np.tanh(a @ b)
            steps += 1
        return steps

    @app.post(GENERATE)
    async def generate(payload: dict):
        seconds = min(max(float(payload.get("seconds", 1.0)), 0.1), 10.0)
        return {"steps": await run_in_threadpool(sample, seconds)}

    return app


def serve(port: int) -> None:
    import uvicorn

    sys.path.insert(0, str(ROOT))
    uvicorn.run(make_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_bare_server(timeout: float = 60.0) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", str(port)], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            raise SystemExit(f"error: the bare server exited at start: {process.stderr.read().strip()[-500:]}")
        try:
            request(url, "GET", "/humanrefine/v1/schema", None, None, 5)
            return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"error: the bare server did not answer within {timeout:.0f} s")


# --- the client side ----------------------------------------------------------------------------


def request(url: str, method: str, path: str, payload, auth: str | None, timeout: float) -> tuple[int, dict]:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url + path, data=data, method=method, headers={"content-type": "application/json"})
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, {"detail": body[:200].decode(errors="replace")}


def answer(body: dict) -> dict:
    """The part of a diagnose answer that must not depend on what else the server does."""
    report = dict(body.get("report") or {})
    report.pop("timings_ms", None)
    return report


def default_images() -> list[tuple[str, object]]:
    import numpy as np
    from matplotlib import cbook
    from PIL import Image
    from skimage import data

    astronaut = data.astronaut()
    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        grace = np.asarray(Image.open(fh).convert("RGB"))
    return [
        ("astronaut", astronaut), ("grace_hopper", grace), ("astronaut mirrored", astronaut[:, ::-1]),
        ("grace_hopper mirrored", grace[:, ::-1]), ("astronaut crop", astronaut[40:424, 60:444]),
        ("grace_hopper crop", grace[60:444, 64:448]),
    ]  # fmt: skip


def folder_images(folder: Path, most: int) -> list[tuple[str, object]]:
    from lib_humanrefine.errors import BadImage
    from lib_humanrefine.images import find_images, load_image

    out = []
    for path in find_images([folder]):
        try:
            out.append((path.name, load_image(path)))
        except BadImage as exc:
            print(f"skipped {exc}", file=sys.stderr)
        if len(out) == most:
            break
    return out


def png_base64(array) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def rss_mib(pid: int | None) -> float | None:
    """Resident memory of a process (Linux /proc), MiB; None when it cannot be read."""
    if pid is None:
        return None
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) / 1024 if match else None


def listening_pid(url: str) -> int | None:
    """The process listening on the URL's loopback port (``ss``; same user only), else None."""
    port = urllib.parse.urlsplit(url).port
    try:
        out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"pid=(\d+)", out)
    return int(match.group(1)) if match else None


@dataclass
class Figures:
    sent: int = 0
    ok: int = 0
    mismatches: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    generations: int = 0
    generation_errors: list[str] = field(default_factory=list)
    busy_samples: list[bool] = field(default_factory=list)  # WebUI: a job was running at each sample
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(index, count, url, auth, payloads, references, figures, deadline, timeout):
    for k in range(count):
        if time.monotonic() > deadline:
            with figures.lock:
                figures.failures.append(f"client {index}: stopped at request {k + 1}: --max-seconds reached")
            return
        image = (index + k) % len(payloads)
        start = time.monotonic()
        try:
            status, body = request(url, "POST", ROUTE, {"image": payloads[image][1]}, auth, timeout)
        except OSError as exc:  # refused, reset, timed out: the server crashed or hung
            status, body = None, {"detail": f"{exc.__class__.__name__}: {exc}"}
        elapsed = time.monotonic() - start
        with figures.lock:
            figures.sent += 1
            if status != 200:
                figures.failures.append(f"{payloads[image][0]}: HTTP {status}: {str(body.get('detail'))[:160]}")
            elif answer(body) != references[image]:
                figures.mismatches.append(payloads[image][0])
            else:
                figures.ok += 1
                figures.latencies.append(elapsed)


def generation_loop(url, auth, stop: threading.Event, figures: Figures, bare: bool, timeout: float):
    """Generations one after another until ``stop`` is set (the last one is let finish)."""
    while not stop.is_set():
        if bare:
            path, payload = GENERATE, {"seconds": 2.0}
        else:
            path = "/sdapi/v1/txt2img"
            payload = {"prompt": "a photo of a person", "steps": 4, "width": 128, "height": 128, "seed": 1,
                       "send_images": False, "save_images": False}  # fmt: skip
        try:
            status, body = request(url, "POST", path, payload, auth, timeout)
        except OSError as exc:
            status, body = None, {"detail": str(exc)}
        with figures.lock:
            if status == 200:
                figures.generations += 1
            else:
                figures.generation_errors.append(f"HTTP {status}: {str(body.get('detail'))[:160]}")
                return


def watch_progress(url, auth, stop: threading.Event, figures: Figures) -> None:
    """WebUI: whether a generation job is running, every 2 s until ``stop``."""
    while not stop.wait(2.0):
        try:
            status, body = request(url, "GET", "/sdapi/v1/progress?skip_current_image=true", None, auth, 10)
        except OSError:
            continue
        state = body.get("state") or {}
        with figures.lock:
            figures.busy_samples.append(status == 200 and (bool(state.get("job")) or state.get("job_count", 0) > 0))


def percentile(values: list[float], q: int) -> float | None:
    """The q-th percentile (1-99), None without values."""
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def run(args) -> dict:
    started = time.monotonic()
    deadline = started + args.max_seconds
    server = None
    if args.url:
        url, pid = args.url.rstrip("/"), args.pid or listening_pid(args.url)
    else:
        server, url = start_bare_server()
        pid = server.pid
    try:
        images = folder_images(Path(args.images), args.max_images) if args.images else default_images()
        if len(images) < 2:
            raise SystemExit("error: give at least two different images (--images)")
        payloads = [(name, png_base64(array)) for name, array in images]
        references = []
        for name, data in payloads:  # the single-request answers
            status, body = request(url, "POST", ROUTE, {"image": data}, args.auth, args.timeout)
            if status != 200:
                raise SystemExit(f"error: {name}: HTTP {status}: {body.get('detail')}")
            references.append(answer(body))
        distinct = len({json.dumps(r, sort_keys=True) for r in references})
        if distinct < len(references):
            raise SystemExit("error: two test images give the same answer; cross-talk could not be seen")
        warm = Figures()  # a burst that starts the server's threads before memory is measured
        burst = [threading.Thread(target=client, args=(i, 2, url, args.auth, payloads, references, warm, deadline,
                                                       args.timeout)) for i in range(args.clients)]  # fmt: skip
        for thread in burst:
            thread.start()
        for thread in burst:
            thread.join()
        rss_before = rss_mib(pid)

        figures = Figures()
        stop = threading.Event()
        gen_timeout = args.timeout if server is not None else max(args.timeout, deadline - time.monotonic())
        generation = threading.Thread(
            target=generation_loop, args=(url, args.auth, stop, figures, server is not None, gen_timeout), daemon=True
        )
        generation.start()
        done = threading.Event()
        watcher = threading.Thread(target=watch_progress, args=(url, args.auth, done, figures), daemon=True)
        if server is None:
            watcher.start()
        load_start = time.monotonic()
        clients = [threading.Thread(target=client, args=(i, args.requests, url, args.auth, payloads, references,
                                                         figures, deadline, args.timeout))
                   for i in range(args.clients)]  # fmt: skip
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        load_seconds = time.monotonic() - load_start
        stop.set()
        done.set()
        # the bare app's last stand-in job ends within seconds; a WebUI's queued txt2img may wait behind
        # other jobs: it is not waited for long (it runs on its own, a small job)
        generation.join(timeout=max(1.0, min(deadline - time.monotonic(), 30.0 if server is None else 5.0)))
        rss_after = rss_mib(pid)
        try:
            alive = request(url, "GET", "/humanrefine/v1/schema", None, args.auth, 10)[0] == 200
        except OSError:
            alive = False
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
    growth = None if rss_before is None or rss_after is None else rss_after - rss_before
    flat = growth is None or args.url is not None or growth <= max(args.rss_slack, 0.05 * rss_before)
    lat = figures.latencies
    out = {
        "server": url if args.url else "bare FastAPI app (uvicorn, loopback)", "clients": args.clients,
        "requests_per_client": args.requests, "images": len(payloads), "sent": figures.sent, "ok": figures.ok,
        "mismatches": len(figures.mismatches), "failures": len(figures.failures),
        "latency_s": {"p50": _round(percentile(lat, 50), 3), "p95": _round(percentile(lat, 95), 3),
                      "max": _round(max(lat, default=None), 3),
                      "mean": _round(statistics.fmean(lat), 3) if lat else None},
        "throughput_per_s": round(figures.sent / load_seconds, 2) if load_seconds else None,
        "load_seconds": round(load_seconds, 1), "generations_during_load": figures.generations,
        "generation_busy_share": round(sum(figures.busy_samples) / len(figures.busy_samples), 2)
        if figures.busy_samples else None,
        "generation_errors": figures.generation_errors, "rss_mib_before": _round(rss_before),
        "rss_mib_after": _round(rss_after), "rss_growth_mib": _round(growth), "server_alive": alive,
        "total_seconds": round(time.monotonic() - started, 1),
        "examples": (figures.failures + [f"answer differs for {m}" for m in figures.mismatches])[:5],
    }  # fmt: skip
    out["passed"] = bool(
        alive and flat and figures.ok == figures.sent == args.clients * args.requests
        and (figures.generations > 0 or (out["generation_busy_share"] or 0) >= 0.5) and not figures.generation_errors
    )  # fmt: skip
    return out


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def print_figures(out: dict) -> None:
    lat = out["latency_s"]
    rss = "not measured (give --pid)" if out["rss_mib_before"] is None else (
        f"{out['rss_mib_before']} -> {out['rss_mib_after']} MiB ({out['rss_growth_mib']:+} MiB)"
        + (" (with the WebUI's generations: not judged)" if out["server"].startswith("http") else ""))  # fmt: skip
    print(f"server            {out['server']}")
    print(f"load              {out['clients']} clients x {out['requests_per_client']} requests, "
          f"{out['images']} different images, {out['load_seconds']} s")  # fmt: skip
    print(f"answers           {out['ok']}/{out['sent']} equal to the single-request answer; "
          f"{out['mismatches']} differ; {out['failures']} failed")  # fmt: skip
    print(f"latency           p50 {lat['p50']} s, p95 {lat['p95']} s, max {lat['max']} s")
    print(f"throughput        {out['throughput_per_s']} requests/s")
    busy = out["generation_busy_share"]
    print(f"generation        {out['generations_during_load']} finished during the load"
          + (f"; a job running in {busy:.0%} of the progress samples" if busy is not None else "")
          + (f"; errors: {out['generation_errors'][0]}" if out["generation_errors"] else ""))  # fmt: skip
    print(f"server RSS        {rss}")
    print(f"server alive      {out['server_alive']}")
    for example in out["examples"]:
        print(f"  {example}")
    print(f"result            {'PASS' if out['passed'] else 'FAIL'} in {out['total_seconds']} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running WebUI started with --api (default: start a bare app on loopback)")
    parser.add_argument("--auth", help="user:password when the WebUI runs with --api-auth")
    parser.add_argument("--pid", type=int, help="the server's process id, for its memory (default: found by port)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=50, help="requests per client")
    parser.add_argument("--images", help="a folder of test images (default: sample photos and variants)")
    parser.add_argument("--max-images", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="the whole check stops after this")
    parser.add_argument("--rss-slack", type=float, default=64.0, help="MiB the server may grow (or 5 %%)")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the bare server itself
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    if not (1 <= args.clients <= 64 and 1 <= args.requests <= 10_000 and args.max_images >= 2):
        parser.error("--clients 1-64, --requests 1-10000, --max-images at least 2")
    sys.path.insert(0, str(ROOT))
    out = run(args)
    print_figures(out)
    if args.json:
        from lib_humanrefine.atomic import write_json

        write_json(args.json, out)
    return 0 if out["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
