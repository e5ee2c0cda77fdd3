"""The Ray Data engine: a folder's images diagnosed by a pool of worker processes (actors), each of
which loads the detectors and the encoder once, on this machine (local mode) or on a Ray cluster.

Each image goes through the same ``folder.diagnose_file`` as in one process; results come back to
the driver in the images' order (Ray Data's ``preserve_order``). Ray is an optional extra
(``pip install 'ray[data]'``, the ``[scale]`` extra); nothing else in HumanRefine imports this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from .deps import DEPENDENCIES, install_command
from .errors import BadArgument, HumanRefineError

RAY_REQUIREMENT = DEPENDENCIES["ray"].distribution
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2  # results are small: a small store leaves the memory to the models
BATCH_ROWS = 4  # images per call on a worker
BLOCK_ROWS = 16  # images per Ray block: results reach the driver a block at a time, so keep it small


def check_installed() -> None:
    """HumanRefineError in one line, saying how to install it, when Ray Data is missing."""
    _ray()


def _ray():
    try:
        import ray
        import ray.data  # the extra, not only ray's core
    except ImportError:
        raise HumanRefineError(f"--engine ray needs Ray Data: {install_command('ray')}") from None
    return ray


@contextlib.contextmanager
def started(address: str | None = None, workers: int | None = None):
    """Ray, connected to the cluster at ``address`` or started here (``workers`` CPUs, default all),
    shut down afterwards; yields the number of workers to run (``workers`` or the cluster's CPUs)."""
    ray = _ray()
    if workers is not None and workers < 1:
        raise BadArgument(f"workers must be 1 or more, got {workers}")
    options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": True, "logging_level": "ERROR"}
    if address:
        options["address"] = address
    else:
        options.update(num_cpus=workers or os.cpu_count() or 1, object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    try:
        ray.init(**options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise HumanRefineError(f"could not start {where}: {' '.join(str(exc).split())[:200]}") from None
    interrupted = threading.Event()
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = True
        context.print_on_execution_start = False
        yield workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    finally:
        # Ctrl-C inside ray.shutdown leaves Ray's core worker half shut down, and a thread of Ray's
        # then ends the process (exit 1, before the report is written): held until Ray is down
        with _ctrl_c_held(interrupted):
            ray.shutdown()
    if interrupted.is_set():
        raise KeyboardInterrupt  # came while Ray shut down after the work: honoured now


WORKER_THREADS = 1  # each actor holds one of Ray's CPUs (map_batches' num_cpus): one thread per model


def _worker_environment(models_dir: str | None, heads: str | None) -> None:
    """A worker's models and heads as the driver's (a worker is a separate process, maybe on another
    machine), and its detectors and encoder on one thread each, as Ray counts it, unless
    ``$HUMANREFINE_THREADS`` says otherwise (two-thread workers on every core would double-book them)."""
    from . import models
    from .detect import runtime

    if "HUMANREFINE_THREADS" not in os.environ:
        runtime.NUM_THREADS = WORKER_THREADS
    if models_dir:
        models.set_models_dir(models_dir)
    if heads:
        from .diagnose.learned import set_heads_path

        set_heads_path(heads)


def _driver_environment() -> dict:
    from . import models

    heads = None
    with contextlib.suppress(ImportError):
        from .diagnose.learned import heads_path

        heads = str(heads_path())
    return {"models_dir": str(models.models_dir()), "heads": heads}


class _DiagnoseWorker:
    """One actor: its process keeps the loaded models between batches."""

    def __init__(self, settings: dict, models_dir: str | None, heads: str | None):
        from .folder import Settings

        _worker_environment(models_dir, heads)
        self.settings = Settings(**settings)

    def __call__(self, batch: dict) -> dict:
        from .detect import runtime
        from .folder import diagnose_file
        from .metrics import rss_mb

        results = []
        for index, path in zip(batch["index"], batch["path"]):
            result = diagnose_file(int(index), str(path), self.settings)
            result["worker"] = {"pid": os.getpid(), "rss_mb": round(rss_mb(), 1), "threads": runtime.NUM_THREADS}
            results.append(json.dumps(result))
        return {"result": results}


class _BenchOutcome:
    """One image's ``bench`` diagnosis; Ray Data carries it as a Python object (serialised by Ray itself)."""

    def __init__(self, detections=None, diagnosis=None, error: str | None = None, fatal: str | None = None):
        self.detections, self.diagnosis, self.error, self.fatal = detections, diagnosis, error, fatal


class _BenchWorker:
    """One actor for ``bench``: each image's detections and diagnosis, as objects for the driver."""

    def __init__(self, threshold: float, tta: bool, learned: bool, models_dir: str | None, heads: str | None):
        _worker_environment(models_dir, heads)
        self.options = {"threshold": threshold, "tta": tta, "learned": learned}

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        from .folder import diagnose_or_error

        results = np.empty(len(batch["path"]), dtype=object)
        for n, path in enumerate(batch["path"]):
            try:
                _image, detections, diagnosis, error = diagnose_or_error(Path(path), **self.options)
            except HumanRefineError as exc:
                results[n] = _BenchOutcome(fatal=str(exc))
                continue
            results[n] = _BenchOutcome(detections, diagnosis, error)
        return {"result": results}


def _mapped(rows: list[dict], worker_class, constructor: dict, workers: int):
    ray = _ray()
    dataset = ray.data.from_items(rows, override_num_blocks=-(-len(rows) // BLOCK_ROWS))
    return dataset.map_batches(
        worker_class, fn_constructor_kwargs=constructor, batch_size=BATCH_ROWS, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
    )  # fmt: skip


@contextlib.contextmanager
def _ctrl_c_held(requested: threading.Event | None = None):
    """Ctrl-C as a request, set on ``requested`` (a new event by default) and yielded, for the caller
    to honour when it is safe; a second Ctrl-C interrupts at once. Signals reach the main thread only:
    elsewhere nothing is held."""
    if requested is None:
        requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def request(signum, frame):
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()

    previous = signal.signal(signal.SIGINT, request)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)


def _batch_iterator(dataset):
    """Ray Data's iterator over the batches, closed by the caller while Ray still runs (closed after
    ``ray.shutdown`` by the garbage collector, it logs a traceback)."""
    yield from dataset.iter_batches(batch_size=None, batch_format="numpy")


def _batches(dataset) -> Iterator[dict]:
    """The dataset's batches in order; KeyboardInterrupt after the batch during which Ctrl-C came
    (Ray Data's iterator, blocked waiting for a batch, lets a KeyboardInterrupt go by)."""
    from ray.exceptions import RayError

    with _ctrl_c_held() as interrupted, contextlib.closing(_batch_iterator(dataset)) as batches:
        while True:
            try:
                batch = next(batches, None)
            except RayError as exc:  # a worker died (out of memory, a crash) or the cluster went away
                raise HumanRefineError(f"Ray stopped the run: {' '.join(str(exc).split())[:300]}") from None
            if interrupted.is_set():
                raise KeyboardInterrupt
            if batch is None:
                return
            yield batch
            if interrupted.is_set():
                raise KeyboardInterrupt


def ray_results(jobs: list[tuple[int, str]], settings, workers: int) -> Iterator[dict]:
    """``folder.local_results`` on Ray: each ``(index, path)``'s result, in the jobs' order, plus
    ``worker`` (the process id and its resident memory after the image). Run inside ``started``."""
    if not jobs:
        return
    rows = [{"index": index, "path": path} for index, path in jobs]
    constructor = {"settings": settings.to_dict(), **_driver_environment()}
    for batch in _batches(_mapped(rows, _DiagnoseWorker, constructor, workers)):
        for text in batch["result"]:
            yield json.loads(text)


def ray_bench_diagnoses(paths: list[Path], threshold: float, tta: bool, learned: bool, workers: int) -> Iterator:
    """``(detections, diagnosis, error)`` of each path in order, diagnosed on the workers (``bench``).
    Run inside ``started``; HumanRefineError when a worker cannot diagnose at all (models, runtime)."""
    if not paths:
        return
    rows = [{"path": str(path)} for path in paths]
    constructor = {"threshold": threshold, "tta": tta, "learned": learned, **_driver_environment()}
    for batch in _batches(_mapped(rows, _BenchWorker, constructor, workers)):
        for outcome in batch["result"]:
            if outcome.fatal:
                raise HumanRefineError(outcome.fatal)
            yield outcome.detections, outcome.diagnosis, outcome.error
