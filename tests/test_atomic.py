"""The one writer of every output: whole files or none, a clear line when it cannot write."""

import errno
import json
import os
import re

import numpy as np
import pytest
from conftest import REPO
from test_faults import FailingWrites

from lib_humanrefine.atomic import dumps_json, output_file, output_folder, save_png, write_bytes, write_text
from lib_humanrefine.errors import CannotWrite


def test_new_file_has_the_usual_permissions_and_a_replaced_one_keeps_its_own(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    write_text(tmp_path / "new.json", "{}")
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o666 & ~umask
    (tmp_path / "own.json").write_text("old")
    (tmp_path / "own.json").chmod(0o640)
    write_text(tmp_path / "own.json", "new")
    assert (tmp_path / "own.json").read_text() == "new" and (tmp_path / "own.json").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.json", "own.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    (tmp_path / "report.json").write_text("old")
    FailingWrites(monkeypatch, fail_on=1, error=OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(CannotWrite) as err:
        write_text(tmp_path / "report.json", "new" * 1000)
    assert (
        str(err.value)
        == f"could not write {tmp_path / 'report.json'}: the disk is full: free some space or write elsewhere"
    )
    assert (tmp_path / "report.json").read_text() == "old" and os.listdir(tmp_path) == ["report.json"]


def test_read_only_file_is_refused_unless_asked(tmp_path, monkeypatch):
    path = tmp_path / "kept.json"
    path.write_text("mine")
    path.chmod(0o444)
    real_access = os.access  # root may write read-only files: answer as for any other user
    monkeypatch.setattr(os, "access", lambda p, mode: False if p == path else real_access(p, mode))
    with pytest.raises(CannotWrite, match="permission denied"):
        write_text(path, "theirs")
    assert path.read_text() == "mine"
    write_bytes(path, b"model", replace_read_only=True)
    assert path.read_bytes() == b"model"


def test_folders_in_the_way(tmp_path):
    (tmp_path / "sub").mkdir()
    with pytest.raises(CannotWrite, match="is a folder"):
        write_text(tmp_path / "sub", "x")
    with pytest.raises(CannotWrite, match="is a folder"):
        output_file(tmp_path / "sub")
    (tmp_path / "file").write_text("x")
    with pytest.raises(CannotWrite, match="is a file"):
        output_folder(tmp_path / "file")
    assert output_folder(tmp_path / "a" / "b").is_dir() and output_file(tmp_path / "c" / "d.json").parent.is_dir()


def test_png_encoder_error_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        save_png(tmp_path / "bad.png", np.zeros((4, 4, 3), np.float64))
    assert os.listdir(tmp_path) == []


def test_json_is_always_valid():
    text = dumps_json({"auroc": float("nan"), "p": [np.float32(0.5), np.int64(3), float("inf")], "t": (1, -np.inf)})
    assert json.loads(text, parse_constant=lambda name: pytest.fail(name)) == {
        "auroc": None, "p": [0.5, 3, None], "t": [1, None],
    }  # fmt: skip


def test_every_output_of_the_package_goes_through_the_atomic_writer():
    direct = re.compile(r"\.write_text\(|\.write_bytes\(|\.save\(|open\([^)]*['\"][wax]b?['\"]|np\.save|imwrite")
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for path in [*(REPO / "lib_humanrefine").rglob("*.py"), *(REPO / "scripts").rglob("*.py")]
        if path.name != "atomic.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if direct.search(line) and "os.devnull" not in line
    ]
    assert offenders == []
    assert direct.search('Image.fromarray(a).save(out / "x.png")') and direct.search('open(p, "w")')


def test_a_lock_held_by_another_process_is_waited_for_then_named(tmp_path, monkeypatch):
    import subprocess
    import sys
    import time

    from lib_humanrefine import atomic

    lock = tmp_path / ".labels.csv.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from lib_humanrefine.atomic import locked\n"
         "with locked(sys.argv[1]):\n    print('held', flush=True); time.sleep(float(sys.argv[2]))", str(lock), "1.5"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    monkeypatch.setattr(atomic, "LOCK_WAIT_S", 0.3)
    refused = r"^labels\.csv is locked by another process .* for 0\.3 s; try again$"
    with pytest.raises(CannotWrite, match=refused), atomic.locked(lock, what="labels.csv"):
        pass
    monkeypatch.setattr(atomic, "LOCK_WAIT_S", 30.0)
    start = time.monotonic()
    with atomic.locked(lock):  # waits until the holder lets go
        assert holder.poll() is not None or time.monotonic() - start > 0.5
    assert holder.wait(10) == 0 and lock.exists()
