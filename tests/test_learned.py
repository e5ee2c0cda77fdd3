"""The learned check: encoder, heads, training, fallback, sensitivity presets, stability."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib_humanrefine import cli, models, teach
from lib_humanrefine.diagnose import diagnose_image, learned
from lib_humanrefine.diagnose.learned import heads
from lib_humanrefine.diagnose.learned.encoder import Encoder, region_crop, whole_image
from lib_humanrefine.diagnose.report import image_dict, summary
from lib_humanrefine.errors import BadImage, HumanRefineError
from lib_humanrefine.training import data, train
from lib_humanrefine.training.data import recompressed


@pytest.fixture
def fresh_learned():
    """Forget the loaded heads/encoder around a test that changes the models folder or heads file."""
    learned.forget()
    yield
    learned.set_heads_path(None)
    models.set_models_dir(None)
    learned.forget()


@pytest.fixture(scope="session")
def encoder(models_ready):
    return Encoder(str(models_ready / models.ENCODER))


def test_a_crops_embedding_does_not_depend_on_the_other_crops(encoder, astronaut):
    crops = [whole_image(astronaut), region_crop(astronaut, (150, 20, 330, 200))]
    alone = encoder.embed(crops[:1])[0]
    together = encoder.embed(crops)[0]
    assert np.array_equal(alone, together)
    assert abs(float(np.linalg.norm(alone)) - 1.0) < 1e-5


def test_crops_keep_the_whole_picture_and_pad_outside_it():
    image = np.full((100, 300, 3), 200, np.uint8)
    whole = whole_image(image)
    assert whole.shape == (224, 224, 3)
    assert (whole[112, :, 0] == 200).all()  # the full width is kept
    assert tuple(whole[5, 112]) == heads_pad()  # letterbox bands above and below
    corner = region_crop(image, (-50, -50, 10, 10))
    assert tuple(corner[0, 0]) == heads_pad() and tuple(corner[-1, -1]) == (200, 200, 200)


def test_steadying_is_a_jpeg_round_trip_that_keeps_the_colours():
    from lib_humanrefine.diagnose.learned.encoder import steadied

    crop = np.zeros((224, 224, 3), np.uint8)
    crop[:, :112] = (220, 30, 30)  # red on the left: a channel swap would turn it blue
    crop[::8, 112:] = 255  # fine stripes on the right: JPEG at quality 60 smears them
    out = steadied(crop)
    assert out.shape == crop.shape and out.dtype == np.uint8
    assert np.abs(out[:, :100].astype(int) - (220, 30, 30)).max() <= 8
    assert not np.array_equal(out[:, 120:], crop[:, 120:])
    assert np.array_equal(steadied(crop), out)  # deterministic


def test_steadying_brings_a_pictures_saved_copies_closer(encoder, astronaut):
    from lib_humanrefine.diagnose.learned.encoder import to_tensor

    copies = [whole_image(recompressed(astronaut, fmt, opts)) for fmt, opts in data.RECOMPRESSIONS]
    raw = np.array(
        [encoder.session.run([encoder.output_name], {encoder.input_name: to_tensor([c])})[0][0] for c in copies]
    )
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    steady = encoder.embed(copies)

    def spread(e):  # largest cosine distance between two copies
        return max(1 - float(e[i] @ e[j]) for i in range(3) for j in range(i + 1, 3))

    assert spread(steady) < 0.7 * spread(raw)


def heads_pad():
    from lib_humanrefine.diagnose.learned.encoder import PAD

    return PAD


def test_bundled_heads_are_small_versioned_and_tied_to_the_pinned_encoder():
    assert heads.BUNDLED.stat().st_size < 200_000  # the training's curvature is most of it
    loaded = heads.load(heads.BUNDLED, encoder_sha256=models.MODELS[models.ENCODER].sha256)
    assert loaded.image.w.shape == (512,) and loaded.landmark_weight == 0.0
    assert loaded.prior.dtype == np.float16 and loaded.prior.shape[1] == 513 and loaded.info["C"] == train.IMAGE_C
    # every kind has a share of the blame, the most often malformed kind the whole of it
    assert set(loaded.blame) == {"hand", "face", "body"} and max(loaded.blame.values()) == 1.0
    assert all(0 < v <= 1 for v in loaded.blame.values())
    # the kind head knows the kinds the development images had as their worst: hands and people
    assert loaded.kind.kinds == ("hand", "body") and loaded.kind.w.shape == (2, 512)
    assert loaded.info["kind_head"] == ["hand", "body"]
    t = loaded.thresholds
    assert 0 < t["strict"] < t["balanced"] < t["relaxed"] <= 1
    assert loaded.info["images"] >= 100 and len(loaded.trained_images) >= loaded.info["images"]


def test_heads_for_another_encoder_or_version_are_refused_in_one_line(tmp_path, monkeypatch):
    loaded = heads.load(heads.BUNDLED)
    loaded.encoder_sha256 = "0" * 64
    heads.write(loaded, tmp_path / "other.npz")
    with pytest.raises(heads.BadHeads) as err:
        heads.load(tmp_path / "other.npz", encoder_sha256=models.MODELS[models.ENCODER].sha256)
    assert "another encoder" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setattr(heads, "HEADS_VERSION", 1)  # a version 1 file (it had per-part heads)
    heads.write(loaded, tmp_path / "old.npz")
    monkeypatch.undo()
    with pytest.raises(heads.BadHeads) as err:
        heads.load(tmp_path / "old.npz")
    assert "version 1" in str(err.value) and "reads versions 4 and 5 and 6" in str(err.value)
    assert "lib_humanrefine train" in str(err.value)
    # the command retrains into the refused file, with the models folder in force
    models.set_models_dir(tmp_path / "webui models")
    try:
        with pytest.raises(heads.BadHeads) as err:
            heads.load(tmp_path / "old.npz")
    finally:
        models.set_models_dir(None)
    assert str(err.value).endswith(
        f"lib_humanrefine --models-dir '{tmp_path / 'webui models'}' train --data DIR... --out {tmp_path / 'old.npz'}"
    )
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(heads.BadHeads, match="cannot be read"):
        heads.load(tmp_path / "broken.npz")


def test_missing_encoder_falls_back_to_the_landmarks_and_says_so(models_ready, tmp_path, astronaut, fresh_learned):
    for name in models.required():
        shutil.copy(models_ready / name, tmp_path / name)
    models.set_models_dir(tmp_path)
    _det, diagnosis = diagnose_image(astronaut, tta=False)
    assert diagnosis.image_score is None and diagnosis.learned is None
    assert (
        len(diagnosis.notes) == 1 and "learned check off" in diagnosis.notes[0] and "models fetch" in diagnosis.notes[0]
    )
    assert diagnosis.notes[0].endswith(models.fetch_command(tmp_path))  # into the folder in use
    assert not any(s.name == "learned" for p in diagnosis.parts for s in p.signals)
    assert "learned check off" in summary(diagnosis) and image_dict(diagnosis)["notes"] == diagnosis.notes
    # a corrupt encoder is reported the same way
    (tmp_path / models.ENCODER).write_bytes(b"\0" * 1000)
    learned.forget()
    _det, again = diagnose_image(astronaut, tta=False)
    assert "learned check off" in again.notes[0]


def test_missing_onnxruntime_names_the_pip_of_the_python_in_use(models_ready, astronaut, fresh_learned, monkeypatch):
    import importlib.util
    import shlex
    import sys

    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "onnxruntime" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    _det, diagnosis = diagnose_image(astronaut, tta=False)
    assert diagnosis.image_score is None and len(diagnosis.notes) == 1
    install = f"{shlex.quote(sys.executable)} -m pip install onnxruntime==1.23.2"
    assert diagnosis.notes[0] == f"learned check off: onnxruntime is not installed; install it with: {install}"


def test_heads_of_another_encoder_leave_the_landmark_diagnosis(models_ready, tmp_path, astronaut, fresh_learned):
    other = heads.load(heads.BUNDLED)
    other.encoder_sha256 = "f" * 64
    heads.write(other, tmp_path / "other.npz")
    learned.set_heads_path(tmp_path / "other.npz")
    _det, diagnosis = diagnose_image(astronaut, tta=False)
    assert diagnosis.image_score is None and "another encoder" in diagnosis.notes[0]


def test_learned_signals_read_well_and_match_the_stored_feature_arithmetic(models_ready, astronaut, fresh_learned):
    _det, diagnosis = diagnose_image(astronaut, tta=False)
    result = diagnosis.learned
    assert result is not None and not diagnosis.notes and 0 < diagnosis.image_score < 1
    told = [s for p in diagnosis.parts for s in p.signals if s.name == "learned"]
    assert told and all(
        s.reason.startswith(("learned hand check", "learned face check", "learned person check")) for s in told
    )
    # the landmark signals stay out of the score: the verdict is the image score, which the most
    # blamed kind's parts carry; the signals are still told (``strength``) and order parts of one kind
    assert diagnosis.score == pytest.approx(diagnosis.image_score, abs=1e-12)
    assert all(s.score == 0 for p in diagnosis.parts for s in p.signals if s.name != "learned")
    _encoder, loaded, _note = learned.status()
    kinds = [p.kind for p in diagnosis.parts]
    _p, _learned, shares, fused = learned.score_features(loaded, result.image_embedding, kinds, result.landmark_signals)
    assert max(fused) == pytest.approx(diagnosis.score, abs=1e-9)
    # the most blamed kind present gets the whole image score; parts of one kind share alike
    assert max(shares) == 1.0 and shares == result.part_shares
    assert all(a == b for a, ka in zip(shares, kinds) for b, kb in zip(shares, kinds) if ka == kb)
    p = loaded.kind.probabilities(result.image_embedding)
    if {"hand", "body"} <= set(kinds):  # the kind head decides between them
        hand, body = shares[kinds.index("hand")], shares[kinds.index("body")]
        assert (hand > body) == (p["hand"] > p["body"])


def test_no_learned_is_the_landmark_diagnosis(models_ready, astronaut):
    _det, plain = diagnose_image(astronaut, tta=False, learned=False)
    assert plain.image_score is None and not plain.notes and "learned" not in plain.timings_ms


def test_sensitivity_presets(models_ready, fresh_learned):
    learned_t = [learned.sensitivity_threshold(p) for p in ("strict", "balanced", "relaxed")]
    landmark_t = [learned.sensitivity_threshold(p, learned=False) for p in ("strict", "balanced", "relaxed")]
    assert learned_t == sorted(learned_t) and landmark_t == sorted(landmark_t) and learned_t != landmark_t
    with pytest.raises(HumanRefineError, match="strict, balanced, relaxed"):
        learned.sensitivity_threshold("paranoid")
    assert cli.main(["diagnose", "--samples", "--threshold", "0.5", "--sensitivity", "strict"]) == 2


def test_same_picture_as_png_jpeg_webp_keeps_its_verdict(models_ready, shared_data, fresh_learned):
    from lib_humanrefine.images import load_image

    for name in ("annotated/hastings_dalle3_hug_01.png", "real/hamer_test1.jpg"):
        image = load_image(shared_data / name)
        scores = [diagnose_image(recompressed(image, fmt, opts))[1].score for fmt, opts in data.RECOMPRESSIONS]
        assert max(scores) - min(scores) <= 0.1, (name, scores)


# --- training ----------------------------------------------------------------------------------


def test_label_folders_read_part_rows_groups_and_severities(tmp_path):
    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    Image.new("RGB", (32, 32)).save(tmp_path / "h.png")
    (tmp_path / "labels.csv").write_text(
        "\ufeffpath,label,kind,part,group\na.png,1,generated-malformed,,g1\nh.png,0,user,hand,\n", encoding="utf-8"
    )
    (tmp_path / "annotations.csv").write_text(
        "path,severity,torso,limbs,feet,hands,face,prompt\na.png,3.0,0,0.2,0,2.5,0,a cat\n"
    )
    a, h = data.load_folder(tmp_path)
    assert (a.part, a.group, a.generated) == ("image", "g1", True)
    assert a.severity["hands"] == 2.5 and data.part_label(a, "hand", (0, 0, 1, 1), None) == 1
    assert data.part_label(a, "face", (0, 0, 1, 1), None) == 0  # face severity 0
    assert data.part_label(a, "body", (0, 0, 1, 1), None) == -1  # 0.2: neither clear
    assert (h.part, h.label, h.group) == ("hand", 0, "file:h.png")
    (tmp_path / "labels.csv").write_text("path,label,part\na.png,1,elbow\n")
    with pytest.raises(BadImage, match="part in"):
        data.load_folder(tmp_path)


def test_groups_follow_source_repository_and_prompt(shared_data):
    main = data.FolderInfo(shared_data)
    assert main.group(shared_data / "ai" / "foundhand_3.jpg") == "arthurchen0518/FoundHand"
    assert main.group(shared_data / "real" / "opencvdoc_handSrc.jpg") == "debian:opencv-doc"
    annotated = data.FolderInfo(shared_data / "annotated")
    assert annotated.group(shared_data / "annotated" / "hastings_sdxl_pizza_02.jpg") == "prompt:people eating pizza"
    # the annotated study's repository: its other files by their prompt folder, so no prompt is on both sides
    assert main.group(shared_data / "gen" / "hastings_sdxl_hug_08.jpg") == "prompt:couple hugging"
    assert main.group(shared_data / "gen" / "hastings_sdxl_jogging_08.jpg") == "prompt:person jogging"
    assert main.group(shared_data / "gen" / "impact_simple_refined.png") == "ltdrdata/ComfyUI-extension-tutorials"


def _tiny_set(shared_data, folder):
    """Four malformed and four normal images from several sources, plus two user hand crops."""
    rows = [
        ("ai/foundhand_3.jpg", 1), ("ai/handrefiner_2.jpg", 1), ("gen/hastings_sc_hug_08.png", 1),
        ("ai/foundhand_7.jpg", 1), ("real/hamer_test1.jpg", 0), ("real/messi5.jpg", 0),
        ("gen/impact_simple_refined.png", 0), ("real/controlnet_human.png", 0),
    ]  # fmt: skip
    lines = ["path,label,kind,part,group"]
    for path, label in rows:
        lines.append(f"{shared_data / path},{label},{'generated' if label else 'photo'},image,{path.split('/')[0]}")
    from lib_humanrefine.images import load_image

    for i, (path, label) in enumerate((("ai/foundhand_3.jpg", 1), ("real/hamer_test1.jpg", 0))):
        image = load_image(shared_data / path)
        _det, diagnosis = diagnose_image(image, tta=False, learned=False)
        hand = next(p for p in diagnosis.parts if p.kind == "hand")
        Image.fromarray(teach.part_crop(image, hand.box, hand.kind)).save(folder / f"hand{i}.png")
        lines.append(f"hand{i}.png,{label},user,hand,")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")


def test_training_is_reproducible_and_separates_its_tiny_set(encoder, shared_data, tmp_path, capsys):
    pytest.importorskip("sklearn")
    folder = tmp_path / "tiny"
    folder.mkdir()
    _tiny_set(shared_data, folder)
    assert cli.main(["train", "--fresh", "--data", str(folder), "--out", str(tmp_path / "one.npz")]) == 0
    assert cli.main(["train", "--fresh", "--data", str(folder), "--out", str(tmp_path / "two.npz")]) == 0
    printed = capsys.readouterr().out
    assert "heads written" in printed and f"image head C {train.IMAGE_C}" in printed
    sha = models.MODELS[models.ENCODER].sha256
    one, two = heads.load(tmp_path / "one.npz", sha), heads.load(tmp_path / "two.npz", sha)
    assert np.array_equal(one.image.w, two.image.w) and one.image.b == two.image.b
    assert one.thresholds == two.thresholds and one.platt == two.platt
    assert one.blame == two.blame and np.array_equal(one.prior, two.prior)
    assert one.kind is None and one.info["kind_head"] is None  # its masks mark hands only: one kind known
    assert one.info["images"] == 8 and one.info["part_rows"]["hand"] == 2
    # the image head separates the images it was trained on
    samples = [s for s in data.load_folder(folder) if s.part == "image"]
    from lib_humanrefine.images import load_image

    scores = [one.image_probability(encoder.embed([whole_image(load_image(s.path))])[0]) for s in samples]
    positives = [p for p, s in zip(scores, samples) if s.label == 1]
    negatives = [p for p, s in zip(scores, samples) if s.label == 0]
    assert min(positives) > max(negatives)


def test_train_adds_a_users_labels_to_the_bundled_heads_and_says_what_it_used(encoder, shared_data, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    _tiny_set(shared_data, folder)
    assert cli.main(["train", "--data", str(folder), "--out", str(tmp_path / "mine.npz")]) == 0
    out, err = capsys.readouterr()
    assert "added to the bundled heads' training" in out and "8 whole picture(s) (4 malformed)" in out
    assert "AUROC" in out and "only 8 whole pictures" in err  # fewer than advised: said, and trained
    sha = models.MODELS[models.ENCODER].sha256
    bundled, mine = heads.load(heads.BUNDLED, sha), heads.load(tmp_path / "mine.npz", sha)
    assert mine.info["taught"]["image_head_changed"] and not np.array_equal(mine.image.w, bundled.image.w)
    assert mine.thresholds == bundled.thresholds and mine.platt == bundled.platt and mine.prior is None
    assert mine.kind.kinds == bundled.kind.kinds  # the kind head is the bundled one
    assert mine.info["blame_counts"]["hand"][1] >= bundled.info["blame_counts"]["hand"][1] + 2  # the two crops
    # one-sided labels leave the image head as it was, and say so
    lines = (folder / "labels.csv").read_text().splitlines()
    (folder / "labels.csv").write_text("\n".join([lines[0], *[ln for ln in lines[1:] if ",1," in ln]]) + "\n")
    assert cli.main(["train", "--data", str(folder), "--out", str(tmp_path / "one-sided.npz")]) == 0
    out, err = capsys.readouterr()
    one_sided = heads.load(tmp_path / "one-sided.npz", sha)
    assert np.array_equal(one_sided.image.w, bundled.image.w) and not one_sided.info["taught"]["image_head_changed"]
    assert "the image head is left as it was" in err and "mark both kinds" in err


def test_each_kinds_share_of_blame_is_its_malformed_rate_in_malformed_images_and_crop_rows():
    from lib_humanrefine.training.train import Features, fit_blame

    def image(label, parts):
        kinds, labels = zip(*parts)
        return Features(data.Sample(None, label), np.zeros(512), list(kinds), [[]] * len(kinds), list(labels))

    def crop(kind, label):
        return Features(data.Sample(None, label, kind), None, [kind], [[]], [label])

    features = [
        image(1, [("hand", 1), ("face", 0), ("body", -1)]),
        image(1, [("hand", 1), ("face", 0), ("body", 0)]),
        image(0, [("hand", 0), ("face", 0), ("body", 0)]),  # a normal image's parts say nothing of blame
    ]
    # smoothed rates: hand 3/4, face 1/4, body 1/3 -> shares over the hand's
    assert fit_blame(features) == {"hand": 1.0, "face": pytest.approx(1 / 3, abs=1e-4), "body": 0.4444}
    # a user's crop verdicts move their kind's share
    # face: (2 + 1) / (4 + 2) = 1/2 over the hand's 3/4
    assert fit_blame(features + [crop("face", 1), crop("face", 1)])["face"] == pytest.approx(2 / 3, abs=1e-4)


def _shares_heads(kind_head=None):
    return heads.Heads("sha", heads.Linear(np.zeros(512), 0.0), {"hand": 1.0, "face": 0.6, "body": 0.9}, kind=kind_head)


def test_the_kind_head_ranks_hands_and_people_and_faces_keep_their_counted_share():
    w = np.zeros((2, 512))
    w[1, 0] = 1.0  # axis 0: how much the picture looks like a broken body
    kind_head = heads.KindHead(("hand", "body"), w, np.zeros(2))
    bodyish, handish = np.eye(512)[0], -np.eye(512)[0]
    p = kind_head.probabilities(bodyish)
    assert p["body"] == pytest.approx(1 / (1 + np.exp(-1))) and sum(p.values()) == pytest.approx(1)
    with_head, counted = _shares_heads(kind_head), _shares_heads()
    kinds = ["hand", "face", "body", "hand"]
    # counted shares alone: hands first, whatever the picture
    assert counted.part_shares(kinds, bodyish).tolist() == [1.0, 0.6, 0.9, 1.0]
    # the head sees a broken body: the person gets the whole score, each hand its odds against it
    hand_share = (p["hand"] / p["body"]) ** heads.KIND_POWER
    assert 0.5 < hand_share < 1  # demoted, not silenced: a picture often has more than one broken kind
    assert with_head.part_shares(kinds, bodyish).tolist() == pytest.approx([hand_share, 0.6, 1.0, hand_share])
    assert with_head.part_shares(kinds, handish).tolist() == pytest.approx([1.0, 0.6, hand_share, 1.0])
    # without a hand in the picture, the person keeps the top counted share among the kinds the head knows
    assert with_head.part_shares(["face", "body"], handish).tolist() == pytest.approx([0.6 / 0.9, 1.0])
    assert with_head.part_shares(["face"], bodyish).tolist() == [1.0]
    assert with_head.part_shares(kinds).tolist() == [1.0, 0.6, 0.9, 1.0]  # no embedding: counted


def test_worst_kind_comes_from_the_severities_or_the_one_kind_a_mask_marks():
    severity = {"torso": 0.2, "limbs": 0.5, "feet": 0.0, "hands": 0.6, "face": 0.0, "severity": 1.3}
    annotated = data.Sample(Path("a.png"), 1, severity=severity)
    assert data.worst_kind(annotated, [], []) == "body"  # torso + limbs + feet 0.7 over hands 0.6
    assert data.worst_kind(data.Sample(Path("a.png"), 1, severity={**severity, "hands": 0.7}), [], []) == "hand"  # tie
    marked = data.Sample(Path("m.png"), 1)
    assert data.worst_kind(marked, ["hand", "body", "hand"], [1, -1, 0]) == "hand"
    assert data.worst_kind(marked, ["hand", "face"], [1, 1]) is None  # two kinds marked: unknown
    assert data.worst_kind(marked, ["hand"], [-1]) is None
    assert data.worst_kind(data.Sample(Path("n.png"), 0, severity=severity), [], []) is None  # normal


def test_the_kind_head_learns_the_worst_kind(tmp_path):
    pytest.importorskip("sklearn")
    from lib_humanrefine.training.train import Features, fit_core, fit_kind

    rng = np.random.default_rng(4)

    def picture(kind, label=1):
        severity = {c: 0.0 for c in data.SEVERITY_COLUMNS}
        severity["hands" if kind == "hand" else "limbs"] = 1.0
        e = np.zeros(512)
        e[0], e[2:6] = (1.0 if kind == "body" else -1.0) + rng.normal(0, 0.5), rng.normal(0, 0.3, 4)  # axis 0: kind
        return Features(
            data.Sample(None, label, severity=severity if label else None), e, ["hand", "body"], [[], []], [-1, -1]
        )

    rows = [picture(kind) for kind in ("hand", "body") * 8] + [picture("hand", 0) for _ in range(4)]
    head = fit_kind(rows)
    assert head.kinds == ("hand", "body") and head.w.shape == (2, 512)
    assert head.probabilities(np.eye(512)[0])["body"] > 0.6 > head.probabilities(-np.eye(512)[0])["body"]
    # fitted with the image head, written and read back
    fitted = fit_core(rows, "sha")
    heads.write(fitted, tmp_path / "h.npz")
    loaded = heads.load(tmp_path / "h.npz")
    assert loaded.kind.kinds == head.kinds and np.allclose(loaded.kind.w, head.w, atol=1e-6)
    # one kind known worst only: no kind head, the counted shares decide
    assert fit_kind([f for f in rows if f.image_embedding[0] < 0 or f.sample.label == 0]) is None


def test_version_4_heads_still_load_without_a_kind_head(tmp_path, monkeypatch):
    bundled = heads.load(heads.BUNDLED)
    bundled.kind = None
    monkeypatch.setattr(heads, "HEADS_VERSION", 4)
    heads.write(bundled, tmp_path / "v4.npz")
    monkeypatch.undo()
    loaded = heads.load(tmp_path / "v4.npz", encoder_sha256=models.MODELS[models.ENCODER].sha256)
    assert loaded.kind is None and loaded.blame == bundled.blame
    kinds = ["hand", "body", "face"]
    counted = [loaded.blame[k] / max(loaded.blame.values()) for k in kinds]
    assert loaded.part_shares(kinds, np.ones(512) / np.sqrt(512)).tolist() == pytest.approx(counted)


def test_a_kind_head_that_does_not_fit_its_file_is_refused_in_one_line(tmp_path):
    with np.load(heads.BUNDLED, allow_pickle=False) as bundled:
        arrays = {k: bundled[k] for k in bundled.files}
    arrays["kind_b"] = arrays["kind_b"][:1]  # one bias for two kinds
    np.savez(tmp_path / "odd.npz", **arrays)
    with pytest.raises(heads.BadHeads, match=r"cannot be read \(kind head\)$"):
        heads.load(tmp_path / "odd.npz")


def test_bench_cross_validates_by_group_and_skips_part_rows(models_ready, shared_data, tmp_path):
    pytest.importorskip("sklearn")
    from lib_humanrefine.bench import load_labels, run_bench

    _tiny_set(shared_data, tmp_path)
    items = load_labels(tmp_path / "labels.csv", tmp_path)
    assert len(items) == 8  # the two hand crops are training rows, not pictures
    figures = run_bench(items, threshold=0.7, tta=False, stability=True)
    cv = figures["learned_cv"]
    # groups ai (3 malformed), gen (1 + 1), real (3 normal): only holding out gen leaves both labels to train on
    assert cv["scored"] == 2 and cv["all"]["n_pos"] == 1 and cv["all"]["n_neg"] == 1
    # its normal pictures are photos: no generated-only figure, no prompt group
    assert cv["generated_malformed_vs_photos"]["n_pos"] == 1 and not {"generated_only", "prompt_groups"} & set(cv)
    assert set(cv["teach"]) == {"5", "10", "20"} and cv["teach"]["5"]["groups"] == 0  # no group big enough
    assert figures["stability"]["images"] == 8  # the shipped heads on every picture's copies
    assert cv["stability_held_out"]["images"] == 2  # the held-out heads on the scored pictures' copies
    assert 0 <= cv["stability_held_out"]["worst_swing"] <= 1
    assert figures["learned"]["note"] is None and figures["learned"]["rss_mb_encoder"] is not None
    assert "peak_mb_encoder_load" in figures["learned"]
    assert set(figures["learned"]["presets_on_these_images"]) == {"strict", "balanced", "relaxed"}


def test_the_held_out_swing_scores_each_pictures_copies_with_its_held_out_heads():
    pytest.importorskip("sklearn")
    from lib_humanrefine.training.evaluate import crossval
    from lib_humanrefine.training.train import Features

    rng = np.random.default_rng(1)

    def picture(n, label, group):
        e = np.zeros(512)
        e[0], e[1:9] = (1.0 if label else -1.0) + rng.normal(0, 0.5), rng.normal(0, 0.3, 8)
        sample = data.Sample(Path(f"{group}_{n}.png"), label, group=group)
        return Features(sample, e, ["hand"], [[0.0]], [label], [(0, 0, 1, 1)])

    rows = [picture(n, n % 2, group) for group in ("a", "b", "c") for n in range(8)]
    same = {i: [Features(f.sample, f.image_embedding.copy(), f.kinds, f.landmark_signals)] for i, f in enumerate(rows)}
    assert crossval(rows, "sha", copies=same)["stability_held_out"] == {
        "images": 24, "worst_swing": 0.0, "worst_image": rows[0].sample.path.name, "mean_swing": 0.0,
        "images_over_0.1": 0,
    }  # fmt: skip
    moved = dict(same)  # one malformed picture whose copy looks like a normal one
    moved[5] = [Features(rows[5].sample, rows[5].image_embedding - 2 * np.eye(512)[0], ["hand"], [[0.0]])]
    held_out = crossval(rows, "sha", copies=moved)["stability_held_out"]
    assert held_out["worst_image"] == "a_5.png" and held_out["worst_swing"] > 0.1
    assert held_out["images_over_0.1"] == 1


def test_held_out_presets_count_false_alarms_among_normal_generated_pictures_apart():
    pytest.importorskip("sklearn")
    from lib_humanrefine.training.evaluate import crossval
    from lib_humanrefine.training.train import Features

    rng = np.random.default_rng(2)

    def picture(n, label, kind, centre, group):
        e = np.zeros(512)
        e[0], e[1:9] = centre + rng.normal(0, 0.4), rng.normal(0, 0.3, 8)
        return Features(data.Sample(Path(f"{group}_{n}.png"), label, kind=kind, group=group), e, ["hand"], [[0.0]])

    rows = []
    for group in ("a", "b", "c", "d"):
        rows += [picture(n, 1, "generated-malformed", 1.0, group) for n in range(4)]
        rows += [picture(n, 0, "generated-normal", 0.3, group) for n in range(4, 7)]
        rows += [picture(n, 0, "photo", -4.0, group) for n in range(7, 10)]  # never flagged
    presets = crossval(rows, "sha")["presets_held_out"]
    for preset in presets.values():  # all false alarms are generated pictures: half the normal ones
        assert preset["false_alarms_generated"] == pytest.approx(2 * preset["false_alarms"], abs=1e-3)
    assert presets["strict"]["false_alarms_generated"] > 0
    for f in rows:
        f.sample.kind = "photo" if f.sample.label == 0 else f.sample.kind
    assert crossval(rows, "sha")["presets_held_out"]["strict"]["false_alarms_generated"] is None


def test_where_counts_the_top_parts_focus_besides_its_box():
    pytest.importorskip("sklearn")
    from lib_humanrefine.training.evaluate import crossval
    from lib_humanrefine.training.train import Features

    rng = np.random.default_rng(3)
    mask = np.zeros((100, 100), bool)
    mask[0:40, 60:100] = True  # the malformed fingers: a corner of the hand's box

    def picture(n, label, group, focus):
        e = np.zeros(512)
        e[0], e[1:9] = (1.0 if label else -1.0) + rng.normal(0, 0.3), rng.normal(0, 0.3, 8)
        sample = data.Sample(Path(f"{group}_{n}.png"), label, group=group)
        return Features(sample, e, ["hand"], [[0.0]], [label], [(0, 0, 100, 100)], focus_boxes=[focus])

    on_the_fingers, elsewhere = (60, 0, 100, 40), (0, 60, 40, 100)
    rows = [picture(n, n % 2, g, on_the_fingers if n < 4 else elsewhere) for g in ("a", "b", "c") for n in range(8)]
    masks = {i: mask for i, f in enumerate(rows) if f.sample.label == 1}
    coverage = crossval(rows, "sha", masks)["mask_coverage"]
    # malformed pictures 1 and 3 of each group have their focus on the mask, 5 and 7 do not
    assert coverage["images_with_mask"] == 12 and coverage["top_part_inside_mask"] == 0
    assert coverage["top_part_focus_inside_mask"] == 6 and coverage["best_possible_with_focus"] == 6
    assert coverage["top_flagged_focus_inside_mask"] <= 6
    for f in rows:  # features from before focus boxes: the box stands in
        f.focus_boxes = []
    assert crossval(rows, "sha", masks)["mask_coverage"]["top_part_focus_inside_mask"] == 0


def test_train_rejects_a_folder_without_labels(tmp_path):
    assert cli.main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "h.npz")]) == 2


def test_report_json_carries_image_score_and_notes(models_ready, astronaut, tmp_path, fresh_learned):
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    assert cli.main(["diagnose", str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--no-overlay"]) == 0
    entry = json.loads((tmp_path / "out" / "report.json").read_text())["images"][0]
    assert 0 < entry["image_score"] < 1 and entry["notes"] == []
    assert entry["threshold"] == learned.sensitivity_threshold("balanced")


def test_the_preset_follows_the_scores_the_diagnosis_has(monkeypatch, astronaut):
    """The WebUI, the routes and the tab diagnose through service.diagnose_for: the learned setting
    reaches the diagnosis, and a preset's threshold is the learned one only when the learned check ran."""
    import lib_humanrefine.diagnose as diagnose_mod
    from lib_humanrefine.options import ScriptArgs, Settings
    from lib_humanrefine.service import diagnose_for

    seen = {}

    def fake_diagnose(array, threshold, tta, learned):
        seen["learned"] = learned
        diagnosis = diagnose_mod.Diagnosis(array.shape[1], array.shape[0], [], threshold)
        diagnosis.learned = object() if learned else None
        return None, diagnosis

    monkeypatch.setattr(diagnose_mod, "diagnose_image", fake_diagnose)
    relaxed = ScriptArgs(enabled=True, sensitivity="relaxed")
    _d, diagnosis, args = diagnose_for(astronaut, relaxed, Settings())
    assert seen["learned"] and args.threshold == diagnosis.threshold == learned.sensitivity_threshold("relaxed")
    _d, diagnosis, args = diagnose_for(astronaut, relaxed, Settings(learned=False))
    assert not seen["learned"] and args.threshold == learned.sensitivity_threshold("relaxed", learned=False)
    _d, diagnosis, args = diagnose_for(astronaut, ScriptArgs(sensitivity="threshold", threshold=0.35), Settings())
    assert args.threshold == diagnosis.threshold == 0.35


# --- the float32 encoder -----------------------------------------------------------------------


def test_the_float_encoder_runs_the_int8_files_weights_without_quantized_activations(models_ready, astronaut):
    import onnxruntime as ort

    from lib_humanrefine.diagnose.learned import dequantize
    from lib_humanrefine.diagnose.learned.encoder import to_tensor

    int8_bytes = (models_ready / models.ENCODER).read_bytes()
    pieces, rewritten = dequantize.float_model(int8_bytes)
    model = b"".join(pieces)
    assert rewritten == 73  # q, k, v, out and two MLP products in each of 12 layers, and the projection
    graph = next(v for n, _w, v in dequantize._fields(model) if n == dequantize.MODEL_GRAPH)
    ops = [dequantize._node(v).op_type for n, _w, v in dequantize._fields(graph) if n == dequantize.GRAPH_NODE]
    assert "MatMulInteger" not in ops and "DynamicQuantizeLinear" not in ops
    assert ops.count("FusedMatMul") == 73 and ops.count("MatMul") == 24  # the attention's own products stay
    assert ops.count("DequantizeLinear") == 73  # the weights stay INT8: dequantized one matrix at a time
    assert len(model) < len(int8_bytes)  # no float32 copy of the weights
    x = to_tensor([whole_image(astronaut)])
    as_float = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(
        ["image_embeds"], {"pixel_values": x}
    )[0]
    a = as_float[0] / np.linalg.norm(as_float[0])
    if x86_without_vnni():
        pytest.skip(
            "the INT8 file's own output is no reference on an x86 CPU without VNNI: onnxruntime's 8-bit "
            "products saturate there (cosine 0.37 to the float32 embedding on an AVX2-only AMD EPYC)"
        )
    as_int8 = ort.InferenceSession(int8_bytes, providers=["CPUExecutionProvider"]).run(
        ["image_embeds"], {"pixel_values": x}
    )[0]
    b = as_int8[0] / np.linalg.norm(as_int8[0])
    assert 0.97 < float(a @ b) < 0.99999  # the same weights; only the activations' rounding differs


def x86_without_vnni() -> bool:
    """An x86 CPU (AVX2) without the VNNI dot-product instructions (Linux's /proc/cpuinfo flags)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        flags = set(next(line for line in cpuinfo if line.startswith("flags")).split())
    except (OSError, StopIteration):
        return False
    return "avx2" in flags and not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}


def test_the_encoder_keeps_no_copy_of_the_model_and_embeds_as_with_float32_weights(encoder, astronaut):
    # onnxruntime's wrapper would hold the model's bytes for a provider fallback
    assert getattr(encoder.session, "_model_bytes", None) is None
    # the embedding the encoder gave when it turned the INT8 weights into float32 once at load
    stored = json.loads((Path(__file__).parent / "data" / "astronaut_embedding_float32_weights.json").read_text())
    reference = np.array(stored["embedding"])
    assert float(encoder.embed([whole_image(astronaut)])[0] @ reference) > 0.99999


def test_a_file_the_rewrite_does_not_know_is_refused_in_one_line():
    from lib_humanrefine.diagnose.learned import dequantize

    relu = dequantize._field(dequantize.NODE_OP_TYPE, dequantize.BYTES, b"Relu")
    no_quantized = dequantize._field(
        dequantize.MODEL_GRAPH, dequantize.BYTES, dequantize._field(dequantize.GRAPH_NODE, dequantize.BYTES, relu)
    )
    for raw, words in ((b"\x0a\xff", "not an ONNX model"), (b"", "no single graph"), (no_quantized, "no quantized")):
        with pytest.raises(dequantize.CannotDequantize) as err:
            dequantize.float_model(raw)
        assert words in str(err.value) and "\n" not in str(err.value)


def test_out_of_fold_scores_that_rank_backwards_do_not_turn_the_image_head_around():
    pytest.importorskip("sklearn")
    from lib_humanrefine.training import train

    rows = [train.Features(data.Sample(None, label), np.zeros(2)) for label in (0, 0, 0, 1, 1, 1)]
    backwards = train.OutOfFold(rows, np.array([2.0, 1.5, 0.5, -0.3, -1.0, 0.2]))
    assert train.calibrate(heads.Heads("", heads.Linear(np.zeros(2), 0.0)), backwards).platt == (1.0, 0.0)
    forwards = train.OutOfFold(rows, -backwards.image_logits)
    assert train.calibrate(heads.Heads("", heads.Linear(np.zeros(2), 0.0)), forwards).platt[0] > 0


def test_a_landmark_signal_weighted_down_is_still_told_as_a_reason():
    from lib_humanrefine.diagnose.types import Part, Signal

    part = Part(
        "hand", "right", 0, (0, 0, 10, 10), "hand", [Signal("ring_ratio", 0.2, 0.05, "ring finger short", evidence=1.0)]
    )
    part.signals.append(Signal("learned", 1.0, 0.40, "learned hand check 0.40"))
    assert part.reasons == ["learned hand check 0.40", "ring finger short"]  # ordered by what each adds
    assert part.score == pytest.approx(1 - 0.95 * 0.6)
    weak = Part(
        "hand", "right", 0, (0, 0, 10, 10), "hand", [Signal("ring_ratio", 0.2, 0.05, "ring finger short", evidence=0.1)]
    )
    assert weak.reasons == []
    # weighted at 0 (heads version 6), the signals are told by their own strength, strongest first
    unweighted = Part("hand", "right", 0, (0, 0, 10, 10), "hand", [
        Signal("ring_ratio", 0.2, 0.0, "ring finger short", "hand", evidence=0.3),
        Signal("floating_hand", 1.0, 0.0, "hand not attached", "arm", evidence=0.8),
        Signal("learned", 1.0, 0.4, "learned hand check 0.40"),
    ])  # fmt: skip
    assert unweighted.reasons == ["learned hand check 0.40", "hand not attached", "ring finger short"]
    assert unweighted.main_category == "arm" and unweighted.score == pytest.approx(0.4)


# --- the plain probe and the teach loop --------------------------------------------------------------


def _pictures(rng, n, group, kind="generated", shift=0.0):
    """n labelled pictures (alternating labels): axis 0 tells malformed from normal, ``shift`` moves
    the whole group along axis 1 (its own kind of picture)."""
    rows = []
    for i in range(n):
        label = i % 2
        e = np.zeros(512)
        e[0], e[1], e[2:10] = (0.6 if label else -0.6) + rng.normal(0, 0.6), shift, rng.normal(0, 0.3, 8)
        sample = data.Sample(Path(f"{group}_{i}.png"), label, kind=kind, group=group)
        rows.append(train.Features(sample, e, ["hand"], [[0.0]], [label], [(0, 0, 1, 1)]))
    return rows


def test_the_prior_is_the_training_losss_curvature_and_no_rows_embeddings():
    pytest.importorskip("sklearn")
    rows = _pictures(np.random.default_rng(6), 40, "a") + _pictures(np.random.default_rng(7), 40, "b")
    fitted = train.fit_heads(rows, "sha")
    x = np.hstack([np.array([f.image_embedding for f in rows]), np.ones((len(rows), 1))])
    y = np.array([f.sample.label for f in rows])
    p = 1 / (1 + np.exp(-(x @ np.append(fitted.image.w, fitted.image.b))))
    hessian = (x * (p * (1 - p))[:, None]).T @ x  # balanced classes: every weight 1 here
    prior = fitted.prior.astype(np.float64)
    assert np.abs(prior.T @ prior - hessian).max() < 2e-3 * np.abs(hessian).max()
    assert prior.shape[0] < len(rows)  # directions the regulariser outweighs are left out
    assert fitted.info["C"] == train.IMAGE_C and y.sum() == 40


def test_teaching_a_users_pictures_is_a_refit_with_them_counted_three_times():
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(8)
    development = _pictures(rng, 60, "a") + _pictures(rng, 60, "b")
    base = train.fit_heads(development, "sha")
    mine = _pictures(rng, 10, "mine", shift=1.0)
    taught = train.teach(base, mine)
    # the same fit with the development pictures themselves: balanced weights in each part
    x = np.array([f.image_embedding for f in development + mine])
    y = np.array([f.sample.label for f in development + mine])
    weights = np.array([1.0] * len(development) + [teach.TEACH_WEIGHT] * len(mine))  # both sets balanced already
    refit = sklearn.LogisticRegression(C=train.IMAGE_C, max_iter=5000).fit(x, y, sample_weight=weights)
    logits = x @ refit.coef_[0] + refit.intercept_[0]
    assert np.abs(taught.image.logit(x) - logits).max() < 0.05 * np.abs(logits).max()
    assert np.abs(base.image.logit(x) - logits).max() > 5 * np.abs(taught.image.logit(x) - logits).max()
    assert taught.platt == base.platt and taught.thresholds == base.thresholds and taught.prior is None
    assert taught.info["taught"] == {
        "images": 10, "malformed": 5, "part_rows": {"hand": 0, "face": 0, "body": 0}, "image_head_changed": True,
        "weight": teach.TEACH_WEIGHT,
    }  # fmt: skip
    # fewer than two of a label: nothing to separate, the image head stays
    assert train.teach(base, [f for f in mine if f.sample.label == 1] + mine[:1]).image is base.image
    assert train.teach(heads.Heads("sha", base.image), mine).image is base.image  # heads without a prior


def test_teach_warns_when_labels_are_too_few_or_one_sided():
    rows = _pictures(np.random.default_rng(9), 12, "mine")
    crop = train.Features(data.Sample(Path("h.png"), 1, "hand"), None, ["hand"], [[]], [1])
    assert train.teach_warnings(rows) == []
    [few] = train.teach_warnings(rows[:6])
    assert "only 6 whole pictures" in few and f"at least {teach.TEACH_ADVISED}" in few
    [one_sided] = train.teach_warnings([f for f in rows if f.sample.label == 1])
    assert "6 malformed and 0 fine" in one_sided and "left as it was" in one_sided
    assert any("part crop(s) only" in w for w in train.teach_warnings([crop]))


def test_the_teach_curve_scores_the_rest_of_each_held_out_group_before_and_after():
    pytest.importorskip("sklearn")
    from lib_humanrefine.training import evaluate

    rng = np.random.default_rng(10)
    rows = _pictures(rng, 30, "a") + _pictures(rng, 30, "b") + _pictures(rng, 14, "c", shift=2.0)
    rows += _pictures(rng, 8, "photos", kind="photo")  # not all generated: never taught
    result = evaluate.crossval(rows, "sha")
    curve = result["teach"]
    assert set(curve) == {"5", "10", "20"}
    assert set(curve["5"]["per_group"]) == {"a", "b", "c"} and curve["5"]["draws"] <= 3 * evaluate.TEACH_DRAWS
    assert set(curve["20"]["per_group"]) == {"a", "b"}  # c has 14 pictures: none left to score
    for k in ("5", "10"):
        gains = [g["auroc_after"] - g["auroc_before"] for g in curve[k]["per_group"].values()]
        assert curve[k]["auroc_gain"] == pytest.approx(np.mean(gains), abs=1e-4)
        assert set(curve[k]["balanced_preset"]) == {
            "false_alarms_before", "false_alarms_after", "recall_before", "recall_after"
        }  # fmt: skip
    assert evaluate.crossval(rows, "sha")["teach"] == curve  # seeded: the same draws every run
    assert {"generated_only", "generated_malformed_vs_photos", "all"} <= set(result)


def test_heads_keep_their_prior_and_refuse_one_that_does_not_fit(tmp_path):
    bundled = heads.load(heads.BUNDLED)
    heads.write(bundled, tmp_path / "h.npz")
    assert np.array_equal(heads.load(tmp_path / "h.npz").prior, bundled.prior)
    with np.load(heads.BUNDLED, allow_pickle=False) as stored:
        arrays = {k: stored[k] for k in stored.files}
    arrays["image_prior"] = arrays["image_prior"][:, :512]  # no column for the bias
    np.savez(tmp_path / "odd.npz", **arrays)
    with pytest.raises(heads.BadHeads, match=r"cannot be read \(prior\)$"):
        heads.load(tmp_path / "odd.npz")


def test_parts_of_one_kind_go_by_their_landmark_evidence_then_size():
    from lib_humanrefine.diagnose.types import Part, Signal, worst_first

    def hand(box, evidence):
        signals = [Signal("ring_ratio", 0.2, 0.0, "ring finger short", evidence=evidence)] if evidence else []
        return Part("hand", None, 0, box, "hand", [*signals, Signal("learned", 1.0, 0.7, "learned hand check 0.70")])

    small_odd, large_plain, large_odd = hand((0, 0, 5, 5), 0.6), hand((0, 0, 50, 50), 0.0), hand((0, 0, 40, 40), 0.3)
    parts = [large_plain, small_odd, large_odd]
    assert [p.score for p in parts] == [0.7, 0.7, 0.7]  # the landmark signals add nothing to the score
    assert small_odd.landmark_evidence == pytest.approx(0.6) and small_odd.reasons[-1] == "ring finger short"
    scores, kinds, boxes = [0.7] * 3, ["hand"] * 3, [p.box for p in parts]
    assert worst_first(scores, kinds, boxes, [p.landmark_evidence for p in parts]) == [1, 2, 0]
    assert worst_first(scores, kinds, boxes) == [0, 2, 1]  # without evidence: the larger first


def test_bench_prints_the_held_out_figures_presets_and_teach_curve():
    from lib_humanrefine.training.benchfig import format_table

    separation = {"auroc": 0.7, "recall_at_fpr10": 0.3, "n_pos": 9, "n_neg": 8}
    preset = {"false_alarms_generated": 0.1, "false_alarms_photos": 0.0, "recall": 0.3}
    result = {
        "learned": {"rss_mb_encoder": 180.0, "peak_mb_encoder_load": 190.0},
        "latency_1024px_le2_people": {"n": 10, "p50": 250.0, "p95": 300.0},
        "latency_1024px_le2_people_no_learned": {"n": 10, "p50": 70.0, "p95": 90.0},
        "learned_cv": {
            "protocol": "leave one group out", "generated_only": separation, "all": separation,
            "landmark_signals_alone": {"generated_only": separation},
            "presets_held_out": {"strict": preset, "balanced": preset, "relaxed": preset},
            "teach": {
                "5": {"groups": 1, "draws": 20, "auroc_gain": 0.03, "per_group": {
                    "prompt:couple hugging": {"draws": 20, "auroc_before": 0.6, "auroc_after": 0.63}},
                    "balanced_preset": {"false_alarms_before": 0.1, "false_alarms_after": 0.12, "recall_before": 0.3,
                                        "recall_after": 0.35}},
                "20": {"groups": 0, "note": "no held-out group has more than 20 pictures"},
            },
        },
    }  # fmt: skip
    table = format_table(result)
    assert "180.0 MB resident" in table and "peak 190.0 MB" in table
    assert "p50 250.0 ms with it, 70.0 ms without" in table
    assert "generated only" in table and "balanced" in table and "10 %" in table
    assert "k =  5: +0.030 over 1 groups" in table and "couple hugging 0.60->0.63" in table
    assert "k = 20: no held-out group" in table


def test_the_encoder_takes_the_detectors_thread_count_unless_told(models_ready, monkeypatch):
    from lib_humanrefine.detect import runtime
    from lib_humanrefine.diagnose.learned.encoder import Encoder

    monkeypatch.setattr(runtime, "NUM_THREADS", 1)
    path = str(models_ready / models.ENCODER)
    assert Encoder(path).session.get_session_options().intra_op_num_threads == 1
    assert Encoder(path, threads=2).session.get_session_options().intra_op_num_threads == 2
