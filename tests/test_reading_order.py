"""Reading order: hand-built layouts, synthetic pages (the generator's order) and the real pages (CODH's order)."""

import numpy as np
import pytest

from kuzu_lightning.data.kaggle import read_codh_coordinates, read_labels_csv
from kuzu_lightning.reading_order import edit_distance, page_text, reading_order, successor_accuracy


def column(x: float, top: float, n: int, size: float = 100, gap: float = 20, wobble: float = 0.0, seed: int = 0,
           ) -> list[list[float]]:
    """``n`` character boxes (xyxy) of one column centred on ``x`` from ``top`` down, sizes and centres jittered."""
    rng = np.random.default_rng(seed)
    boxes, y = [], top
    for _ in range(n):
        w, h = size * rng.uniform(0.7, 1.0), size * rng.uniform(0.6, 1.0)
        cx = x + rng.normal(0, wobble * size)
        boxes.append([cx - w / 2, y, cx + w / 2, y + h])
        y += h + gap
    return boxes


def shuffled(boxes: list[list[float]], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The boxes in a random order, and for each true reading position the index it went to."""
    order = np.random.default_rng(seed).permutation(len(boxes))
    placed = np.asarray(boxes)[order]
    return placed, np.argsort(order)


def read(boxes: list[list[float]], seed: int = 0) -> list[int]:
    """Reading positions (in the order the boxes were built) of the boxes' reading order, given them shuffled."""
    placed, where = shuffled(boxes, seed)
    position_of = {int(i): p for p, i in enumerate(where)}
    return [position_of[i] for i in reading_order(placed).order]


def test_columns_are_read_right_to_left_each_top_to_bottom_whatever_the_input_order():
    boxes = column(700, 0, 9, wobble=0.08) + column(550, 10, 8, wobble=0.08, seed=1) + column(400, 0, 9, seed=2)
    for seed in range(5):
        assert read(boxes, seed) == list(range(len(boxes)))
    found = reading_order(boxes)
    assert [len(line.indices) for line in found.lines] == [9, 8, 9]
    assert found.line_of[9] == 1 and found.position[9] == 0 and found.position[16] == 7
    assert found.lines[0].box == pytest.approx(tuple(np.r_[np.min(boxes[:9], 0)[:2], np.max(boxes[:9], 0)[2:]]))


def test_slanted_columns_and_short_ones_keep_their_order_at_any_scale():
    slanted = [[x1 + 0.1 * y1, y1, x2 + 0.1 * y1, y2] for x1, y1, x2, y2 in column(600, 0, 10)]
    title = column(760, 300, 2, seed=3)  # a short column to the right of the text, in its middle
    boxes = title + slanted + column(420, 0, 10, seed=4)
    for scale in (0.05, 1.0, 20.0):
        order = reading_order(np.asarray(boxes) * scale).order
        assert list(order) == list(range(len(boxes)))


def test_a_page_in_two_registers_reads_the_upper_register_first():
    upper = column(700, 0, 3, size=60, gap=10) + column(620, 0, 3, size=60, gap=10, seed=1) + \
        column(540, 0, 3, size=60, gap=10, seed=2)
    lower = column(700, 300, 8, seed=3) + column(560, 300, 8, seed=4) + column(420, 300, 8, seed=5)
    boxes = upper + lower
    assert read(boxes) == list(range(len(boxes)))
    assert [len(line.indices) for line in reading_order(boxes).lines] == [3, 3, 3, 8, 8, 8]


def test_two_blocks_side_by_side_read_right_block_first_and_a_split_block_by_registers():
    right = column(1300, 0, 8) + column(1160, 0, 8, seed=1)
    left_upper = column(700, 0, 3, seed=2) + column(560, 0, 3, seed=3)
    left_lower = column(700, 500, 4, seed=4) + column(560, 500, 4, seed=5)
    boxes = right + left_upper + left_lower
    assert read(boxes, seed=3) == list(range(len(boxes)))


def test_side_glosses_are_marked_kept_out_of_the_main_text_and_written_as_ruby():
    main = column(700, 0, 6, gap=30)
    # furigana of the 2nd and 3rd characters: small kana beside the column, on its right
    gloss = [[760, y, 795, y + 35] for y in (130, 170, 210, 250)]
    boxes = main + column(540, 0, 6, seed=1) + gloss
    found = reading_order(boxes)
    assert found.order == tuple(range(12))
    assert [(line.gloss, line.parent) for line in found.lines] == [(False, None), (True, 0), (False, None)]
    assert found.lines[1].indices == (12, 13, 14, 15)
    chars = list("あいうえおかきくけこさしカナルビ")
    text = page_text(chars, found)
    assert text == ["あいう《カナルビ》えおか", "きくけこさし"]
    assert found.line_of[13] == 1 and found.position[13] == 1


def test_a_gloss_stays_with_its_register_when_a_column_is_cut_in_two():
    upper = column(700, 0, 3, size=60, gap=10) + column(620, 0, 3, size=60, gap=10, seed=1)
    lower = column(700, 300, 6, seed=3) + column(560, 300, 6, seed=4)
    gloss = [[755, y, 785, y + 30] for y in (560, 595, 630)]  # beside the lower register's column at x 700
    found = reading_order(upper + lower + gloss)
    assert [(len(line.indices), line.gloss, line.parent) for line in found.lines] == [
        (3, False, None), (3, False, None), (6, False, None), (3, True, 2), (6, False, None)]


def test_small_characters_inside_a_column_are_main_text():
    boxes = column(700, 0, 3) + [[690, 380, 730, 420]] + column(700, 440, 3, seed=1) + column(540, 0, 7, seed=2)
    found = reading_order(boxes)
    assert found.order == tuple(range(len(boxes)))
    assert not any(line.gloss for line in found.lines)


def test_a_column_splitting_in_two_sub_columns_reads_the_right_one_first():
    head = column(700, 0, 2)
    right = [[705, y, 745, y + 45] for y in range(230, 230 + 6 * 55, 55)]
    left = [[655, y - 6, 695, y + 39] for y in range(230, 230 + 5 * 55, 55)]  # level with the right one, a bit higher
    boxes = head + right + left + column(540, 0, 8, seed=1)
    found = reading_order(boxes)
    assert found.order == tuple(range(len(boxes)))
    assert [len(line.indices) for line in found.lines] == [8, 5, 8]


def test_a_small_character_written_beside_its_column_is_read_in_its_place():
    boxes = column(700, 0, 4, gap=40)
    x1, y1, x2, y2 = boxes[1]
    boxes.insert(2, [x2 + 5, y2 - 20, x2 + 45, y2 + 25])  # a small kana to the right, between the 2nd and the 3rd
    boxes += column(540, 0, 5, seed=1)
    found = reading_order(boxes)
    assert found.order == tuple(range(len(boxes)))
    assert not any(line.gloss for line in found.lines)


def test_a_stray_character_between_columns_is_a_line_of_its_own_read_between_them():
    boxes = column(700, 0, 8) + [[590, 400, 670, 480]] + column(560, 0, 8, seed=1)
    found = reading_order(boxes)
    assert found.order == tuple(range(len(boxes)))
    assert [line.indices for line in found.lines] == [tuple(range(8)), (8,), tuple(range(9, 17))]


def test_nothing_to_order():
    found = reading_order(np.zeros((0, 4)))
    assert found.order == () and found.lines == () and page_text([], found) == []


def test_scores():
    assert successor_accuracy([0, 1, 2, 3], [0, 1, 2, 3]) == (3, 3)
    assert successor_accuracy([0, 2, 1, 3], [0, 1, 2, 3]) == (0, 3)
    assert successor_accuracy([0, 1, 3], [0, 1, 2, 3]) == (1, 3)  # 2 is missing: 1 and 2 lose their successor
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3 and edit_distance("ab", "ab") == 0


def test_the_synthetic_generators_order_is_found(synthetic_dir):
    right = total = 0
    for page in read_labels_csv(synthetic_dir / "train.csv"):
        r, t = successor_accuracy(reading_order(page.boxes).order, list(range(len(page.codes))))
        right, total = right + r, total + t
    assert total > 300 and right / total >= 0.99


def test_codhs_char_id_order_on_the_real_pages(real_dir):
    pages = read_codh_coordinates(real_dir / "codh" / "100241706_coordinate.csv")
    right = total = 0
    for page in pages:
        r, t = successor_accuracy(reading_order(page.boxes).order, list(range(len(page.codes))))
        right, total = right + r, total + t
    assert total == 464 - 5 and right / total >= 0.98


def test_boxes_that_are_not_n_by_4_are_refused():
    with pytest.raises(ValueError, match=r"N x 4 array of x1 y1 x2 y2, not one of shape \(8, 3\)"):
        reading_order(np.zeros((8, 3)))  # 24 numbers: once reshaped silently into six wrong boxes
    assert reading_order(np.zeros((0, 4))).order == ()


@pytest.mark.parametrize("kind", ["identical", "page"])
def test_each_character_is_weighed_against_all_columns_at_once(kind, monkeypatch):
    """The cost is one pass over the characters: comparing each with each column in turn made 1,200 characters take
    9 s and 5,000 identical boxes more than 300 s."""
    from kuzu_lightning import reading_order as module

    boxes = np.tile([[10.0, 10, 50, 60]], (400, 1)) if kind == "identical" else np.asarray(
        [box for c in range(12) for box in column(1500 - 110 * c, 0, 25, seed=c)])
    calls = []
    counted = module._side_by_side
    monkeypatch.setattr(module, "_side_by_side", lambda *args: calls.append(1) or counted(*args))
    found = reading_order(boxes)
    assert len(calls) <= len(boxes)
    assert sorted(found.order) == list(range(len(boxes)))
