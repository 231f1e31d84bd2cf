"""Layout statistics of pages, and synthetic pages that follow the real ones."""

import cv2
import numpy as np
import pytest

from kuzu_lightning.data.kaggle import load_train_pages
from kuzu_lightning.geometry import box_centres
from kuzu_lightning.tools.kuzu import run
from kuzu_lightning.tools.page_statistics import columns, markdown_table, page_measures, statistics


def test_columns_run_right_to_left_and_top_to_bottom_whatever_the_order_of_the_boxes():
    right = [(200, 10, 240, 50), (202, 60, 238, 100), (199, 110, 241, 150)]
    left = [(100, 12, 140, 52), (101, 70, 139, 110)]
    boxes = np.array([left[1], right[2], right[0], left[0], right[1]], np.float32)
    assert [group.tolist() for group in columns(boxes)] == [[2, 4, 1], [3, 0]]
    assert columns(np.zeros((0, 4), np.float32)) == []


def test_page_measures_of_a_hand_built_page():
    boxes = np.array([(200, 10, 240, 50), (200, 50, 240, 90), (200, 100, 240, 140),  # touching, then a gap of 10
                      (100, 10, 120, 50)], np.float32)  # a narrow character: aspect 0.5
    measures = page_measures(boxes, width=400, height=1000)
    assert measures["characters per column"] == [3, 1] and measures["characters per page"] == [4]
    assert measures["touch or overlap next"] == [1.0, 0.0]
    assert np.allclose(measures["gap to next / height"], [0.0, 0.25])
    assert np.allclose(measures["column pitch / page width"], [(220 - 110) / 400])
    assert np.allclose(measures["column gap / page width"], [(200 - 120) / 400])
    assert np.allclose(measures["height / page height"], 0.04) and measures["aspect (w / h)"][3] == 0.5


def test_synthetic_labels_are_in_reading_order(synthetic_dir):
    for page in load_train_pages(synthetic_dir):
        centres = box_centres(page.boxes)
        width = np.median(page.boxes[:, 2] - page.boxes[:, 0])
        for a, b in zip(range(len(page) - 1), range(1, len(page))):
            same_column_below = abs(centres[b, 0] - centres[a, 0]) < width and page.boxes[b, 1] > page.boxes[a, 1]
            next_column = centres[b, 0] < centres[a, 0] - width  # columns are two to three widths apart
            assert same_column_below != next_column, (page.image_id, a)


def test_synthetic_pages_follow_the_real_layout(shared_dir, tmp_path, capsys):
    result = run(["statistics", "--real_data", str(shared_dir), "--pages", "12", "--picture", str(tmp_path / "pages.png")])
    table = capsys.readouterr().out.splitlines()
    picture = cv2.imread(str(tmp_path / "pages.png"))
    assert picture.shape[0] == 1000 and picture.shape[1] > 4 * 500  # four pages side by side
    assert table[0].startswith("| measure") and len(table) == 13  # header, rule, 10 measures, JSON
    real, synthetic = result["real"], result["synthetic"]
    for measure in ("height / page height", "width / page width", "aspect (w / h)", "characters per column",
                    "column pitch / page width", "column gap / page width"):
        assert synthetic[measure]["median"] == pytest.approx(real[measure]["median"], rel=0.3), measure
    for share in ("small characters", "touch or overlap next"):
        assert abs(synthetic[share]["share"] - real[share]["share"]) < 0.08, share


def test_statistics_and_their_table(synthetic_dir):
    pages = load_train_pages(synthetic_dir)
    summary = statistics(pages)
    assert summary["characters per page"]["p10"] <= summary["characters per page"]["median"]
    assert 0 < summary["small characters"]["share"] < 0.5
    table = markdown_table({"a": summary, "b": summary}).splitlines()
    assert table[1] == "| --- | --- | --- |" and len(table) == 2 + len(summary)
