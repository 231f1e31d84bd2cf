"""The Kaggle/CODH data layer: label strings, files, bad input, class table, books and splits."""

import logging

import cv2
import numpy as np
import pandas as pd
import pytest

from kuzu_lightning.data.formats import (
    DataFormatError,
    format_labels,
    format_predictions,
    parse_labels,
    parse_predictions,
)
from kuzu_lightning.data.kaggle import (
    Page,
    load_test_ids,
    load_train_pages,
    load_train_split,
    read_codh_coordinates,
    read_labels_csv,
)
from kuzu_lightning.data.splits import book_holdout, book_id, book_kfold
from kuzu_lightning.data.vocabulary import UNK, Vocabulary
from kuzu_lightning.geometry import box_centres, clip_boxes, xywh_to_xyxy, xyxy_to_xywh


def write_train(tmp_path, rows, images=None):
    """A Kaggle-layout folder: train.csv from ``rows`` and white JPEGs of ``images`` {image_id: (w, h)}."""
    pd.DataFrame(rows, columns=["image_id", "labels"]).to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "train_images").mkdir(exist_ok=True)
    for image_id, (w, h) in (images or {}).items():
        cv2.imwrite(str(tmp_path / "train_images" / f"{image_id}.jpg"), np.full((h, w, 3), 255, np.uint8))
    return tmp_path


def test_labels_round_trip_with_integer_and_fractional_coordinates():
    text = "U+306F 1231 3465 133 53 U+304C 275 1652 84 69 U+2000B 10.5 20.25 3 4"
    codes, xywh = parse_labels(text)
    assert codes == ["U+306F", "U+304C", "U+2000B"]
    assert xywh.dtype == np.float64 and xywh.shape == (3, 4)
    np.testing.assert_array_equal(xywh[1], [275, 1652, 84, 69])
    assert format_labels(codes, xywh) == text


def test_predictions_round_trip():
    codes, points = parse_predictions("U+306F 1297 3491 U+304C 317.5 1686.5")
    np.testing.assert_array_equal(points, [[1297, 3491], [317.5, 1686.5]])
    assert format_predictions(codes, points) == "U+306F 1297 3491 U+304C 317.5 1686.5"


def test_box_conversions_are_inverse_and_centres_are_midpoints():
    xywh = np.array([[10, 20, 30, 40], [0, 0, 5, 7]], np.float32)
    xyxy = xywh_to_xyxy(xywh)
    np.testing.assert_array_equal(xyxy, [[10, 20, 40, 60], [0, 0, 5, 7]])
    np.testing.assert_array_equal(xyxy_to_xywh(xyxy), xywh)
    np.testing.assert_array_equal(box_centres(xyxy), [[25, 40], [2.5, 3.5]])


@pytest.mark.parametrize("labels", [None, float("nan"), "", "   ", "nan", "NaN"])
def test_empty_labels_are_a_page_without_characters(labels):
    codes, xywh = parse_labels(labels)
    assert codes == [] and xywh.shape == (0, 4)


@pytest.mark.parametrize(
    "labels, message",
    [
        ("U+3042 1 2 3", "has 4 tokens, not a multiple of 5"),
        ("U+3042 1 2 x 4", "non-numeric coordinate 'x'"),
        ("U+3042 1 -2 3 4", r"character 0 \(U\+3042\) has a negative coordinate"),
        ("3042 1 2 3 4", "'3042' is not a code point"),
        ("U+3042 1 2 3 nan", "non-finite coordinate"),
    ],
)
def test_malformed_labels_name_the_file_and_row(labels, message):
    with pytest.raises(DataFormatError, match=rf"^train.csv, row 7: .*{message}"):
        parse_labels(labels, "train.csv", 7)


def test_read_labels_csv_names_the_failing_row(tmp_path):
    write_train(tmp_path, [("a_1", "U+3042 1 2 3 4"), ("a_2", "U+3042 1 2 3")])
    with pytest.raises(DataFormatError, match=r"train.csv, row 3: labels has 4 tokens"):
        read_labels_csv(tmp_path / "train.csv")


def test_duplicated_image_ids_are_refused(tmp_path):
    write_train(tmp_path, [("a_1", ""), ("a_2", ""), ("a_1", "")])
    with pytest.raises(DataFormatError, match=r"row 4: image id 'a_1' appears twice"):
        read_labels_csv(tmp_path / "train.csv")


def test_pages_without_characters_are_kept(tmp_path):
    write_train(tmp_path, [("a_1", ""), ("a_2", "U+3042 1 2 3 4")], {"a_1": (50, 60), "a_2": (50, 60)})
    pages = load_train_pages(tmp_path)
    assert [len(p) for p in pages] == [0, 1]
    assert pages[0].boxes.shape == (0, 4) and pages[0].labels() == ""


def test_zero_size_boxes_are_dropped_with_a_warning(tmp_path, caplog):
    write_train(tmp_path, [("a_1", "U+3042 1 2 0 4 U+3044 1 2 3 4 U+3046 5 5 3 0")])
    with caplog.at_level(logging.WARNING):
        (page,) = read_labels_csv(tmp_path / "train.csv")
    assert page.codes == ["U+3044"]
    assert "row 2: dropped 2 zero-size box(es) of page a_1" in caplog.text


def test_boxes_partly_outside_the_page_are_clipped_and_outside_boxes_dropped(tmp_path, caplog):
    write_train(tmp_path, [("a_1", "U+3042 90 10 20 20 U+3044 10 10 5 5 U+3046 150 10 5 5")], {"a_1": (100, 80)})
    with caplog.at_level(logging.WARNING):
        (page,) = load_train_pages(tmp_path)
    assert (page.width, page.height) == (100, 80)
    assert page.codes == ["U+3042", "U+3044"]
    np.testing.assert_array_equal(page.boxes, [[90, 10, 100, 30], [10, 10, 15, 15]])
    assert "clipped 2 box(es) of page a_1 to its 100x80 image" in caplog.text
    assert "dropped 1 outside-the-page box(es)" in caplog.text


def test_missing_and_unreadable_images_are_logged_skips(tmp_path, caplog):
    write_train(tmp_path, [("a_1", ""), ("a_2", ""), ("a_3", "")], {"a_1": (40, 40)})
    (tmp_path / "train_images" / "a_3.jpg").write_bytes(b"not a jpeg at all")
    with caplog.at_level(logging.ERROR):
        pages = load_train_pages(tmp_path)
    assert [p.image_id for p in pages] == ["a_1"]
    assert "skipped page a_2" in caplog.text and "a_2.jpg: no such image file" in caplog.text
    assert "skipped page a_3" in caplog.text and "a_3.jpg: not a readable image" in caplog.text


def test_code_points_missing_from_the_class_table(tmp_path, caplog):
    write_train(tmp_path, [("a_1", "U+3042 1 2 3 4"), ("a_2", "U+3042 1 2 3 4 U+9999 5 6 7 8")],
                {"a_1": (40, 40), "a_2": (40, 40)})
    vocabulary = Vocabulary(["U+3042", "U+3044"])
    with pytest.raises(DataFormatError, match=r"train.csv, row 3: page a_2 has code point\(s\) missing .*U\+9999"):
        load_train_pages(tmp_path, vocabulary)
    with caplog.at_level(logging.WARNING):
        pages = load_train_pages(tmp_path, vocabulary, on_unknown="drop")
    assert [p.codes for p in pages] == [["U+3042"], ["U+3042"]]
    assert "dropped 1 character(s) of page a_2" in caplog.text


def test_vocabulary_is_ordered_by_code_point_and_maps_both_ways(tmp_path):
    pd.DataFrame({"Unicode": ["U+3044", "U+2000B", "U+3042"], "char": ["い", "𠀋", "あ"]}).to_csv(
        tmp_path / "unicode_translation.csv", index=False)
    vocabulary = Vocabulary.from_csv(tmp_path / "unicode_translation.csv", unk=True)
    assert vocabulary.codes == ["U+3042", "U+3044", "U+2000B", UNK]
    assert vocabulary.chars[:3] == ["あ", "い", "𠀋"]
    assert vocabulary.index("U+2000B") == 2 and vocabulary.char("U+3044") == "い"
    np.testing.assert_array_equal(vocabulary.indices(["U+3044", "U+3042"]), [1, 0])
    assert len(vocabulary) == 4 and "U+3042" in vocabulary and "U+9999" not in vocabulary


def test_vocabulary_refuses_bad_tables(tmp_path):
    path = tmp_path / "unicode_translation.csv"
    pd.DataFrame({"Unicode": ["U+3042", "U+3042"], "char": ["あ", "あ"]}).to_csv(path, index=False)
    with pytest.raises(DataFormatError, match="lists U\\+3042 twice"):
        Vocabulary.from_csv(path)
    pd.DataFrame({"Unicode": ["U+3042", "x3044"], "char": ["あ", "い"]}).to_csv(path, index=False)
    with pytest.raises(DataFormatError, match="row 3: 'x3044' is not a code point"):
        Vocabulary.from_csv(path)


def test_codh_coordinates_read_into_the_same_pages(tmp_path):
    pd.DataFrame({
        "Unicode": ["U+3042", "U+3044", "U+3046"], "Image": ["b_1", "b_2", "b_1"], "X": [1, 5, 9], "Y": [2, 6, 10],
        "Block ID": ["B1"] * 3, "Char ID": ["C1", "C2", "C3"], "Width": [3, 7, 11], "Height": [4, 8, 12],
    }).to_csv(tmp_path / "b_coordinate.csv", index=False)
    pages = read_codh_coordinates(tmp_path / "b_coordinate.csv")
    assert [(p.image_id, p.labels()) for p in pages] == [
        ("b_1", "U+3042 1 2 3 4 U+3046 9 10 11 12"), ("b_2", "U+3044 5 6 7 8")]


def test_codh_bad_row_names_the_file_and_row(tmp_path):
    pd.DataFrame({"Unicode": ["U+3042"], "Image": ["b_1"], "X": [-1], "Y": [2], "Width": [3], "Height": [4]}).to_csv(
        tmp_path / "b_coordinate.csv", index=False)
    with pytest.raises(DataFormatError, match=r"b_coordinate.csv, row 2: .*negative"):
        read_codh_coordinates(tmp_path / "b_coordinate.csv")


@pytest.mark.parametrize("image_id, book", [
    ("100241706_00004_2", "100241706"), ("umgy010-028", "umgy010"), ("200014685-00005_2", "200014685"),
    ("hnsd004-026", "hnsd004"), ("brsk001-001", "brsk001"), ("200003076_00037_2", "200003076"),
    ("synth002_00001_1", "synth002"),
])
def test_book_id(image_id, book):
    assert book_id(image_id) == book


def pages_of(books: dict[str, int]) -> list[Page]:
    return [Page(f"{book}_{i:05d}_1") for book, n in books.items() for i in range(n)]


def test_book_kfold_keeps_books_whole_and_covers_every_page():
    pages = pages_of({f"b{k}": n for k, n in enumerate([30, 25, 20, 12, 10, 8, 5, 3, 2, 1])})
    val_books = []
    for fold in range(3):
        train, val = book_kfold(pages, 3, fold, seed=1)
        assert len(train) + len(val) == len(pages)
        assert not {p.book for p in train} & {p.book for p in val}
        val_books.append({p.book for p in val})
        assert 30 <= len(val) <= 40  # 116 pages in 3 balanced folds
    assert set().union(*val_books) == {p.book for p in pages}
    assert book_kfold(pages, 3, 2, seed=1) == book_kfold(pages, 3, 2, seed=1)


def test_book_kfold_needs_enough_books():
    with pytest.raises(ValueError, match="2 book\\(s\\) cannot make 3"):
        book_kfold(pages_of({"a": 3, "b": 3}), 3, 0)


def test_book_holdout():
    pages = pages_of({"a": 3, "b": 2, "c": 1})
    train, val = book_holdout(pages, ["b"])
    assert {p.book for p in train} == {"a", "c"} and [p.book for p in val] == ["b", "b"]
    with pytest.raises(ValueError, match="not in the data: zz"):
        book_holdout(pages, ["zz"])


def test_clip_boxes_reports_what_is_left():
    boxes, keep = clip_boxes(np.array([[-5, -5, 10, 10], [20, 20, 30, 30], [5, 5, 5, 9]], np.float32), 25, 25)
    np.testing.assert_array_equal(boxes, [[0, 0, 10, 10], [20, 20, 25, 25], [5, 5, 5, 9]])
    assert keep.tolist() == [True, True, False]


def test_test_ids_follow_the_sample_submission_or_the_folder(tmp_path):
    (tmp_path / "test_images").mkdir()
    for name in ("test_b", "test_a"):
        (tmp_path / "test_images" / f"{name}.jpg").write_bytes(b"")
    assert load_test_ids(tmp_path) == ["test_a", "test_b"]
    pd.DataFrame({"image_id": ["test_b", "test_a"], "labels": ""}).to_csv(tmp_path / "sample_submission.csv", index=False)
    assert load_test_ids(tmp_path) == ["test_b", "test_a"]


def test_code_points_and_characters_convert_both_ways():
    from kuzu_lightning.data.formats import char_to_code, code_to_char

    assert code_to_char("U+3042") == "あ" and code_to_char("U+2000B") == "𠀋" and code_to_char(UNK) == UNK
    assert char_to_code("あ") == "U+3042" and char_to_code("𠀋") == "U+2000B" and char_to_code("1") == "U+0031"


@pytest.mark.parametrize(("content", "message"), [
    (b"", "the file is empty"),
    (b'image_id,labels\n"a_1,U+3042 1 2 3 4\n', "not a readable CSV"),
    ("image_id,labels\nl\u00e9_1,\n".encode("latin-1"), "not UTF-8 text"),
])
def test_unreadable_csv_files_are_refused_naming_the_file(tmp_path, content, message):
    (tmp_path / "train.csv").write_bytes(content)
    with pytest.raises(DataFormatError, match=f"train.csv: {message}"):
        read_labels_csv(tmp_path / "train.csv")


@pytest.mark.parametrize(("ids", "message"), [
    ([], "no image ids below its header"),
    (["a_1", "a_2", "a_1"], r"row 4: image id 'a_1' appears twice"),
    (["a_1", "../train_images/a_2"], r"row 3: image id '../train_images/a_2' is not a plain file name"),
    (["a_1", ".."], r"row 3: image id '..' is not a plain file name"),
])
def test_sample_submission_without_ids_with_repeats_or_with_paths_is_refused(tmp_path, ids, message):
    pd.DataFrame({"image_id": ids, "labels": ""}).to_csv(tmp_path / "sample_submission.csv", index=False)
    with pytest.raises(DataFormatError, match=f"sample_submission.csv(: |, ){message}"):
        load_test_ids(tmp_path)


def test_folds_depend_on_the_labels_alone_not_on_which_images_can_be_read(tmp_path, caplog):
    pages = [f"b{b}_{p}" for b in range(6) for p in range(1 + b % 3)]  # six books of 1 to 3 pages
    rows, images = [(image_id, "U+3042 1 2 3 4") for image_id in pages], {image_id: (40, 40) for image_id in pages}
    (tmp_path / "intact").mkdir()
    (tmp_path / "broken").mkdir()
    intact, broken = write_train(tmp_path / "intact", rows, images), write_train(tmp_path / "broken", rows, images)
    unreadable = {"b0_0", "b4_1", "b5_2"}
    for image_id in unreadable:
        (broken / "train_images" / f"{image_id}.jpg").write_bytes(b"not a jpeg")
    for fold in range(3):
        train, val = load_train_split(intact, 3, fold)
        train_broken, val_broken = load_train_split(broken, 3, fold)
        assert {p.image_id for p in val_broken} == {p.image_id for p in val} - unreadable
        assert {p.image_id for p in train_broken} == {p.image_id for p in train} - unreadable
    assert all(image_id in caplog.text for image_id in unreadable)  # each skipped page is logged
