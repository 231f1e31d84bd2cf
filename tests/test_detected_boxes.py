"""Detected boxes of training pages: the CSV, their labels, their crops and their share of the training draws."""

import numpy as np
import pytest

from kuzu_lightning.data.chars import CharDataModule
from kuzu_lightning.data.crop_cache import DETECTED, TRUE_BOX, UNK_SAMPLE
from kuzu_lightning.data.detected_boxes import label_detections, read_detected_boxes, write_detected_boxes
from kuzu_lightning.data.formats import DataFormatError
from kuzu_lightning.data.kaggle import load_train_split
from kuzu_lightning.data.vocabulary import UNK


def test_a_detection_takes_the_code_of_the_true_box_it_overlaps_at_iou_one_half():
    true = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    detected = np.array([[2, 0, 12, 10],    # IoU 8 x 10 / 120 = 0.667 with the first
                         [25, 0, 35, 10],   # 5 x 10 / 150 = 0.333 with the second
                         [0, 0, 10, 5],     # 50 / 100 = 0.5 exactly with the first
                         [15, 0, 25, 10],   # 0.333 with the second, none with the first
                         [21, 1, 29, 9]],   # inside the second: 64 / 100
                        np.float32)
    assert label_detections(detected, true, ["U+3042", "U+3044"]) == ["U+3042", UNK, "U+3042", UNK, "U+3044"]
    assert label_detections(detected[:2], np.zeros((0, 4)), []) == [UNK, UNK]
    assert label_detections(np.zeros((0, 4)), true, ["U+3042", "U+3044"]) == []


def test_the_csv_round_trips_and_a_bad_row_is_named(tmp_path):
    path = tmp_path / "detected.csv"
    rows = write_detected_boxes(path, [("a_1", np.array([[1, 2, 30.5, 40.25], [5, 5, 9, 9]]), np.array([0.9, 0.4]), True),
                                       ("a_2", np.zeros((0, 4)), np.zeros(0), False),
                                       ("b_1", np.array([[0, 0, 4, 4]]), np.array([0.7]), False)])
    assert rows == 3
    assert path.read_text().splitlines()[:2] == ["image_id,x_min,y_min,x_max,y_max,score,out_of_fold",
                                                 "a_1,1.00,2.00,30.50,40.25,0.9000,1"]
    found = read_detected_boxes(path)
    assert list(found) == ["a_1", "b_1"]
    np.testing.assert_array_equal(found["a_1"], [[1, 2, 30.5, 40.25], [5, 5, 9, 9]])
    lines = path.read_text().splitlines()
    for bad, message in (("a_1,1,2,0,40,0.9,1", "row 3: not a detection"), ("a_1,1,2,x,40,0.9,1", "row 3: x_max 'x'"),
                         ("a_1,1,2,3,40,0.9,2", "row 3: not a detection")):
        path.write_text("\n".join([lines[0], lines[1], bad]) + "\n")
        with pytest.raises(DataFormatError, match=f"detected.csv, {message}"):
            read_detected_boxes(path)


@pytest.fixture
def detections(synthetic_dir, tmp_path):
    """A detected-boxes file for the first training page (fold 0 of 3): one near its first character, one on
    no character, one twice the size of its second character; and one for a validation page."""
    train, val = load_train_split(synthetic_dir, 3, 0)
    page = train[0]
    first, second = page.boxes[0], page.boxes[1]
    width = first[2] - first[0]
    centre, size = (second[:2] + second[2:]) / 2, second[2:] - second[:2]
    boxes = np.array([first + [0.1 * width, 0, 0.1 * width, 0], [1, 1, 9, 9], [*(centre - size), *(centre + size)]])
    path = tmp_path / "detected.csv"
    write_detected_boxes(path, [(page.image_id, boxes, np.ones(3), True),
                                (val[0].image_id, val[0].boxes[:2], np.ones(2), True)])
    return path, page


def test_detected_crops_train_labelled_by_their_match_and_stay_out_of_validation(synthetic_dir, tmp_path, detections):
    path, page = detections
    module = CharDataModule(str(synthetic_dir), input_size=32, num_workers=0, n_folds=3, unk_per_page=2,
                            cache_dir=str(tmp_path / "cache"), detected_boxes=str(path), detected_share=0.3)
    module.setup("fit")
    cache = module.cache
    rows = np.flatnonzero(cache.page == cache.image_ids.index(page.image_id))
    kinds = cache.kind[rows]
    assert kinds.tolist() == [TRUE_BOX] * len(page) + [UNK_SAMPLE] * 2 + [DETECTED] * 3
    assert cache.codes[rows[kinds == DETECTED]].tolist() == [page.codes[0], UNK, UNK]
    assert (cache.kind == DETECTED).sum() == 3  # the validation page's detections are not cut
    assert module.codes[-1] == UNK
    plain = CharDataModule(str(synthetic_dir), input_size=32, num_workers=0, n_folds=3, unk_per_page=2,
                           cache_dir=str(tmp_path / "cache"))
    plain.setup("fit")
    assert plain.cache.directory != cache.directory
    with_detections, without = next(iter(module.val_dataloader())), next(iter(plain.val_dataloader()))
    assert with_detections["labels"].tolist() == without["labels"].tolist()
    order, _ = module.train_dataloader().sampler.draws(0)
    drawn = cache.kind[module.train_rows[order]] == DETECTED
    assert len(order) == len(module.train_rows) and drawn.mean() == pytest.approx(0.3, abs=0.06)


def test_detected_share_must_be_a_share(synthetic_dir):
    with pytest.raises(ValueError, match="detected_share must be between 0 and 1, not 1.5"):
        CharDataModule(str(synthetic_dir), detected_boxes="x.csv", detected_share=1.5)
