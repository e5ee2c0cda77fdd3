"""Fitting the heads (scikit-learn, at training time only) and grouped cross-validation.

``python -m lib_humanrefine train --data DIR... --out FILE``: every labelled image is detected and
diagnosed with the landmark signals, its whole picture is embedded exactly as the diagnosis embeds
it, and

1. the image head (logistic regression, balanced classes) is fitted on whole-image embeddings
   with the directions along which re-saving a picture moves its embedding projected out
   (``nuisance_basis``: the training images re-saved as ``data.RESAVES``); its weights are then
   orthogonal to them, so the head applies to the raw embedding unchanged. Its regularisation C is
   the one of ``C_CHOICES`` that tells the training set's generated images apart best out of fold
   (``choose_c``);
2. each part kind's share of the blame is how often parts of that kind are malformed in malformed
   images (part labels from ``data.part_label``, plus the ``part`` rows of user crops), relative to
   the most often malformed kind;
3. the kind head (multinomial logistic, balanced classes, re-save directions projected out as for
   the image head) learns from the malformed images which kind is the worst in each
   (``data.worst_kind``: the annotated severities, or the one kind a mask marks), over the kinds
   with at least ``KIND_MIN_IMAGES`` such images;
4. grouped out-of-fold scores (no group in both sides) calibrate the image score (Platt) and, with
   the landmark signals at their fixed weight (``LANDMARK_WEIGHT``), set the sensitivity presets'
   thresholds from the normal images' false-alarm rates.

Nothing is random (lbfgs, GroupKFold), so the same folders give the same heads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from .. import models
from ..errors import HumanRefineError
from .data import PARTS, RESAVES, Sample, fingerprint, part_label, recompressed, worst_kind
from .heads import PART_KINDS, PRESET_FALSE_ALARMS, Heads, KindHead, Linear, sigmoid

# Regularisation, chosen per training set (``choose_c``): the C of C_CHOICES whose grouped
# out-of-fold AUROC among the generated images is best (all images where the generated ones lack a
# label), the smaller C on a tie; FALLBACK_C where no grouped cross-validation is possible. The
# WebUI only ever judges generated pictures, and a strongly regularised head (C = 3, used before)
# leans on what tells photos from generated images, the embedding's largest contrast here: held out,
# its balanced preset flagged 18 % of the normal generated images (3 % of the photos).
# Study (leave one group out, 169 development images, image head alone, re-save directions projected
# out), generated images only: C = 3 0.676, 10 0.706, 30 0.730, 100 0.738, 300 0.741, overall 0.742-
# 0.750 throughout, the same swings between saved copies. ``bench``, each training side choosing its
# own C: generated only AUROC 0.661 -> 0.709, recall at 10 % false alarms 0.09 -> 0.29, Spearman rho
# with the annotated severity 0.41 -> 0.52; overall AUROC 0.724 -> 0.709. The bundled heads: C = 100.
C_CHOICES = (1.0, 3.0, 10.0, 30.0, 100.0)
FALLBACK_C = 10.0
# How many directions of the re-save shifts the image head ignores. Held out (image head alone, 169
# development images, directions from the training side's RESAVES, 16 of them about half of the
# shifts' variance): the worst swing between the PNG, JPEG q90 and WebP q80 copies fell from 0.129
# to 0.072 and between the PNG and three formats used nowhere else (WebP q95 and q70, JPEG q85) from
# 0.23 to 0.12, at AUROC 0.744 against 0.748 (generated only 0.680 against 0.673). 24 directions
# steadied more but cost separation (AUROC 0.72, generated only 0.64).
NUISANCE_DIRECTIONS = 16
SEED = 0
# The weight the landmark signals keep next to the learned one. Fixed: held out (leave one group
# out, 169 development images) picking it per training set, as the smallest of 0.05-1 within 0.01 of
# the best inner out-of-fold AUROC, never beat the image head alone (0.755 against 0.750, 0.732
# against 0.732, 0.727 against 0.730 for three versions of the heads), and every pick above 0.05
# moved verdicts more under re-compression (worst swing 0.17 at 0.1 against 0.13 at 0.05). Never 0:
# they still order the parts of one kind.
LANDMARK_WEIGHT = 0.05
INNER_FOLDS = 5
# The kind head. Study (leave one group out, 169 development images; the top kind present per image
# against the worst-annotated kind of the 59 malformed annotated images): the counted shares ("hands
# first") 35 of 59, the kind head 41 (8 gained, 2 lost; all gains on the prompts of acrobats and
# wrestlers), the same for C = 0.3 and 3, 43 at C = 10, 41-43 without the re-save directions projected
# out. It still picked the hand on all 13 FoundHand images, and projected, no image with a hand and a
# person changed its pick between its re-saved copies (1 of 114 without). One head per kind (is this
# kind malformed?) instead: 36-39 of 59.
KIND_C = 1.0
KIND_MIN_IMAGES = 2  # a kind with fewer malformed images where it is the worst gets no class


def _sklearn():
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GroupKFold
    except ImportError:
        raise HumanRefineError("training needs scikit-learn: pip install scikit-learn==1.6.1") from None
    return LogisticRegression, GroupKFold


@dataclass
class Features:
    """One labelled sample as the heads see it."""

    sample: Sample
    image_embedding: np.ndarray | None  # None for a part crop
    kinds: list[str] = field(default_factory=list)
    landmark_signals: list[list[float]] = field(default_factory=list)  # per part, before weighting
    part_labels: list[int] = field(default_factory=list)  # 1, 0, -1 unknown
    boxes: list = field(default_factory=list)
    fingerprint: int = 0
    # embeddings of the same picture re-saved (data.RESAVES): where re-saving moves it, nothing more
    resaves: list[np.ndarray] = field(default_factory=list)
    focus_boxes: list = field(default_factory=list)  # per part: Part.focus, or its box when it has none


def _part_fields(sample: Sample, parts, mask: np.ndarray | None) -> dict:
    """What Features keeps of each diagnosed part: kind, label, box and focus (its box when it has none)."""
    return {
        "kinds": [p.kind for p in parts],
        "part_labels": [part_label(sample, p.kind, p.box, mask) for p in parts],
        "boxes": [tuple(p.box) for p in parts],
        "focus_boxes": [tuple(p.focus or p.box) for p in parts],
    }


def features_from_diagnosis(sample: Sample, diagnosis, mask: np.ndarray | None = None) -> Features | None:
    """Features of an image diagnosed with the learned check (``diagnosis.learned``); None if it did not run."""
    result = diagnosis.learned
    if result is None:
        return None
    return Features(
        sample=sample,
        image_embedding=result.image_embedding,
        landmark_signals=[list(s) for s in result.landmark_signals],
        **_part_fields(sample, diagnosis.parts, mask),
    )


def extract(
    samples: list[Sample], progress: TextIO | None = None, encoder=None, skipped: list[dict] | None = None
) -> list[Features]:
    """Detect, diagnose (landmarks) and embed every whole image, as the diagnosis would, and embed its
    re-saved copies; a part crop row is only its kind and label (the heads do not look at part
    crops). ``encoder``: one already loaded, else one is made. An image that cannot be read or
    diagnosed is named on ``progress``, added to ``skipped`` and left out (without ``skipped``: BadImage)."""
    from .. import learned
    from ..bench import region_mask
    from ..diagnose import diagnose_image
    from ..errors import BadImage, failure_on
    from ..images import load_image
    from .encoder import Encoder

    try:
        encoder = encoder or Encoder(str(models.model_path(models.ENCODER)))
    except ImportError:
        raise HumanRefineError("training needs onnxruntime: pip install onnxruntime==1.23.2") from None
    out = []
    start = time.perf_counter()
    for n, sample in enumerate(samples, 1):
        try:
            image = load_image(sample.path)  # a part crop too: an unreadable file is named here
            if sample.part != "image":
                features = Features(sample, None, [sample.part], [[]], [sample.label], [None])
            else:
                _detections, diagnosis = diagnose_image(image, learned=False)
                features = Features(
                    sample=sample,
                    image_embedding=learned.embed_image(encoder, image),
                    landmark_signals=[[s.score for s in p.signals] for p in diagnosis.parts],
                    resaves=resave_embeddings(encoder, image),
                    **_part_fields(sample, diagnosis.parts, region_mask(sample.path)),
                )
            features.fingerprint = fingerprint(sample.path)
        except HumanRefineError as exc:
            if skipped is None or not isinstance(exc, BadImage):
                raise  # models or runtime: every further image would fail the same way
            error = f"{exc} ({sample.row})" if sample.row else str(exc)
        except OSError as exc:  # went away or became unreadable since it was listed
            if skipped is None:
                raise
            error = f"{sample.path}: cannot be read ({exc.strerror or exc})"
        except Exception as exc:  # a HumanRefine bug on one image must not cost the whole run
            if skipped is None:
                raise
            error = failure_on(sample.path, exc)
        else:
            out.append(features)
            error = None
        if error:
            skipped.append({"path": str(sample.path), "error": error})
            if progress:
                print(f"error: {error}", file=progress)
            continue
        if progress:
            print(f"  [{n}/{len(samples)}] {sample.path.name} ({time.perf_counter() - start:.0f} s)", file=progress)
    return out


def resave_embeddings(encoder, image: np.ndarray) -> list[np.ndarray]:
    """The image re-saved each way of ``data.RESAVES``, embedded as the diagnosis embeds."""
    from .. import learned

    return [learned.embed_image(encoder, recompressed(image, *resave)) for resave in RESAVES]


# --- fitting ----------------------------------------------------------------------------------


def nuisance_basis(rows: list[Features], directions: int = NUISANCE_DIRECTIONS) -> np.ndarray | None:
    """Orthonormal columns (512 x k): the main directions in which the images' re-saved copies
    differ from one another and from the image (principal components of each image's embeddings
    about their own mean). None without re-saved copies."""
    shifts = [np.array([f.image_embedding, *f.resaves]) for f in rows if f.resaves]
    if not shifts or directions <= 0:
        return None
    centred = np.concatenate([s - s.mean(axis=0) for s in shifts])
    _u, sizes, vt = np.linalg.svd(centred, full_matrices=False)
    real = sizes > 1e-6 * sizes[0]  # beyond the shifts' rank the SVD returns arbitrary directions
    return vt[: min(directions, int(real.sum()))].T if real.any() else None


def _projected_out(a: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    """``a`` (rows, or one vector) without its parts along ``ignore``'s orthonormal columns."""
    return a - (a @ ignore) @ ignore.T


def _fit_linear(x: np.ndarray, y: np.ndarray, ignore: np.ndarray | None = None, c: float = FALLBACK_C) -> Linear | None:
    """A logistic head (regularisation ``c``); with ``ignore`` (orthonormal columns) fitted with those
    directions projected out, and its weights kept orthogonal to them: w.e then equals w.(e projected)
    for any e."""
    if len(set(y.tolist())) < 2 or min((y == 0).sum(), (y == 1).sum()) < 2:
        return None
    if ignore is not None:
        x = _projected_out(x, ignore)
    LogisticRegression, _ = _sklearn()
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=SEED).fit(x, y)
    w = model.coef_[0].astype(np.float64)
    if ignore is not None:
        w = _projected_out(w, ignore)  # lbfgs leaves rounding-sized parts along them
    return Linear(w, float(model.intercept_[0]))


def fit_kind(rows: list[Features], ignore: np.ndarray | None = None) -> KindHead | None:
    """The kind head on the whole images whose worst kind is known (``data.worst_kind``), with the
    ``ignore`` directions projected out and its weights orthogonal to them; None with fewer than two
    kinds of at least KIND_MIN_IMAGES images."""
    labelled = [(f.image_embedding, k) for f in rows if (k := worst_kind(f.sample, f.kinds, f.part_labels))]
    counts = {k: sum(kind == k for _e, kind in labelled) for k in PART_KINDS}
    kinds = tuple(k for k in PART_KINDS if counts[k] >= KIND_MIN_IMAGES)
    if len(kinds) < 2:
        return None
    x = np.array([e for e, k in labelled if k in kinds])
    y = np.array([kinds.index(k) for _e, k in labelled if k in kinds])
    if ignore is not None:
        x = _projected_out(x, ignore)
    LogisticRegression, _ = _sklearn()
    model = LogisticRegression(C=KIND_C, class_weight="balanced", max_iter=5000, random_state=SEED).fit(x, y)
    w, b = model.coef_.astype(np.float64), model.intercept_.astype(np.float64)
    if len(kinds) == 2:  # scikit-learn keeps one row for two classes: the second class's logit over the first's
        w, b = np.vstack([np.zeros_like(w[0]), w[0]]), np.array([0.0, b[0]])
    if ignore is not None:
        w = _projected_out(w, ignore)
    return KindHead(kinds, w, b)


def _image_rows(features: list[Features]) -> list[Features]:
    return [f for f in features if f.image_embedding is not None]


def _scored_rows(features: list[Features]) -> list[Features]:
    """Whole images labelled by labels.csv: the ones out-of-fold scores, calibration and figures use."""
    return [f for f in _image_rows(features) if not f.sample.by_severity]


def _by_severity_rows(features: list[Features]) -> list[Features]:
    """Whole images labelled by their severity (``data.between_samples``): they train, unscored."""
    return [f for f in _image_rows(features) if f.sample.by_severity]


def training_side(features: list[Features], held_out: set[str]) -> list[Features]:
    """What fits the heads while these groups are held out: the other groups' whole images (those
    labelled by labels.csv, then those labelled by severity) and every part crop row (user crops
    always train). Inner folds and ``evaluate.crossval`` both split here."""
    others = [f for f in _scored_rows(features) + _by_severity_rows(features) if f.sample.group not in held_out]
    return others + [f for f in features if f.image_embedding is None]


def fit_core(features: list[Features], encoder_sha256: str, c: float = FALLBACK_C) -> Heads:
    """Image and part heads without calibration (identity Platt, landmark weight 1, no presets)."""
    rows = _image_rows(features)
    if not rows:
        raise HumanRefineError("no labelled whole images to train the image head on")
    x = np.array([f.image_embedding for f in rows])
    y = np.array([f.sample.label for f in rows])
    ignore = nuisance_basis(rows)
    image = _fit_linear(x, y, ignore, c)
    if image is None:
        raise HumanRefineError("the image head needs at least 2 malformed and 2 normal images")
    heads = Heads(encoder_sha256=encoder_sha256, image=image, blame=fit_blame(features), kind=fit_kind(rows, ignore))
    heads.info["nuisance_directions"] = 0 if ignore is None else ignore.shape[1]
    return heads


def fit_blame(features: list[Features]) -> dict[str, float]:
    """Each kind's share of the blame: the rate at which its labelled parts in malformed images (and
    its user crop rows) are malformed, smoothed (Laplace), over the highest kind's rate."""
    rates = {}
    for kind in PART_KINDS:
        labels = [
            label
            for f in features
            if f.sample.label == 1 or f.image_embedding is None
            for k, label in zip(f.kinds, f.part_labels)
            if k == kind and label in (0, 1)
        ]
        rates[kind] = (sum(labels) + 1) / (len(labels) + 2)
    top = max(rates.values())
    return {kind: round(rate / top, 4) for kind, rate in rates.items()}


@dataclass
class OutOfFold:
    """Scores of held-out images, each from heads fitted without its group."""

    features: list[Features]  # whole images with a 0/1 label, in order
    image_logits: np.ndarray  # raw image-head logit
    part_shares: list[list[float]]  # per image, each part's share under that fold's heads


def out_of_fold(
    features: list[Features], encoder_sha256: str, folds: int | None = INNER_FOLDS, c: float = FALLBACK_C
) -> OutOfFold:
    """Grouped out-of-fold raw scores: GroupKFold(``folds``) or, with ``folds=None``, one fold per group."""
    _, GroupKFold = _sklearn()
    rows = _scored_rows(features)
    groups = np.array([f.sample.group for f in rows])
    n_groups = len(set(groups))
    if n_groups < 2:
        raise HumanRefineError("cross-validation needs at least two groups of images")
    splitter = GroupKFold(n_splits=n_groups if folds is None else min(folds, n_groups))
    image_logits = np.full(len(rows), np.nan)
    part_shares: list[list[float]] = [[] for _ in rows]
    for _train_idx, test_idx in splitter.split(np.zeros(len(rows)), groups=groups):
        try:
            heads = fit_core(training_side(features, set(groups[test_idx].tolist())), encoder_sha256, c)
        except HumanRefineError:
            continue  # a fold without both labels: its images stay unscored
        for i in test_idx:
            image_logits[i] = float(heads.image.logit(rows[i].image_embedding))
            part_shares[i] = [float(v) for v in heads.part_shares(rows[i].kinds, rows[i].image_embedding)]
    return OutOfFold(rows, image_logits, part_shares)


def choose_c(features: list[Features], encoder_sha256: str) -> tuple[float, dict[float, float], OutOfFold | None]:
    """The image head's C (see C_CHOICES), each candidate's grouped out-of-fold AUROC, measured on
    the generated images when both labels are among them (at least two of each), else on all, and
    the out-of-fold scores at the chosen C (for calibration; None without two groups)."""
    choices: dict[float, float] = {}
    scores: dict[float, OutOfFold] = {}
    try:
        for c in C_CHOICES:
            oof = scores[c] = out_of_fold(features, encoder_sha256, c=c)
            y = np.array([f.sample.label for f in oof.features])
            ok = ~np.isnan(oof.image_logits)
            generated = ok & np.array([f.sample.generated for f in oof.features])
            judged = generated if min((y[generated] == 0).sum(), (y[generated] == 1).sum()) >= 2 else ok
            choices[c] = auroc(oof.image_logits[judged], y[judged])
    except HumanRefineError:  # fewer than two groups
        return FALLBACK_C, {}, None
    scored = {c: v for c, v in choices.items() if not np.isnan(v)}
    best = max(scored.values(), default=np.nan)
    chosen = min((c for c, v in scored.items() if v >= best - 1e-9), default=FALLBACK_C)
    return chosen, choices, scores[chosen]  # FALLBACK_C is one of C_CHOICES


def fused_scores(oof: OutOfFold, platt: tuple[float, float], weight: float) -> np.ndarray:
    """The diagnosis' image score for each out-of-fold image (same arithmetic as learned.score_features)."""
    from . import noisy_or

    a, b = platt
    out = np.full(len(oof.features), np.nan)
    for i, f in enumerate(oof.features):
        if np.isnan(oof.image_logits[i]):
            continue
        p_image = sigmoid(a * oof.image_logits[i] + b)
        fused = [
            noisy_or([weight * s for s in signals] + [p_image * share])
            for share, signals in zip(oof.part_shares[i], f.landmark_signals)
        ]
        out[i] = max(fused) if fused else p_image
    return out


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    from ..bench import auroc as _auroc

    return _auroc(np.asarray(scores), np.asarray(labels))


def threshold_for(negatives: np.ndarray, max_false_alarms: float) -> float:
    """The lowest threshold (3 decimals) that flags at most that share of these normal images' scores."""
    neg = np.sort(negatives)[::-1]
    allowed = int(np.floor(max_false_alarms * len(neg) + 1e-9))
    if allowed >= len(neg):
        return 0.0
    return float(min(1.0, np.floor(neg[allowed] * 1000 + 1) / 1000))


def calibrate(heads: Heads, oof: OutOfFold) -> Heads:
    """Platt scaling and preset thresholds (landmark signals at LANDMARK_WEIGHT) from grouped out-of-fold scores."""
    LogisticRegression, _ = _sklearn()
    ok = ~np.isnan(oof.image_logits)
    y = np.array([f.sample.label for f in oof.features])
    if ok.sum() >= 4 and len(set(y[ok].tolist())) == 2:
        platt_model = LogisticRegression(C=1e4, max_iter=5000).fit(oof.image_logits[ok][:, None], y[ok])
        slope = float(platt_model.coef_[0, 0])
        # Out-of-fold scores that rank backwards (a small or lopsided set) must not turn the head
        # around: then the head's own logit stays the score, uncalibrated.
        if slope > 0:
            heads.platt = (slope, float(platt_model.intercept_[0]))
    heads.landmark_weight = LANDMARK_WEIGHT
    fused = fused_scores(oof, heads.platt, heads.landmark_weight)
    oof_auroc = auroc(fused[ok], y[ok])  # NaN: one label only
    negatives = fused[ok & (y == 0)]
    positives = fused[ok & (y == 1)]
    heads.thresholds = {}
    presets = {}
    if len(negatives):
        for preset, rate in PRESET_FALSE_ALARMS.items():
            t = threshold_for(negatives, rate)
            heads.thresholds[preset] = t
            presets[preset] = {
                "threshold": t, "false_alarms": round(float((negatives >= t).mean()), 4),
                "recall": round(float((positives >= t).mean()), 4) if len(positives) else None,
            }  # fmt: skip
    heads.info["out_of_fold"] = {"auroc": None if np.isnan(oof_auroc) else round(oof_auroc, 4), "presets": presets}
    return heads


def fit_heads(features: list[Features], encoder_sha256: str) -> Heads:
    """Fitted and calibrated heads for these samples."""
    c, choices, oof = choose_c(features, encoder_sha256)
    heads = fit_core(features, encoder_sha256, c)
    if oof is None:  # one group only: no honest calibration possible
        heads.info["out_of_fold"] = None
    else:
        heads = calibrate(heads, oof)
    rows = _scored_rows(features)
    by_severity = _by_severity_rows(features)
    heads.info.update(
        images=len(rows),
        malformed=sum(f.sample.label == 1 for f in rows),
        by_severity={"images": len(by_severity), "malformed": sum(f.sample.label == 1 for f in by_severity)},
        groups=len({f.sample.group for f in rows}),
        part_rows={k: sum(f.sample.part == k for f in features) for k in PARTS[1:]},
        part_labels={
            k: {
                "malformed": sum(lab == 1 for f in features for kk, lab in zip(f.kinds, f.part_labels) if kk == k),
                "normal": sum(lab == 0 for f in features for kk, lab in zip(f.kinds, f.part_labels) if kk == k),
            }
            for k in PART_KINDS
        },
        worst_kind_images={
            k: sum(worst_kind(f.sample, f.kinds, f.part_labels) == k for f in _image_rows(features)) for k in PART_KINDS
        },
        kind_head=list(heads.kind.kinds) if heads.kind else None,
        C=c,
        C_out_of_fold_auroc={str(k): None if np.isnan(v) else round(v, 4) for k, v in choices.items()},
    )
    heads.trained_images = np.array(sorted({f.fingerprint for f in features}), np.uint64)
    return heads


def labelled_samples(folders: list[Path], progress: TextIO | None = None) -> list[Sample]:
    """Every folder's samples (``data.load_folder`` + ``data.between_samples``), checked before any
    work: a folder given twice, one picture labelled both ways (the same file, or the same bytes under
    two names) and labels with fewer than two images of either kind are refused in one line; a
    picture listed twice with one label counts once (said on ``progress``); a file that cannot be
    read is left to ``extract``, which names and skips it."""
    from ..errors import BadArgument, BadImage
    from . import data

    seen: dict[Path, Path] = {}
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise BadArgument(f"--data {folder}: no such folder")
        if folder.resolve() in seen:
            same = "twice" if seen[folder.resolve()] == folder else f"twice ({seen[folder.resolve()]} and {folder})"
            raise BadArgument(f"--data names the folder {folder.resolve()} {same}; give each folder once")
        seen[folder.resolve()] = folder
    samples = []
    for folder in folders:
        labelled = data.load_folder(folder)
        samples += labelled + data.between_samples(folder, labelled)
    notes: list[str] = []
    out = data.once_each(samples, notes)
    for note in notes:
        if progress:
            print(f"note: {note}", file=progress)
    images = [s for s in out if s.part == "image"]
    malformed = sum(s.label == 1 for s in images)
    if min(malformed, len(images) - malformed) < 2:
        raise BadImage(
            f"training needs at least 2 malformed and 2 normal whole images (part image, label 1 and 0); "
            f"the labels have {malformed} malformed and {len(images) - malformed} normal"
        )
    return out


def train(folders: list[Path], out: Path, progress: TextIO | None = None, skipped: list[dict] | None = None) -> Heads:
    """Heads fitted on the labelled folders, written to ``out``. Images that cannot be read or
    diagnosed are named on ``progress`` and left out (listed in ``skipped`` when given; without it
    the first one stops the run)."""
    from . import heads as heads_mod

    samples = labelled_samples(folders, progress)
    features = extract(samples, progress, skipped=skipped)
    heads = fit_heads(features, models.MODELS[models.ENCODER].sha256)
    heads.info["folders"] = [Path(f).name for f in folders]
    heads_mod.write(heads, out)
    return heads
