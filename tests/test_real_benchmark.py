"""The benchmark on real pages: its loaders, its scoring against hand-made submissions, its skip."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from kuzu_lightning.data.formats import format_predictions
from kuzu_lightning.data.real_pages import (
    REAL_DATA_VARIABLE,
    UNKNOWN_CODE,
    kmnist_test,
    labelled_real_pages,
    read_box_csv,
    real_data_dir,
)
from kuzu_lightning.geometry import box_centres
from kuzu_lightning.tools.accuracy import baseline_submission, bench_real, score_detections, top_k
from kuzu_lightning.tools.kuzu import run


@pytest.fixture(scope="module")
def real_pages(shared_dir):
    return labelled_real_pages(shared_dir)


def test_the_labelled_real_pages(real_pages, shared_dir):
    codh = ["200003076", "200021637", "200021853", "200021925", "hnsd001"]
    assert [page.book for page in real_pages] == ["100241706"] * 5 + codh + ["200010454"]
    assert sum(len(page) for page in real_pages[:5]) == 464 and len(real_pages[10]) == 158  # the 2 Seal rows dropped
    assert [len(page) for page in real_pages[5:10]] == [230, 208, 85, 157, 148]  # codh-sample's README: 828
    assert set(real_pages[10].codes) == {UNKNOWN_CODE}
    assert all(UNKNOWN_CODE not in page.codes for page in real_pages[:10])
    assert (real_pages[10].width, real_pages[10].height) == (1784, 2365)
    assert (real_pages[8].width, real_pages[8].height) == (2695, 1994)  # the landscape scan of a spread
    first = pd.read_csv(shared_dir / "codh-sample" / "200003076" / "200003076_coordinate.csv").iloc[0]
    assert real_pages[5].codes[0] == first["Unicode"]  # in Char ID order
    assert real_pages[5].boxes[0].tolist() == [first["X"], first["Y"], first["X"] + first["Width"],
                                               first["Y"] + first["Height"]]
    boxes = read_box_csv(shared_dir / "real-pages" / "boxes" / "200010454_00002_2.csv", shared_dir / "real-pages" / "clean")
    assert boxes[0].boxes[0].tolist() == [1487, 335, 1487 + 120, 335 + 98]  # xywh read as xyxy


def test_kmnist_is_dark_ink_on_light_paper(shared_dir):
    images, codes = kmnist_test(shared_dir)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.median(images) > 200  # paper is light after the inversion
    assert sorted(set(codes)) == ["U+304A", "U+304D", "U+3059", "U+3064", "U+306A", "U+306F", "U+307E", "U+3084",
                                  "U+308C", "U+3092"]
    assert all(codes.count(code) == 1000 for code in set(codes))


def test_detection_scores_of_a_hand_made_submission_per_book(real_pages):
    first, other, dkds = real_pages[0], real_pages[1], real_pages[10]
    rows = {first.image_id: format_predictions(["U+3042"] * len(first), box_centres(first.boxes).round()),
            other.image_id: "",
            dkds.image_id: format_predictions(["U+3042"] * (len(dkds) + 3),
                                              np.concatenate([box_centres(dkds.boxes), [[2, 2], [3, 3], [4, 4]]]))}
    submission = pd.DataFrame({"image_id": list(rows), "labels": list(rows.values())})
    scores = score_detections(real_pages, submission)
    book = scores["books"]["100241706"]
    assert (book["tp"], book["fp"], book["fn"], book["pages"]) == (len(first), 0, 464 - len(first), 5)
    second = scores["books"]["200010454"]
    assert (second["tp"], second["fp"], second["fn"]) == (158, 3, 0)
    assert scores["books"]["hnsd001"]["fn"] == 148  # a book missing from the submission: all its characters missed
    overall = scores["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (len(first) + 158, 3, 1292 - len(first))


def test_the_ink_blob_baseline_on_real_pages(real_pages):
    scores = score_detections(real_pages, baseline_submission(real_pages))
    assert 0.45 < scores["overall"]["f1"] < 0.58  # 0.518 when measured on the 11 pages (0.557 on the first 6)
    assert scores["overall"]["tp"] + scores["overall"]["fn"] == 1450


def test_top_k_counts_classes_the_classifier_does_not_have_as_misses():
    probabilities = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1]])
    codes = ["U+3042", "U+3044", "U+3046"]
    truth = ["U+3042", "U+3044", "U+9999"]
    assert top_k(probabilities, truth, codes, 1) == pytest.approx(1 / 3)
    assert top_k(probabilities, truth, codes, 2) == pytest.approx(2 / 3)


def test_without_the_real_data_the_benchmark_says_so(tmp_path, capsys):
    assert bench_real(tmp_path)["skipped"].endswith("the labelled real pages are not there")
    run(["benchmark", "real", "--real_data", str(tmp_path)])
    assert "skipped" in json.loads(capsys.readouterr().out.splitlines()[-1])
    with pytest.raises(SystemExit, match="--classifier needs --detector"):
        run(["benchmark", "real", "--real_data", str(tmp_path), "--classifier", "c.ckpt"])


def test_the_real_data_folder_comes_from_the_option_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(REAL_DATA_VARIABLE, raising=False)
    with pytest.raises(FileNotFoundError, match=f"give --real_data DIR or set {REAL_DATA_VARIABLE}"):
        real_data_dir(None)
    assert real_data_dir(None, required=False) is None
    assert real_data_dir(tmp_path) == tmp_path
    monkeypatch.setenv(REAL_DATA_VARIABLE, str(tmp_path / "elsewhere"))
    assert real_data_dir(None) == tmp_path / "elsewhere" and real_data_dir(tmp_path) == tmp_path


@pytest.mark.slow
def test_the_shipped_model_reads_the_real_pages_as_its_card_says(shared_dir, monkeypatch):
    monkeypatch.delenv("KUZU_MODELS", raising=False)
    result = bench_real(shared_dir, ["kuzu-synthetic-v1"], ["kuzu-synthetic-v1"])
    assert (result["detection_threshold"], result["characters"], result["true_box_characters"]) == (0.6, 1450, 1292)
    measured = (result["detection"]["overall"]["f1"], result["true_box_top1"], result["true_box_top5"],
                result["end_to_end"]["overall"]["f1"], result["kmnist_top1"])
    assert measured == pytest.approx((0.804, 0.310, 0.461, 0.190, 0.396), abs=0.01)  # MODEL_CARD.md's figures
