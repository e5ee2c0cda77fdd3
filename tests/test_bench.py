import numpy as np
import pytest

from lib_humanrefine.bench import auroc, load_labels, recall_at_fpr
from lib_humanrefine.errors import BadImage


def test_auroc_perfect_random_and_ties():
    y = np.array([1, 1, 0, 0])
    assert auroc(np.array([0.9, 0.8, 0.1, 0.2]), y) == 1.0
    assert auroc(np.array([0.1, 0.2, 0.9, 0.8]), y) == 0.0
    assert auroc(np.array([0.5, 0.5, 0.5, 0.5]), y) == 0.5


def test_auroc_matches_pairwise_count():
    rng = np.random.default_rng(0)
    s, y = rng.random(50), rng.integers(0, 2, 50)
    pairs = [(a > b) + 0.5 * (a == b) for a in s[y == 1] for b in s[y == 0]]
    assert auroc(s, y) == pytest.approx(np.mean(pairs))


def test_recall_at_fpr_respects_the_false_alarm_cap():
    neg = np.linspace(0, 1, 10)  # one negative per 0.1 step; at most 1 of 10 may pass
    pos = np.array([0.95, 0.85, 0.5, 0.2])
    s = np.concatenate([pos, neg])
    y = np.array([1] * 4 + [0] * 10)
    recall, threshold = recall_at_fpr(s, y, 0.10)
    assert (neg >= threshold).mean() <= 0.10
    assert recall == 0.25  # only 0.95 beats every negative but the top one (1.0)


def test_labels_csv_errors(tmp_path):
    (tmp_path / "labels.csv").write_text("path,label\na.png,3\n")
    with pytest.raises(BadImage, match="0 or 1"):
        load_labels(tmp_path / "labels.csv", tmp_path)
    (tmp_path / "l2.csv").write_text("file,y\na.png,1\n")
    with pytest.raises(BadImage, match="columns"):
        load_labels(tmp_path / "l2.csv", tmp_path)
    (tmp_path / "l3.csv").write_text("path,label,kind\nx/a.png,1,gen\n")
    rows = load_labels(tmp_path / "l3.csv", tmp_path)
    assert rows[0].path == tmp_path / "x" / "a.png" and rows[0].kind == "gen"


def test_inside_fraction_and_mask_lookup(tmp_path):
    from PIL import Image

    from lib_humanrefine.bench import inside_fraction, region_mask

    mask = np.zeros((100, 100), bool)
    mask[:, :50] = True
    assert inside_fraction(mask, (0, 0, 50, 10)) == 1.0
    assert inside_fraction(mask, (25, 0, 75, 10)) == 0.5
    assert inside_fraction(mask, (60, 60, 60, 80)) == 0.0  # empty box
    Image.new("RGB", (20, 20)).save(tmp_path / "a.png")
    assert region_mask(tmp_path / "a.png") is None
    white = Image.new("L", (20, 20), 0)
    white.paste(255, (0, 0, 10, 20))
    white.save(tmp_path / "a_mask.jpg")
    found = region_mask(tmp_path / "a.png")
    assert found.shape == (20, 20) and found[:, :8].all() and not found[:, 12:].any()


def test_inside_fraction_counts_only_the_in_image_part_of_a_box():
    from lib_humanrefine.bench import inside_fraction

    mask = np.zeros((10, 10), bool)
    mask[:, 5:] = True
    assert inside_fraction(mask, (5, 0, 15, 10)) == 1.0  # beyond the right edge
    assert inside_fraction(mask, (-5, 0, 5, 10)) == 0.0  # beyond the left edge
    assert inside_fraction(mask, (20, 20, 30, 30)) == 0.0  # wholly outside


def test_a_malformed_hands_focus_lies_on_the_marked_fingers_where_its_box_does_not(models_ready, shared_data):
    # FoundHand's mask of foundhand_5 covers some fingers: most of the hand's box lies outside it
    from lib_humanrefine.bench import inside_fraction, region_mask
    from lib_humanrefine.diagnose import diagnose_image
    from lib_humanrefine.images import load_image

    path = shared_data / "ai" / "foundhand_5.jpg"
    mask = region_mask(path)
    _detections, diagnosis = diagnose_image(load_image(path), tta=False)
    hands = [p for p in diagnosis.parts if p.kind == "hand"]
    assert len(hands) == 1
    assert inside_fraction(mask, hands[0].box) < 0.5 <= inside_fraction(mask, hands[0].focus)
