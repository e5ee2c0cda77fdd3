"""Labelled training folders.

``labels.csv``: ``path,label[,kind][,part][,group]`` — ``path`` relative to the CSV, ``label`` 1 =
malformed, 0 = normal; ``part`` is ``image`` (default: a whole picture) or ``hand``/``face``/``body``
(the file is a crop of that one part, as ``teach.part_crop`` cuts it); ``group`` names images that
belong together (same source or prompt) so cross-validation never splits them.

Beside it, optionally: ``annotations.csv`` (``path,severity,...,torso,limbs,feet,hands,face,prompt``:
per-part severities turn into part labels, the prompt into the group) and, in the folder or up to
two levels above, ``provenance.tsv`` (``local_file<TAB>repo...``: the source repository is the group).
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadImage

# The same picture as a lossless PNG, a JPEG at quality 90 and a WebP at quality 80: ``bench``
# measures how far the verdict moves between them.
RECOMPRESSIONS = (("png", {}), ("jpeg", {"quality": 90}), ("webp", {"quality": 80}))
PARTS = ("image", "hand", "face", "body")
SEVERITY_COLUMNS = ("torso", "limbs", "feet", "hands", "face")


@dataclass
class Sample:
    path: Path
    label: int  # 1 malformed, 0 normal
    part: str = "image"  # "image" or the part kind of a crop file
    kind: str = ""  # free text from labels.csv (e.g. generated-malformed)
    group: str = ""  # cross-validation group: source repository, prompt, or the file itself
    severity: dict[str, float] | None = None  # annotations.csv row (torso, limbs, feet, hands, face, severity)
    row: str = ""  # where it is labelled ("DIR/labels.csv:12"), for messages

    @property
    def generated(self) -> bool:
        return self.kind.startswith("generated")


def fingerprint(path: Path) -> int:
    """First 8 bytes of the file's SHA-256 as an integer (which images a heads file was trained on)."""
    return int.from_bytes(hashlib.sha256(Path(path).read_bytes()).digest()[:8], "little")


def _read_csv(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(fh)]
    except UnicodeDecodeError:
        raise BadImage(f"{path}: not UTF-8 text; save it as CSV UTF-8") from None
    except OSError as exc:
        raise BadImage(f"{path}: cannot be read ({exc.strerror or exc})") from None


class FolderInfo:
    """What a labelled folder says about its images beyond the label: group and severities."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.annotations: dict[str, dict] = {}
        ann = self.folder / "annotations.csv"
        if ann.is_file():
            self.annotations = {row["path"]: row for row in _read_csv(ann) if row.get("path")}
        self.groups: dict[Path, str] = {}  # labels.csv's own group column
        labels = self.folder / "labels.csv"
        if labels.is_file():
            for row in _read_csv(labels):
                if row.get("path") and row.get("group"):
                    self.groups[(self.folder / row["path"]).resolve()] = row["group"]
        self.provenance: list[tuple[str, str, str]] = []  # (local file pattern, repository, path in it)
        self.root = self.folder
        for parent in (self.folder, *list(self.folder.parents)[:2]):
            tsv = parent / "provenance.tsv"
            if tsv.is_file():
                self.root = parent
                try:
                    lines = tsv.read_text(encoding="utf-8-sig").splitlines()[1:]
                except UnicodeDecodeError:
                    raise BadImage(f"{tsv}: not UTF-8 text; save it as UTF-8") from None
                self.provenance = [
                    (c[0], c[1].split()[0], c[2] if len(c) > 2 else "")
                    for c in (ln.split("\t") for ln in lines)
                    if len(c) > 1 and c[1].split()
                ]
                break
        # Repositories that also gave an annotated folder (an annotations.csv, its images grouped by
        # prompt): their other files are grouped by the folder they have there, the prompt
        # (images/sdXL/couple_hugging/x.jpg: "prompt:couple hugging"), so a prompt is never on both sides.
        self.prompt_repos = {
            repo
            for pattern, repo, _p in self.provenance
            if (self.root / pattern.split("/")[0] / "annotations.csv").is_file()
        }

    def _relative(self, path: Path) -> str:
        try:
            return Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return Path(path).name

    def severity(self, path: Path) -> dict[str, float] | None:
        row = self.annotations.get(self._relative(path)) or self.annotations.get(Path(path).name)
        if row is None:
            return None
        try:
            return {k: float(row[k]) for k in (*SEVERITY_COLUMNS, "severity") if row.get(k, "") != ""}
        except ValueError:
            return None

    def group(self, path: Path, explicit: str = "") -> str:
        """``group`` column > annotations prompt > provenance repository (its prompt folder for a
        repository that gave an annotated folder) > the file itself."""
        explicit = explicit or self.groups.get(Path(path).resolve(), "")
        if explicit:
            return explicit
        row = self.annotations.get(self._relative(path)) or self.annotations.get(Path(path).name)
        if row and row.get("prompt"):
            return "prompt:" + row["prompt"]
        rel, name = self._relative(path), Path(path).name
        for matches in (
            lambda pattern: fnmatch.fnmatchcase(rel, pattern),
            lambda pattern: pattern.rsplit("/", 1)[-1] == name,  # same file listed under another folder name
        ):
            for pattern, repo, in_repo in self.provenance:
                if matches(pattern):
                    prompt = in_repo.split("/")[-2] if in_repo.count("/") >= 1 else ""
                    if repo in self.prompt_repos and prompt:
                        return "prompt:" + prompt.replace("_", " ").lower()
                    return repo
        return "file:" + rel


def load_folder(folder: Path) -> list[Sample]:
    """The samples of one labelled folder (``labels.csv`` in it); one-line BadImage on bad rows."""
    folder = Path(folder)
    labels = folder / "labels.csv"
    if not labels.is_file():
        raise BadImage(f"{labels}: labels file not found (columns path,label[,kind][,part][,group])")
    info = FolderInfo(folder)
    samples = []
    for n, row in enumerate(_read_csv(labels), start=2):
        part = (row.get("part") or "image").lower()
        if row.get("label") not in ("0", "1") or not row.get("path") or part not in PARTS:
            raise BadImage(f"{labels}:{n}: need path,label[,kind][,part][,group] with label 0 or 1 and part in {PARTS}")
        path = folder / row["path"]
        if not path.is_file():
            raise BadImage(f"{labels}:{n}: {path} not found")
        samples.append(
            Sample(
                path, int(row["label"]), part, row.get("kind", ""), info.group(path, row.get("group", "")),
                info.severity(path), row=f"{labels}:{n}",
            )
        )  # fmt: skip
    if not samples:
        raise BadImage(f"{labels}: no rows")
    return samples


def once_each(items: list, notes: list[str], verb: str = "counted") -> list:
    """Each picture once. ``items`` have ``path``, ``label`` and ``row`` (where they are labelled), and
    may have ``part`` (``Sample``, ``bench.Labelled``). A later row naming a file listed before, or the
    same bytes under another name (and the same part), is dropped with a note when the label agrees,
    and refused (BadImage naming both rows) when it differs. A file that cannot be read is kept: the
    work that reads it names it."""
    first: dict[tuple, object] = {}
    out = []
    for item in items:
        try:
            key = (getattr(item, "part", "image"), fingerprint(item.path))
        except OSError:
            out.append(item)
            continue
        earlier = first.setdefault(key, item)
        if earlier is item:
            out.append(item)
        elif earlier.label != item.label:
            raise BadImage(
                f"the same picture is labelled {earlier.label} at {earlier.row} ({earlier.path.name}) and "
                f"{item.label} at {item.row} ({item.path.name}); keep one label"
            )
        else:
            same = (
                "listed twice" if earlier.path.resolve() == item.path.resolve() else f"the same as {earlier.path.name}"
            )
            notes.append(f"{item.row}: {item.path.name} is {same} ({earlier.row}); {verb} once")
    return out


# Part labels of a labelled whole image: a normal image's parts are all normal; a malformed image's
# part is malformed where its severity (annotations.csv) reaches SEVERE_PART, normal where it is 0;
# with a ``<name>_mask`` region, hands and faces touching it are malformed, parts away from it normal.
PART_SEVERITY = {"hand": ("hands",), "face": ("face",), "body": ("torso", "limbs", "feet")}
SEVERE_PART = 0.5


def part_label(sample: Sample, kind: str, box, mask: np.ndarray | None) -> int:
    """1 malformed, 0 normal, -1 unknown (not used for training)."""
    if sample.label == 0:
        return 0
    if sample.severity is not None and all(c in sample.severity for c in PART_SEVERITY[kind]):
        value = sum(sample.severity[c] for c in PART_SEVERITY[kind])
        return 1 if value >= SEVERE_PART else 0 if value == 0 else -1
    if mask is not None:
        from ..metrics import inside_fraction

        touches = inside_fraction(mask, box) > 0
        if not touches:
            return 0
        return 1 if kind in ("hand", "face") else -1  # a person's box holds the broken hand and much else
    return -1


def kind_severities(severity: dict[str, float]) -> dict[str, float]:
    """Each part kind's annotated severity (hands; face; torso + limbs + feet), a missing column 0."""
    return {kind: sum(severity.get(c, 0.0) for c in cols) for kind, cols in PART_SEVERITY.items()}


def worst_kind(sample: Sample, kinds: list[str], part_labels: list[int]) -> str | None:
    """The part kind that is worst in a malformed whole image, for the kind head: the kind with the
    highest annotated severity (hands, then faces, then people on a tie), else the only kind whose
    parts are labelled malformed (a mask marks it); None for normal images and where it is unknown."""
    if sample.label != 1 or sample.part != "image":
        return None
    if sample.severity is not None and all(c in sample.severity for cols in PART_SEVERITY.values() for c in cols):
        totals = kind_severities(sample.severity)
        return max(totals, key=totals.get) if max(totals.values()) > 0 else None
    malformed = {kind for kind, label in zip(kinds, part_labels) if label == 1}
    return malformed.pop() if len(malformed) == 1 else None


def recompressed(image: np.ndarray, fmt: str, options: dict) -> np.ndarray:
    """The RGB image saved as ``fmt`` with these Pillow options and decoded again."""
    from PIL import Image

    from ..atomic import encoded

    return np.asarray(Image.open(io.BytesIO(encoded(image, fmt, **options))).convert("RGB"))
