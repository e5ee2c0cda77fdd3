"""One image of a folder run, as every engine does it: load -> diagnose -> overlay -> report entry.

``diagnose`` (in one process or on Ray, ``scale.py``) and ``bench`` call these functions for each
image, so the engines' reports are equal by construction. A result is a plain dict (it crosses
process boundaries as JSON): ``entry`` (the report's image entry) and ``table`` (the counts the
command line prints), or ``skipped`` (``{"path", "error"}``: this image could not be used), or
``fatal`` (models, runtime or an output that cannot be written: every further image would fail the
same way; beside ``entry`` when only the image's overlay could not be written).

``RowsFolder`` keeps a folder run's results as JSON Lines, one file per block of rows, each
written atomically; a rerun reads which images are done there and skips them.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import BadArgument, BadImage, HumanRefineError, failure_on

MAX_STEM_BYTES = 80  # input names are shortened to this in output file names (file systems allow 255)
ROWS_FOLDER = "rows"
BLOCK_ROWS = 100  # rows per JSON Lines file


@dataclass(frozen=True)
class Settings:
    """What each image of a run is diagnosed with (plain values: sent to other processes as they are)."""

    threshold: float
    tta: bool = True
    learned: bool = True
    overlay_dir: str | None = None  # None: no overlays
    overlay_subfolder: str = ""  # inside overlay_dir, named in the entry ("overlays/<run>" with --jsonl)

    def to_dict(self) -> dict:
        return asdict(self)


def output_stem(i: int, path: Path) -> str:
    """``NNNN_<name>``: unique per run (two inputs may share a name), short enough for any file system."""
    stem = path.stem.encode("utf-8", "surrogateescape")[:MAX_STEM_BYTES].decode("utf-8", "ignore")
    return f"{i:04d}_{stem}"


def diagnose_or_error(path: Path, threshold: float, tta: bool, learned: bool):
    """One file's (image, detections, diagnosis, None), or (None, None, None, error) for an image that
    failed: the one-line error of a file that is not a usable image, or of a HumanRefine bug on this
    image, which must not cost the whole run. HumanRefineError (models, runtime) is raised: every
    further image would fail the same way."""
    from .diagnose import diagnose_image
    from .images import load_image

    try:
        image = load_image(path)
        detections, diagnosis = diagnose_image(image, threshold=threshold, tta=tta, learned=learned)
    except BadImage as exc:
        return None, None, None, str(exc)
    except HumanRefineError:
        raise
    except Exception as exc:
        return None, None, None, failure_on(path, exc)
    return image, detections, diagnosis, None


def diagnose_file(index: int, path: str, settings: Settings) -> dict:
    """The result of the run's ``index``-th image (see the module's docstring); never raises for one image."""
    from .atomic import save_png
    from .diagnose.overlay import draw_overlay
    from .diagnose.report import image_dict

    file = Path(path)
    try:
        image, detections, diagnosis, error = diagnose_or_error(
            file, settings.threshold, settings.tta, settings.learned
        )
    except HumanRefineError as exc:
        return {"index": index, "fatal": str(exc)}
    if error is not None:
        return {"index": index, "skipped": {"path": path, "error": error}}
    entry = image_dict(diagnosis, path)
    top = [diagnosis.parts[i] for i in diagnosis.worst_first()[:1]]  # the first flagged one when any is
    top_text = f"{top[0].label()} {top[0].score:.2f} {'; '.join(top[0].reasons[:1])}" if top else "-"
    table = {
        "people": len(detections.people),
        "hands": len(detections.hands),
        "faces": len(detections.faces),
        "top": top_text,
    }
    result = {"index": index, "entry": entry, "table": table}
    if settings.overlay_dir is not None:
        name = f"{output_stem(index, file)}_overlay.png"
        if settings.overlay_subfolder:
            name = f"{settings.overlay_subfolder}/{name}"
        try:
            save_png(Path(settings.overlay_dir) / name, draw_overlay(image, detections, diagnosis))
        except HumanRefineError as exc:  # the output cannot be written: the run stops, this image's entry kept
            result["fatal"] = str(exc)
        else:
            entry["overlay"] = name
    return result


def local_results(jobs: Iterable[tuple[int, str]], settings: Settings) -> Iterator[dict]:
    """The single-process engine: each ``(index, path)`` diagnosed here, in order."""
    for index, path in jobs:
        yield diagnose_file(index, path, settings)


def row_of(result: dict) -> dict:
    """The JSON Lines row of a result: the report's image entry, or the skipped image's path and error."""
    return result["entry"] if "entry" in result else result["skipped"]


class RowsFolder:
    """``OUT/rows/*.jsonl``: the rows of every run into this folder, one file per block. Each run's
    overlays go to ``OUT/overlays/<run>/`` (a rerun numbers the images anew: a folder of its own
    keeps it from replacing an earlier run's overlay of another image)."""

    def __init__(self, out: Path):
        self.folder = Path(out) / ROWS_FOLDER
        self.run = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"  # files sort by run, then block
        self.overlay_subfolder = f"overlays/{self.run}"
        self.block: list[dict] = []
        self.blocks = 0
        self.rows = 0  # rows in the folder: earlier runs' (read by done_paths) and this run's written ones

    def done_paths(self) -> set[Path]:
        """The images (resolved) that already have a row here, from earlier runs (read once, before
        this run writes any: they are also counted in ``rows``)."""
        done: set[Path] = set()
        if not self.folder.is_dir():
            return done
        for file in sorted(self.folder.glob("*.jsonl")):
            for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
                try:
                    done.add(Path(json.loads(line)["path"]).resolve())
                except (ValueError, KeyError, TypeError):
                    raise BadArgument(
                        f"{file}:{n}: not a row HumanRefine wrote; remove the file to diagnose its images again"
                    ) from None
                self.rows += 1
        return done

    def add(self, row: dict) -> None:
        self.block.append(row)
        if len(self.block) >= BLOCK_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write the rows gathered so far as one new file (whole or not at all)."""
        from .atomic import json_safe, write_text

        if not self.block:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        # one line per row: compact JSON, NaN and infinities as null as in every HumanRefine file
        text = "".join(json.dumps(json_safe(row), allow_nan=False) + "\n" for row in self.block)
        self.blocks += 1
        write_text(self.folder / f"{self.run}-{self.blocks:06d}.jsonl", text)
        self.rows += len(self.block)
        self.block = []
