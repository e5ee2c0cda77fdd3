"""A user's verdicts ("this hand is fine", "this face is malformed") as a labelled training folder.

The folder holds ``labels.csv`` with the columns ``path,label,kind,part`` — ``path`` relative to
the CSV, ``label`` 1 = malformed / 0 = fine, ``part`` one of image|hand|face|body (rows other than
``image`` are crops of that one part) — and the PNG files it names: the format the learned
diagnosis's ``train`` command reads. Nothing is ever overwritten: crops are named by their content,
rows are only appended, and every write goes through the atomic writer. Several processes may
write one folder at once (the tab in two WebUIs, a script beside it): each reads, checks and
replaces ``labels.csv`` under a lock held across processes (``atomic.locked`` on ``.labels.csv.lock``),
so no row is lost and one picture never gets two rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import locked, output_folder, png_bytes, write_bytes
from .errors import CannotWrite

COLUMNS = ("path", "label", "kind", "part")
PARTS = ("image", "hand", "face", "body")
# A part crop is the square around the part's box, this many times its longer side: a hand or face
# with its surroundings, a person whole, as one would look at it to judge it again.
CONTEXT = {"hand": 2.0, "face": 2.0, "body": 1.1}
CROPS = "crops"
LOCK = ".labels.csv.lock"
_lock = threading.Lock()  # two clicks in one process wait here, not by polling the lock file
# What ``train`` makes of a user's whole pictures (``training.train.teach``): each counts this many
# development pictures, its classes balanced among the user's. Study (each of the 5 annotated prompts
# held out in turn, k of its labelled pictures added, the rest of that prompt scored; 60 draws each):
# AUROC gain over k = 0 at k = 5 / 10 pictures with weight 1: +0.00 / +0.02, 3: +0.03 / +0.07,
# 10: +0.05 / +0.08; false alarms among the rest's normal pictures at the balanced preset 12 % -> 15 %,
# 17 %, 27 %. Without balancing the classes the gains were larger (weight 3: +0.09 / +0.12) but 41 %
# of the normal pictures were flagged: the prompts' pictures are mostly malformed, and every score rose.
TEACH_WEIGHT = 3.0
TEACH_MIN_EACH = 2  # fewer malformed or fine pictures than this leave the image head as it was
TEACH_ADVISED = 10  # in-house, 5 pictures of a prompt gained +0.03 AUROC, 10 +0.07


@dataclass
class Holdings:
    """What a labels folder holds: whole pictures by verdict, part crops by kind."""

    malformed: int = 0
    fine: int = 0
    crops: dict[str, int] | None = None

    @property
    def verdicts(self) -> int:
        return self.malformed + self.fine + sum((self.crops or {}).values())


def holdings(folder: str | Path) -> Holdings:
    """Count the verdicts of ``folder``'s labels.csv (none when it has no such file)."""
    csv_path = Path(folder) / "labels.csv"
    found = Holdings(crops={part: 0 for part in PARTS[1:]})
    if not csv_path.is_file():
        return found
    _columns, rows = _rows(csv_path)
    for _n, row in rows:
        part = (row.get("part") or "image").lower()
        if row.get("label") not in ("0", "1"):
            continue
        if part == "image":
            found.malformed += row["label"] == "1"
            found.fine += row["label"] == "0"
        elif part in found.crops:
            found.crops[part] += 1
    return found


def train_note(folder: str | Path) -> str:
    """One paragraph for the tab: how many verdicts the labels folder holds and what ``train`` would
    do with them (its command, and why it would change little where it would)."""
    from . import models

    held = holdings(folder)
    crops = sum(held.crops.values())
    pictures = held.malformed + held.fine
    kinds = ", ".join(f"{n} {'people' if k == 'body' else k + 's'}" for k, n in held.crops.items() if n)
    text = (
        f"The labels folder holds {held.verdicts} verdict(s): {pictures} whole picture(s) ({held.malformed} "
        f"malformed, {held.fine} fine) and {crops} part crop(s){f' ({kinds})' if kinds else ''}. "
        f"`train` would add the whole pictures to the bundled heads' training, each counting {TEACH_WEIGHT:g} of "
        f"its pictures, and the crops to each kind's share of the blame: "
        f"`{models.cli_command(['train', '--data', str(folder), '--out', 'my_heads.npz'])}`."
    )
    warnings = labels_warnings(held.malformed, held.fine, crops)
    return text + "".join(f" Note: {w}." for w in warnings)


def labels_warnings(malformed: int, fine: int, crops: int) -> list[str]:
    """Why labels of this many whole pictures (malformed, fine) and part crops would change the image
    head little or not at all, one line each: the tab's note and ``train``'s warnings."""
    out = []
    if min(malformed, fine) < TEACH_MIN_EACH:
        fewer = "malformed" if malformed < TEACH_MIN_EACH else "fine"
        out.append(
            f"the labels hold {malformed} malformed and {fine} fine whole picture(s): with fewer than "
            f"{TEACH_MIN_EACH} {fewer} ones the image head is left as it was (one-sided labels would only raise "
            f"or lower every score); mark both kinds"
        )
    elif malformed + fine < TEACH_ADVISED:
        out.append(
            f"only {malformed + fine} whole pictures: in-house, 5 pictures of a prompt raised its AUROC by about "
            f"0.03 and 10 by 0.07; mark at least {TEACH_ADVISED}"
        )
    if crops and not malformed + fine:
        out.append(f"{crops} part crop(s) only: they set each kind's share of the blame, never the image score")
    return out


@dataclass
class Taught:
    path: Path  # the PNG written (or found already there)
    row: int  # line number of the row in labels.csv (1 = header)
    new: bool  # False: the same crop already had this verdict; nothing was written


def part_crop(image: np.ndarray, box, kind: str) -> np.ndarray:
    """The square around ``box`` (x0, y0, x1, y1), ``CONTEXT[kind]`` times its longer side, in the
    image's own pixels; what lies outside the image is mid-grey."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(round(max(x1 - x0, y1 - y0, 1.0) * CONTEXT.get(kind, 2.0)), 1)
    left, top = round((x0 + x1) / 2 - side / 2), round((y0 + y1) / 2 - side / 2)
    out = np.full((side, side, 3), 128, np.uint8)
    h, w = image.shape[:2]
    sx0, sy0, sx1, sy1 = max(left, 0), max(top, 0), min(left + side, w), min(top + side, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - top : sy1 - top, sx0 - left : sx1 - left] = image[sy0:sy1, sx0:sx1, :3]
    return out


def _rows(csv_path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """The header and each non-empty row with its line number (1 = header)."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            header, *body = list(csv.reader(fh)) or [[]]
    except UnicodeDecodeError:
        raise CannotWrite(
            f"{csv_path} is not UTF-8 text: save it as CSV UTF-8 or choose another labels folder"
        ) from None
    except OSError as exc:
        raise CannotWrite(f"{csv_path} cannot be read ({exc.strerror or exc})") from None
    columns = [c.strip() for c in header]
    return columns, [(n, dict(zip(columns, (v.strip() for v in row)))) for n, row in enumerate(body, 2) if row]


def _line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def add(folder: str | Path, picture: np.ndarray, label: int, part: str, kind: str = "user") -> Taught:
    """Write ``picture`` (a part crop, or the whole image for part ``image``) and its verdict.

    Raises CannotWrite with one line when the folder cannot be written or its labels.csv has
    columns that cannot hold the verdict."""
    if label not in (0, 1):
        raise ValueError(f"label must be 0 or 1, got {label!r}")
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    folder = output_folder(folder, flag="labels folder")
    csv_path = folder / "labels.csv"
    data = png_bytes(np.ascontiguousarray(picture[..., :3]))
    relative = f"{CROPS}/{part}-{hashlib.sha256(data).hexdigest()[:16]}.png"
    with _lock, locked(folder / LOCK, what=str(csv_path)):
        columns, rows = _rows(csv_path) if csv_path.is_file() else (list(COLUMNS), [])
        missing = [c for c in COLUMNS if c not in columns]
        if missing:
            raise CannotWrite(
                f"{csv_path} has the columns {','.join(columns)}; a verdict needs {','.join(COLUMNS)} "
                f"(add the column(s) {','.join(missing)} or choose another labels folder)"
            )
        for number, row in rows:
            if row.get("path") == relative:
                if row.get("label") == str(label):
                    return Taught(folder / relative, number, False)
                verdict = "malformed" if label else "fine"
                raise CannotWrite(
                    f"this {part} is already labelled the other way in {csv_path} line {number}; "
                    f"edit that line to make it {verdict}"
                )
        crop_path = folder / relative
        output_folder(crop_path.parent, flag="labels folder")
        if not crop_path.exists():  # the name is the content's hash: an existing file is this picture
            write_bytes(crop_path, data)
        values = {"path": relative, "label": str(label), "kind": kind, "part": part}
        old = csv_path.read_bytes() if csv_path.is_file() else _line(columns).encode("utf-8")
        if old and not old.endswith(b"\n"):
            old += b"\n"
        write_bytes(csv_path, old + _line([values.get(c, "") for c in columns]).encode("utf-8"))
        return Taught(crop_path, old.count(b"\n") + 1, True)
