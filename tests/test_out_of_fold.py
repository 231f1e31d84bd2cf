"""``kuzu out-of-fold``: each training page read by a detector that did not train on its book."""

import numpy as np
import pandas as pd
import pytest
import torch

from kuzu_lightning.data.detected_boxes import read_detected_boxes
from kuzu_lightning.data.kaggle import load_train_pages, load_train_split
from kuzu_lightning.data.pages import PageDataset, collate_whole_pages
from kuzu_lightning.models.checkpoints import load_trained
from kuzu_lightning.models.detector import CharDetector
from kuzu_lightning.tools.kuzu import run


@pytest.fixture(scope="module")
def fold_models(checkpoints, module_dir):
    """The fixture detector (fold 0 of 3) and the same weights recorded as the fold-1 model."""
    detector, _ = checkpoints
    state = torch.load(detector, map_location="cpu", weights_only=True)
    state["datamodule_hyper_parameters"]["fold"] = 1
    fold1 = module_dir("fold1") / "detector-fold1.ckpt"
    torch.save(state, fold1)
    return str(detector), str(fold1)


def book_pages(synthetic_dir, fold):
    return {page.image_id for page in load_train_split(synthetic_dir, 3, fold)[1]}


def test_each_page_is_read_by_the_fold_model_that_held_its_book_out(synthetic_dir, fold_models, tmp_path, caplog):
    out = tmp_path / "detected.csv"
    assert run(["out-of-fold", "--detector", *fold_models, "--out", str(out), "--detection_threshold", "0.0",
                 "--num_workers", "0"]) == 0
    rows = pd.read_csv(out, dtype={"image_id": str})
    held_out = book_pages(synthetic_dir, 0) | book_pages(synthetic_dir, 1)
    assert set(rows["image_id"]) == held_out and (rows["out_of_fold"] == 1).all()
    assert "3 of 9 training page(s) are in the training books of every given detector" in caplog.text
    # the rows of a page are the detector's own detections of it, best first, in original-scan pixels
    model, settings = load_trained(CharDetector, fold_models[0])
    page = next(p for p in load_train_pages(synthetic_dir) if p.image_id in book_pages(synthetic_dir, 0))
    batch = collate_whole_pages([PageDataset([page], settings["eval_longest_side"])[0]])
    with torch.inference_mode():
        expected = model.detect(batch)[0]
    np.testing.assert_allclose(read_detected_boxes(out)[page.image_id], expected["boxes"].numpy(), atol=0.006)
    scores = rows.loc[rows["image_id"] == page.image_id, "score"].to_numpy()
    np.testing.assert_allclose(scores, expected["scores"].numpy(), atol=6e-5)
    assert (np.diff(scores) <= 0).all()


def test_in_fold_reads_the_rest_with_the_first_detector_and_says_so(synthetic_dir, fold_models, tmp_path):
    out = tmp_path / "detected.csv"
    run(["out-of-fold", "--detector", fold_models[0], "--out", str(out), "--in_fold", "--detection_threshold", "0.0",
          "--num_workers", "0"])
    rows = pd.read_csv(out, dtype={"image_id": str})
    flags = rows.groupby("image_id")["out_of_fold"].first()
    assert set(flags.index) == {page.image_id for page in load_train_pages(synthetic_dir)}
    assert set(flags.index[flags == 1]) == book_pages(synthetic_dir, 0)


def test_a_checkpoint_that_is_no_detector_is_named_before_any_page_is_read(synthetic_dir, checkpoints, tmp_path,
                                                                           capsys):
    detector, classifier = checkpoints
    with pytest.raises(SystemExit, match="classifier.ckpt: not a CharDetector checkpoint"):
        run(["out-of-fold", "--detector", str(detector), str(classifier), "--out", str(tmp_path / "x.csv")])
    assert not (tmp_path / "x.csv").exists()
