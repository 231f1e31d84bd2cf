"""Pseudo-labelled pages: a ``kuzu recognize`` output folder read back as training pages, and the classifier's
DataModule training on them beside the labelled books."""

import json
import logging
import os
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from helpers.training import fit_and_save

from kuzu_lightning import CharClassifier, CharDataModule
from kuzu_lightning.data.crop_cache import crop_square
from kuzu_lightning.data.formats import DataFormatError
from kuzu_lightning.data.images import decode_page
from kuzu_lightning.data.kaggle import read_labels_csv
from kuzu_lightning.data.pseudo_labels import read_pseudo_labels
from kuzu_lightning.outputs import source_of


def write_page(out: Path, key: str, page, probabilities, error: str | None = None) -> Path:
    """A page JSON as ``kuzu recognize`` writes it (the fields pseudo-labelling reads): ``page``'s characters
    read as themselves with ``probabilities``."""
    characters = [{"code": code, "box": [float(v) for v in box], "probability": float(p)}
                  for code, box, p in zip(page.codes, page.boxes, probabilities)]
    path = out / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"source": source_of(page.image_path), "image_id": key, "error": error,
                                "characters": characters}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def test_pages(synthetic_dir):
    """The synthetic test pages with their true characters (pseudo-labels stand-ins: read as they are)."""
    return read_labels_csv(synthetic_dir / "test_solution.csv", synthetic_dir / "test_images")


def halves(n: int) -> np.ndarray:
    """Probabilities 0.95 and 0.5 in turn."""
    return np.where(np.arange(n) % 2 == 0, 0.95, 0.5)


@pytest.fixture(scope="module")
def read_folder(test_pages, module_dir) -> Path:
    out = module_dir("read")
    for n, page in enumerate(test_pages):
        write_page(out, f"book/{n}", page, halves(len(page)))
    (out / "summary.json").write_text(json.dumps({"pages": len(test_pages)}))
    return out


def test_confident_characters_become_labels_of_their_scan(read_folder, test_pages):
    pages = read_pseudo_labels(read_folder, 0.9)
    assert [page.image_id for page in pages] == [f"book/{n}" for n in range(len(test_pages))]
    for page, truth in zip(pages, test_pages):
        assert page.image_path == truth.image_path and page.source == str(read_folder / f"{page.image_id}.json")
        assert page.codes == truth.codes[::2]
        np.testing.assert_array_equal(page.boxes, truth.boxes[::2])
    assert sum(len(page) for page in read_pseudo_labels(read_folder, 0.5)) == sum(map(len, test_pages))
    assert read_pseudo_labels(read_folder, 0.99) == []


def test_pages_that_cannot_be_used_are_skipped_with_their_reason(test_pages, tmp_path, caplog):
    scan = tmp_path / "scan.jpg"
    scan.write_bytes(test_pages[0].image_path.read_bytes())
    page = test_pages[0]
    write_page(tmp_path / "read", "kept", page, halves(len(page)))
    moved = write_page(tmp_path / "read", "changed", type(page)("x", page.codes, page.boxes, scan), halves(len(page)))
    write_page(tmp_path / "read", "failed", page, [], error="corrupt JPEG")
    gone = write_page(tmp_path / "read", "gone", type(page)("y", page.codes, page.boxes, scan), halves(len(page)))
    os.utime(scan, ns=(1, 1))  # changed since "changed" was read
    json_gone = json.loads(gone.read_text())
    json_gone["source"]["path"] = str(tmp_path / "missing.jpg")
    gone.write_text(json.dumps(json_gone))
    with caplog.at_level(logging.WARNING):
        pages = read_pseudo_labels(tmp_path / "read", 0.9)
    assert [p.image_id for p in pages] == ["kept"]
    assert f"{moved}: skipped: its scan {scan} has changed since it was read" in caplog.text
    assert "failed.json: skipped: it records an error (corrupt JPEG)" in caplog.text
    assert f"{gone}: skipped: its scan {tmp_path / 'missing.jpg'} cannot be read" in caplog.text


def test_a_json_that_is_no_page_or_no_page_at_all_is_a_clear_error(test_pages, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        read_pseudo_labels(tmp_path / "nowhere", 0.9)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="holds no page read by `kuzu recognize`"):
        read_pseudo_labels(tmp_path / "empty", 0.9)
    page = test_pages[0]
    path = write_page(tmp_path / "bad", "page", page, halves(len(page)))
    document = json.loads(path.read_text())
    document["characters"][3]["box"] = [10, 10, 5, 20]
    path.write_text(json.dumps(document))
    with pytest.raises(DataFormatError, match=f"{path}: character 4's box is not x1 < x2"):
        read_pseudo_labels(tmp_path / "bad", 0.9)
    path.write_text("{}")
    with pytest.raises(DataFormatError, match=f"{path}: not a page's JSON"):
        read_pseudo_labels(tmp_path / "bad", 0.9)


@pytest.fixture(scope="module")
def mixed(synthetic_dir, read_folder, module_dir):
    module = CharDataModule(str(synthetic_dir), input_size=32, batch_size=8, num_workers=0, n_folds=3,
                            unk_per_page=4, cache_dir=str(module_dir("cache")), pseudo_labels=str(read_folder),
                            pseudo_confidence=0.9, pseudo_share=0.25, class_balance=0.5,
                            box_jitter={f"{name}{part}": value for name in ("centre_dx", "centre_dy", "log_width",
                                                                            "log_height")
                                        for part, value in (("", 0.1), ("_mean", 0.0))})
    module.prepare_data()
    module.setup("fit")
    return module


def test_pseudo_labelled_crops_are_cut_from_their_scans_with_no_unk(mixed, test_pages):
    cache = mixed.pseudo_cache
    assert mixed.cache.pad > 0 and cache.pad == 0  # the labelled crops keep context for the jitter, these need none
    assert cache.codes.tolist() == [code for page in test_pages for code in page.codes[::2]]
    page = test_pages[1]
    row = cache.image_ids.index("book/1")
    first = int(np.flatnonzero(cache.page == row)[0])
    expected = crop_square(decode_page(page.image_path), page.boxes[0], 32, mixed.spec.margin)
    np.testing.assert_array_equal(cache.exact(first), expected)


def test_the_pseudo_labelled_share_of_draws_and_the_labelled_draws_per_epoch(mixed, synthetic_dir, module_dir):
    alone = CharDataModule(str(synthetic_dir), input_size=32, batch_size=8, num_workers=0, n_folds=3, unk_per_page=4,
                           cache_dir=mixed.hparams.cache_dir, class_balance=0.5)
    alone.setup("fit")
    labelled = len(alone.train_dataloader().sampler)
    draws = mixed.train_dataloader().sampler
    order, _ = draws.draws(0)
    assert labelled == len(mixed.train_rows) and len(order) == round(labelled / 0.75)
    assert (order >= labelled).mean() == pytest.approx(0.25, abs=0.04)
    batch = next(iter(mixed.train_dataloader()))
    assert batch["images"].shape == (8, 3, 32, 32)


def test_a_classifier_trained_on_them_records_where_its_pseudo_labels_came_from(mixed, read_folder, tmp_path):
    path = fit_and_save(CharClassifier(mixed.codes, "resnet18", warmup_steps=1), mixed, tmp_path / "c.ckpt", steps=3)
    data = torch.load(path, weights_only=True)["datamodule_hyper_parameters"]
    assert (data["pseudo_labels"], data["pseudo_confidence"], data["pseudo_share"]) == (str(read_folder), 0.9, 0.25)


def test_only_training_reads_the_pseudo_labels(synthetic_dir, mixed, tmp_path):
    def data() -> CharDataModule:
        return CharDataModule(str(synthetic_dir), input_size=32, val_pages_per_batch=2, num_workers=0, n_folds=3,
                              unk_per_page=4, cache_dir=mixed.hparams.cache_dir, pseudo_labels=str(tmp_path / "gone"))

    validated = data()
    trainer = L.Trainer(accelerator="cpu", limit_val_batches=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.validate(CharClassifier(validated.codes, "resnet18"), validated)
    assert validated.cache is not None and validated.pseudo_cache is None
    with pytest.raises(FileNotFoundError, match="no such folder"):
        data().prepare_data()
