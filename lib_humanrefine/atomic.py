"""Writing outputs so that a crash, a full disk or Ctrl-C never leaves a half-written file.

Each file is written under a temporary name in its own folder, flushed to disk, then renamed
over the target with ``os.replace`` (atomic on POSIX and Windows): the target is either the old
file or the complete new one. The standard library has the pieces (``os.open``, ``os.replace``)
but no helper that joins them; every output of HumanRefine (reports, overlays, plan files,
bench figures, model files) goes through this module. Failures raise ``CannotWrite`` with one
line naming the file, the reason and what to do.

A file that several processes update (the labels a tab in two WebUIs, or a script beside it,
append to) is read, changed and replaced under ``locked``: an exclusive lock on a lock file beside
it, held across processes, so no process replaces the file with a copy that lacks another's rows.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import secrets
import stat
import tempfile
import time
from pathlib import Path

import numpy as np

from .errors import CannotWrite

_HINTS = {
    errno.ENOSPC: "the disk is full: free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up: free some space or write elsewhere",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "permission denied: choose a folder you can write to",
    errno.EROFS: "read-only file system: write elsewhere",
    errno.ENAMETOOLONG: "the name is too long: use a shorter output path",
}


protected: set[Path] = set()  # resolved paths never replaced: the command line puts its input images here


def _reason(exc: OSError) -> str:
    return _HINTS.get(exc.errno or 0) or (exc.strerror or str(exc)).strip()


def _cannot_write(path: Path, exc: OSError) -> CannotWrite:
    return CannotWrite(f"could not write {path}: {_reason(exc)}")


def write_bytes(path: str | os.PathLike, data: bytes, replace_read_only: bool = False) -> Path:
    """Replace ``path`` with ``data`` atomically. An existing read-only file is refused, not replaced,
    unless ``replace_read_only`` (files HumanRefine owns, such as the models)."""
    path = Path(path)
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        if protected and path.resolve() in protected:
            raise CannotWrite(f"could not write {path}: it is one of the input images; choose another output folder")
        mode = None  # a new file gets the usual permissions (umask); a replaced one keeps its own
        if path.exists() and not replace_read_only:
            if not os.access(path, os.W_OK):
                raise PermissionError(errno.EACCES, "the file is read-only", str(path))
            mode = stat.S_IMODE(path.stat().st_mode)
        tmp = path.with_name(f".{path.name[:60]}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except IsADirectoryError:
        raise CannotWrite(f"could not write {path}: it is a folder; give a file name") from None
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:  # incl. KeyboardInterrupt: never leave the temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from None
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def json_safe(obj):
    """``obj`` with NaN and infinities as None (JSON has no such numbers) and numpy scalars as Python ones."""
    if isinstance(obj, dict):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value) for value in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps_json(obj) -> str:
    """Valid JSON text as every HumanRefine file writes it: NaN and infinities become null."""
    return json.dumps(json_safe(obj), indent=1, allow_nan=False)


def write_json(path: str | os.PathLike, obj) -> Path:
    return write_text(path, dumps_json(obj) + "\n")


def encoded(image, fmt: str = "PNG", **options) -> bytes:
    """A numpy array or PIL image encoded in memory (``fmt`` and ``options`` as Pillow takes them)."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def scratch_file(pieces, suffix: str = "") -> Path:
    """A new temporary file holding these pieces of bytes, for a library that reads only from a path
    (not an output: the caller removes it once read). OSError where no temporary file can be written;
    a file written only in part is removed."""
    handle, name = tempfile.mkstemp(prefix="humanrefine-", suffix=suffix)
    try:
        with os.fdopen(handle, "wb") as fh:
            fh.writelines(pieces)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(name)
        raise
    return Path(name)


def npz_bytes(**arrays) -> bytes:
    """Arrays as a compressed ``.npz`` in memory (plain arrays only: it is read with allow_pickle=False)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def png_bytes(image, text: dict[str, str] | None = None) -> bytes:
    """A numpy array or PIL image encoded as PNG in memory, with ``text`` chunks (e.g. the infotext)."""
    from PIL import PngImagePlugin

    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
    return encoded(image, "PNG", pnginfo=info)


def save_png(path: str | os.PathLike, image) -> Path:
    """A numpy array or PIL image as a PNG, encoded in memory first (an encoder error writes nothing)."""
    return write_bytes(path, png_bytes(image))


def output_folder(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Create ``path`` if needed and prove it writable, before any work is done."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CannotWrite(f"{flag} {path} is a file, not a folder: give a folder (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path, prefix=".humanrefine-"):
            pass
    except OSError as exc:
        raise CannotWrite(f"{flag} {path} cannot be written: {_reason(exc)}") from None
    return path


def output_file(path: str | os.PathLike, flag: str = "--json", example: str = "bench.json") -> Path:
    """Check, before any work, that ``path`` can be written (its folder is created if missing)."""
    path = Path(path)
    if path.is_dir():
        raise CannotWrite(f"{flag} {path} is a folder: give a file name, e.g. {path / example}")
    if path.exists() and not os.access(path, os.W_OK):
        raise CannotWrite(f"{flag} {path} is read-only: choose another file or make it writable")
    output_folder(path.parent, flag=f"{flag} folder")
    return path


LOCK_WAIT_S = 30.0  # a lock is held for milliseconds: this long means a process hangs while holding it


@contextlib.contextmanager
def locked(lock_path: str | os.PathLike, what: str = "file"):
    """Hold an exclusive lock on ``lock_path`` (created if missing, never removed: removing it would
    let two processes lock two different files) across processes and threads.

    The standard library's own locks: ``fcntl.flock`` on Linux and macOS, ``msvcrt.locking`` on
    Windows (one byte), both released by the system when the holder exits or crashes. An append with
    O_APPEND instead would not let a writer check the file's rows and add its own as one step, and
    on Windows the C runtime emulates O_APPEND with a seek before each write, which two processes
    can interleave. CannotWrite after ``LOCK_WAIT_S`` seconds, naming ``what``."""
    lock_path = Path(lock_path)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise _cannot_write(lock_path, exc) from None
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while not _try_lock(fd):
            if time.monotonic() > deadline:
                raise CannotWrite(f"{what} is locked by another process ({lock_path}) for {LOCK_WAIT_S:g} s; try again")
            time.sleep(0.005)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        if os.name == "nt":
            import msvcrt

            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):  # held elsewhere (Windows: EACCES / EDEADLOCK)
        return False
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN, getattr(errno, "EDEADLOCK", errno.EDEADLK)):
            return False
        raise
    return True


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):  # closing the descriptor releases it in any case
        if os.name == "nt":
            import msvcrt

            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)
