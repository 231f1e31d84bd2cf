"""The Recognizer end to end: checkpoints in, predict.py's submission and each page's JSON, text and picture out.

The two checkpoints are real Lightning checkpoints of tiny models trained for two steps on the
synthetic fixture: enough to exercise every stage (their predictions are near chance).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from lxml import etree

from kuzu_lightning import CharClassifier, CharDataModule, CharDetector, PageDataModule, Recognizer
from kuzu_lightning.cli import RecognizeCLI, recipe
from kuzu_lightning.data.crop_cache import crop_square
from kuzu_lightning.data.formats import parse_predictions
from kuzu_lightning.data.images import decode_page
from kuzu_lightning.data.kaggle import read_sample_submission
from kuzu_lightning.metrics import read_submission_csv
from kuzu_lightning.models.crops import cut_crops
from kuzu_lightning.models.recognizer import select

ROOT = Path(__file__).resolve().parents[1]
# One thread per process, so that one process and two DDP processes do the same float arithmetic
# (Lightning gives each DDP process its share of the cores; sums over other thread counts differ in
# the last bits, and an untrained detector's near-equal scores can then swap places).
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}
PAGE_NS = {"pc": "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"}
ALTO_NS = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}
PAGE_SCALE = ["--data.eval_longest_side", "512", "--data.num_workers", "0", "--data.synthetic_pages", "0"]


@pytest.fixture(scope="module")
def recognizer(checkpoints):
    return Recognizer.from_checkpoints(*checkpoints)


@pytest.fixture(scope="module")
def data_with_a_corrupt_page(synthetic_dir, module_dir):
    data_dir = module_dir("data") / "kaggle"
    shutil.copytree(synthetic_dir, data_dir, ignore=shutil.ignore_patterns("cache"))
    corrupt_id = read_sample_submission(data_dir / "sample_submission.csv")[1]
    path = data_dir / "test_images" / f"{corrupt_id}.jpg"
    path.write_bytes(path.read_bytes()[:2000])
    return data_dir, corrupt_id


def predict_args(data_dir: Path, checkpoints, out: Path) -> list[str]:
    return [*recipe("recognizer", "demo"), "--data.data_dir", str(data_dir), *PAGE_SCALE,
            "--model.detector_ckpt", str(checkpoints[0]), "--model.classifier_ckpt", str(checkpoints[1]),
            "--trainer.logger", "false", "--trainer.default_root_dir", str(out), "--csv", str(out / "submission.csv"),
            "--out", str(out / "pages"), "--formats", "json,txt,page,alto,png", "--model.top_k", "3", "--html", "true"]


@pytest.fixture(scope="module")
def predicted(data_with_a_corrupt_page, checkpoints, module_dir):
    data_dir, corrupt_id = data_with_a_corrupt_page
    out = module_dir("predicted")
    logged = out / "log.txt"
    with open(logged, "w") as stderr:
        run = subprocess.run([sys.executable, "predict.py", *predict_args(data_dir, checkpoints, out)], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=stderr, text=True, timeout=600, env=ONE_THREAD)
    assert run.returncode == 0, logged.read_text()[-3000:]
    return out, logged.read_text()


@pytest.mark.slow
def test_predict_py_adapts_to_the_test_books_and_reads_them_with_what_it_adapted(data_with_a_corrupt_page, checkpoints,
                                                                                 predicted, tmp_path):
    data_dir, corrupt_id = data_with_a_corrupt_page
    adapt = ["--adapt", "true", "--adapt_steps", "2", "--adapt_confidence", "0", "--adapt_batch_size", "4"]
    run = subprocess.run([sys.executable, "predict.py", *predict_args(data_dir, checkpoints, tmp_path), *adapt],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, env=ONE_THREAD)
    assert run.returncode == 0, run.stderr[-3000:]
    adapted = tmp_path / "pages" / "adapted-classifier-0.ckpt"  # the synthetic test pages' names carry no book id
    assert torch.load(adapted, weights_only=True)["adaptation"]["book"] == "."
    ids = read_sample_submission(data_dir / "sample_submission.csv")
    assert read_submission_csv(tmp_path / "submission.csv")["image_id"].tolist() == ids
    recognizer = Recognizer.from_checkpoints(checkpoints[0], adapted, page_longest_side=512)
    unadapted = predicted[0] / "pages"
    changed, threads = 0, torch.get_num_threads()
    torch.set_num_threads(1)  # as the run did: the tiny models' near-ties must break the same way
    try:
        for image_id in ids:
            page = json.loads((tmp_path / "pages" / f"{image_id}.json").read_text(encoding="utf-8"))
            if image_id == corrupt_id:
                assert page["error"]
                continue
            expected = recognizer.recognize(data_dir / "test_images" / f"{image_id}.jpg").to_dict()
            assert [c["code"] for c in page["characters"]] == [c["code"] for c in expected["characters"]]
            changed += page["characters"] != json.loads((unadapted / f"{image_id}.json").read_text())["characters"]
    finally:
        torch.set_num_threads(threads)
    assert changed, "adapting changed no page's reading"


def test_crops_cut_together_equal_crops_cut_one_at_a_time():
    generator = torch.Generator().manual_seed(0)
    page = torch.randint(0, 256, (3, 300, 200), dtype=torch.uint8, generator=generator)
    corners = torch.rand(50, 2, generator=generator) * torch.tensor([180.0, 280.0])
    boxes = torch.cat([corners, corners + 4 + torch.rand(50, 2, generator=generator) * 60], 1)
    together = cut_crops(page, boxes, 24, 0.15)
    alone = torch.cat([cut_crops(page, box[None], 24, 0.15) for box in boxes])
    assert together.shape == (50, 3, 24, 24)
    torch.testing.assert_close(together, alone)


def test_crops_on_the_tensor_match_the_training_crops(synthetic_dir):
    image = decode_page(next((synthetic_dir / "train_images").glob("*.jpg")))
    height, width = image.shape[:2]
    boxes = np.array([[100, 120, 140, 170], [300, 200, 331, 228], [200, 400, 290, 480], [150, 300, 156, 340]],
                     np.float32)
    assert boxes[:, 2].max() < width - 60 and boxes[:, 3].max() < height - 60  # inside: no edge handling
    sides = (boxes[:, 2:] - boxes[:, :2]).max(1) * 1.3
    for size in (48, 96):  # each with boxes on both sides of it
        mine = cut_crops(torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(boxes), size, 0.15)
        mine = (mine * 255).permute(0, 2, 3, 1).numpy()
        training = np.stack([crop_square(image, box, size, 0.15) for box in boxes]).astype(np.float32)
        difference = np.abs(mine - training)
        assert difference[sides > size].max() <= 1.0  # shrunk: the same samples, up to uint8 rounding
        assert difference[sides <= size].mean() < 2.0  # enlarged: a little softer


def test_select_drops_unk_and_unconfident_detections_and_keeps_the_best_scoring():
    scores = torch.tensor([0.6, 0.9, 0.8, 0.7, 0.95])
    probabilities = torch.tensor([[0.7, 0.2, 0.1],   # class 0, kept
                                  [0.1, 0.1, 0.8],   # unk
                                  [0.3, 0.4, 0.3],   # 0.4: below 0.5
                                  [0.1, 0.9, 0.0],   # class 1, kept
                                  [0.05, 0.55, 0.4]])  # class 1, kept, best score
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]]).repeat(5, 1)
    kept, labels, probability = select(scores, boxes, probabilities, unk_index=2, min_confidence=0.5, limit=1200)
    assert kept.tolist() == [4, 3, 0] and labels.tolist() == [1, 1, 0]
    torch.testing.assert_close(probability, torch.tensor([0.55, 0.9, 0.7]))
    assert select(scores, boxes, probabilities, 2, 0.5, limit=2)[0].tolist() == [4, 3]
    assert select(scores, boxes, probabilities, None, 0.0, limit=1200)[0].tolist() == [4, 1, 2, 3, 0]


def test_equal_scores_are_ordered_by_position_whatever_the_detector_order():
    scores = torch.tensor([0.5, 0.5, 0.9, 0.5])
    boxes = torch.tensor([[50.0, 20, 60, 30], [10, 20, 20, 30], [0, 0, 5, 5], [30, 5, 40, 15]])
    probabilities = torch.ones(4, 1)
    assert select(scores, boxes, probabilities, None, 0.0, 1200)[0].tolist() == [2, 3, 1, 0]
    shuffled = torch.tensor([3, 0, 2, 1])
    kept = select(scores[shuffled], boxes[shuffled], probabilities, None, 0.0, 1200)[0]
    assert shuffled[kept].tolist() == [2, 3, 1, 0]


def test_a_file_that_is_not_the_expected_checkpoint_is_refused(checkpoints, tmp_path):
    detector, classifier = checkpoints
    with pytest.raises(ValueError, match=rf"{classifier.name} is not a CharDetector checkpoint"):
        Recognizer(str(classifier), str(classifier))
    with pytest.raises(ValueError, match=rf"{detector.name} is not a CharClassifier checkpoint"):
        Recognizer(str(detector), str(detector))
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"notes.ckpt is not a Lightning checkpoint"):
        Recognizer(str(detector), str(text))
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        Recognizer(str(tmp_path / "missing.ckpt"), str(classifier))


def test_settings_come_from_the_checkpoints(recognizer):
    assert recognizer.page_longest_side == 512  # the detector's DataModule's eval_longest_side
    assert recognizer.char_crop_size == 32 and recognizer.char_crop_margin == 0.15  # the classifier's DataModule's
    assert recognizer.detection_threshold == 0.3  # the detector's score_threshold
    assert recognizer.codes == recognizer.classifiers[0].codes and recognizer.unk_index is None


def test_recognize_a_path_an_array_and_a_list(recognizer, synthetic_dir):
    path = sorted((synthetic_dir / "test_images").glob("*.jpg"))[0]
    from_path = recognizer.recognize(path)
    from_array = recognizer.recognize(decode_page(path))
    assert from_path.characters and from_path.characters == from_array.characters
    assert from_path.image_id == path.stem and from_array.image_id == "array0"
    first = from_path.characters[0]
    assert first.char == chr(int(first.code[2:], 16))
    assert first.box[0] < first.x < first.box[2] and first.box[1] < first.y < first.box[3]
    scores = [c.score for c in from_path.characters]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.3 and len(scores) <= 1200
    check_lines(from_path.to_dict())
    assert from_path.text == from_array.text and from_path.text.count("\n") == sum(not li.gloss for li in from_path.lines)
    both = recognizer.recognize([str(path), decode_page(path)])
    assert [page.characters for page in both] == [from_path.characters] * 2
    with pytest.raises(ValueError, match="RGB uint8"):
        recognizer.recognize(np.zeros((10, 10), np.uint8))


def test_recognize_works_in_original_scan_pixels(recognizer, synthetic_dir):
    """A page scanned at twice the size gives the same characters at twice the coordinates."""
    image = decode_page(sorted((synthetic_dir / "test_images").glob("*.jpg"))[0])
    twice = cv2.resize(image, (image.shape[1] * 2, image.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
    small, large = recognizer.recognize(image).characters, recognizer.recognize(twice).characters
    assert len(large) == pytest.approx(len(small), rel=0.1)
    matched = [min(abs(b.x - 2 * a.x) + abs(b.y - 2 * a.y) for b in large) for a in small]
    assert np.median(matched) < 4


def check_lines(page: dict) -> None:
    """The page's lines hold each of its characters once, and each character names its line and place in it."""
    held = sorted(i for line in page["lines"] for i in line["characters"])
    assert held == list(range(len(page["characters"])))
    for n, line in enumerate(page["lines"]):
        for position, i in enumerate(line["characters"]):
            assert (page["characters"][i]["line"], page["characters"][i]["position"]) == (n, position)
            x1, y1, x2, y2 = page["characters"][i]["box"]
            assert line["box"][0] <= x1 and line["box"][1] <= y1 and x2 <= line["box"][2] and y2 <= line["box"][3]
    main = [line["text"] for line in page["lines"] if not line["gloss"]]
    assert page["text"] == "".join(text + "\n" for text in main)


def test_predict_py_writes_every_row_in_order_json_text_and_pictures(predicted, data_with_a_corrupt_page):
    out, log = predicted
    data_dir, corrupt_id = data_with_a_corrupt_page
    ids = read_sample_submission(data_dir / "sample_submission.csv")
    submission = read_submission_csv(out / "submission.csv")
    assert submission["image_id"].tolist() == ids
    assert not list(out.glob(".submission.csv.partial-*"))
    for image_id, labels in zip(submission["image_id"], submission["labels"]):
        codes, points = parse_predictions(labels, "submission.csv")
        page = json.loads((out / "pages" / f"{image_id}.json").read_text(encoding="utf-8"))
        assert [c["code"] for c in page["characters"]] == codes
        check_lines(page)
        assert (out / "pages" / f"{image_id}.txt").read_text(encoding="utf-8") == page["text"]
        centres = np.array([[c["x"], c["y"]] for c in page["characters"]]).reshape(-1, 2)
        np.testing.assert_allclose(centres, points.reshape(-1, 2), atol=0.01)
        if image_id == corrupt_id:
            assert codes == [] and page["error"] and not (out / "pages" / f"{image_id}.png").exists()
        else:
            assert 0 < len(codes) <= 1200 and page["error"] is None
            assert all(0 <= x <= page["width"] and 0 <= y <= page["height"] for x, y in points)
            picture = cv2.imread(str(out / "pages" / f"{image_id}.png"))  # scan and transcription, at full size
            assert picture.shape[:2] == (page["height"], 2 * page["width"])
    index = (out / "pages" / "index.html").read_text(encoding="utf-8")  # the viewer's, a page for each page
    assert [image_id for image_id in ids if f'href="{image_id}.html"' in index] == ids
    assert all((out / "pages" / f"{image_id}.html").is_file() for image_id in ids)
    assert f"page {corrupt_id} could not be read" in log
    assert log.count(corrupt_id) >= 2  # the loader's error, and the writer's empty-row message
    summary = json.loads((out / "pages" / "summary.json").read_text())
    assert (summary["pages"], summary["done"], summary["missing"]) == (len(ids), len(ids), [])
    assert [failure["input"] for failure in summary["failed"]] == [str(data_dir / "test_images" / f"{corrupt_id}.jpg")]


def test_predict_py_writes_page_xml_and_alto_that_validate_and_hold_each_character_s_readings(
        predicted, data_with_a_corrupt_page, xml_schemas):
    out, _ = predicted
    data_dir, corrupt_id = data_with_a_corrupt_page
    for image_id in read_sample_submission(data_dir / "sample_submission.csv"):
        page = json.loads((out / "pages" / f"{image_id}.json").read_text(encoding="utf-8"))
        trees = {}
        for kind in ("page", "alto"):
            trees[kind] = etree.parse(str(out / "pages" / f"{image_id}.{kind}.xml"))
            assert xml_schemas[kind].validate(trees[kind]), f"{image_id}.{kind}.xml: {xml_schemas[kind].error_log}"
        page_xml, alto = trees["page"].getroot(), trees["alto"].getroot()
        assert page_xml.find("pc:Page", PAGE_NS).get("imageFilename") == page["source"]["path"]
        if image_id == corrupt_id:
            assert page["error"] in page_xml.findtext("pc:Metadata/pc:Comments", namespaces=PAGE_NS)
            continue
        for character in page["characters"]:  # the 3 most probable code points, unk left out, best first
            readings = character["alternatives"]
            assert len(readings) == 3 and "unk" not in [r["code"] for r in readings]
            assert (readings[0]["code"], readings[0]["probability"]) == (character["code"], character["probability"])
            assert [r["probability"] for r in readings] == sorted((r["probability"] for r in readings), reverse=True)
        glyphs = {glyph.get("id"): [t.findtext("pc:Unicode", namespaces=PAGE_NS)
                                    for t in glyph.iterfind("pc:TextEquiv", PAGE_NS)]
                  for glyph in page_xml.iterfind(".//pc:Glyph", PAGE_NS)}
        assert glyphs == {f"c{i}": [r["char"] for r in c["alternatives"]] for i, c in enumerate(page["characters"])}
        alto_glyphs = {glyph.get("ID"): [glyph.get("CONTENT"), *(v.get("CONTENT") for v in glyph.iterfind("a:Variant",
                                                                                                          ALTO_NS))]
                       for glyph in alto.iterfind(".//a:Glyph", ALTO_NS)}
        assert alto_glyphs == glyphs
        main_lines = [line for line in page["lines"] if not line["gloss"]]
        assert [line.findtext("pc:TextEquiv/pc:Unicode", namespaces=PAGE_NS)
                for line in page_xml.iterfind(".//pc:TextRegion[@id='main']/pc:TextLine", PAGE_NS)] == [
            "".join(page["characters"][i]["char"] for i in line["characters"]) for line in main_lines]


def test_the_submission_scores_through_kuzu_score(predicted, data_with_a_corrupt_page):
    out, _ = predicted
    data_dir, _ = data_with_a_corrupt_page
    run = subprocess.run([sys.executable, "-m", "kuzu_lightning", "score", str(out / "submission.csv"),
                          str(data_dir / "test_solution.csv"), "--class_agnostic"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    scores = json.loads(run.stdout.strip().splitlines()[-1])
    predictions = [len(p.split()) // 3 for p in read_submission_csv(out / "submission.csv")["labels"] if isinstance(p, str)]
    assert scores["tp"] + scores["fp"] == sum(predictions)
    truth = read_submission_csv(data_dir / "test_solution.csv")["labels"]
    assert scores["tp"] + scores["fn"] == sum(len(labels.split()) // 5 for labels in truth)
    assert scores["f1"] == pytest.approx(2 * scores["tp"] / (2 * scores["tp"] + scores["fp"] + scores["fn"]))


@pytest.mark.slow
def test_two_ddp_processes_write_the_same_submission(predicted, data_with_a_corrupt_page, checkpoints, tmp_path):
    out, _ = predicted
    data_dir, _ = data_with_a_corrupt_page
    ddp = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    run = subprocess.run([sys.executable, "predict.py", *predict_args(data_dir, checkpoints, tmp_path), *ddp], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, env=ONE_THREAD)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "submission.csv").read_bytes() == (out / "submission.csv").read_bytes()
    assert sorted(p.name for p in (tmp_path / "pages").iterdir()) == sorted(p.name for p in (out / "pages").iterdir())


def test_predict_takes_page_scale_and_split_from_the_detector_checkpoint_unless_given(checkpoints, synthetic_dir):
    args = [*recipe("recognizer", "demo"), "--data.data_dir", str(synthetic_dir), "--data.synthetic_pages", "0",
            "--model.detector_ckpt", str(checkpoints[0]), "--model.classifier_ckpt", str(checkpoints[1]),
            "--trainer.logger", "false"]
    taken = RecognizeCLI(run=False, args=args).datamodule.hparams
    assert (taken.eval_longest_side, taken.n_folds, taken.fold) == (512, 3, 0)  # as the checkpoints were trained
    given = RecognizeCLI(run=False, args=[*args, "--data.eval_longest_side", "640", "--data.fold", "1"]).datamodule.hparams
    assert (given.eval_longest_side, given.n_folds, given.fold) == (640, 3, 1)


def test_validate_logs_f1_per_book_and_the_detection_f1_of_the_detector(checkpoints, synthetic_dir, tmp_path):
    args = [*recipe("recognizer", "demo"), "--data.data_dir", str(synthetic_dir), *PAGE_SCALE,
            "--data.n_folds", "3", "--model.detector_ckpt", str(checkpoints[0]),
            "--model.classifier_ckpt", str(checkpoints[1]), "--trainer.logger", "false",
            "--trainer.default_root_dir", str(tmp_path)]
    validated = RecognizeCLI(args=["validate", *args])
    metrics = validated.trainer.callback_metrics
    books = sorted({page.book for page in validated.datamodule.val_pages})
    assert len(books) == 1  # three books in three folds: the book's F1 is the F1
    assert [key for key in metrics if key.startswith("val/books/")] == [f"val/books/{books[0]}/f1"]
    assert float(metrics[f"val/books/{books[0]}/f1"]) == pytest.approx(float(metrics["val/f1"]))
    assert float(metrics["val/f1"]) <= float(metrics["val/detection_f1"])
    # With no unk class and no confidence floor, the characters are the detector's detections: the
    # same class-agnostic F1 as the detector validating itself on the same pages.
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    trainer.validate(CharDetector.load_from_checkpoint(checkpoints[0], weights_only=True),
                     PageDataModule(synthetic_dir, eval_longest_side=512, num_workers=0, n_folds=3))
    assert float(metrics["val/detection_f1"]) == pytest.approx(float(trainer.callback_metrics["val/f1"]), abs=1e-6)


def test_validate_prints_the_error_budget_and_writes_the_best_thresholds_predict_reads(checkpoints, synthetic_dir,
                                                                                      tmp_path, capsys):
    args = [*recipe("recognizer", "demo"), "--data.data_dir", str(synthetic_dir), *PAGE_SCALE, "--data.n_folds", "3",
            "--model.detector_ckpt", str(checkpoints[0]), "--model.classifier_ckpt", str(checkpoints[1]),
            "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path)]
    thresholds = tmp_path / "chosen" / "thresholds.yaml"
    validated = RecognizeCLI(args=["validate", *args, "--thresholds_out", str(thresholds)])
    metrics = validated.trainer.callback_metrics
    printed = capsys.readouterr().out
    for name in ("true_box_top1", "matched_top1", "matched_true_top1", "matched_share", "hit_share", "hit_top1",
                 "median_iou", "centre_dx", "log_height"):
        assert f"val/budget/{name}" in printed
    right = total = 0  # the classifier's top-1 on the validation pages' true boxes, counted here
    for batch in validated.datamodule.val_dataloader():
        for i, boxes in enumerate(batch["boxes"]):
            labels = torch.tensor([validated.model.class_index.get(code, -1) for code in batch["codes"][i]])
            found = validated.model.classify(validated.model.crops(batch, i, boxes)).argmax(1)
            right, total = right + int((found == labels).sum()), total + len(labels)
    assert total and float(metrics["val/budget/true_box_top1"]) == pytest.approx(right / total)
    # the configured pair (the detector's 0.3, no confidence floor) is on the grid: the grid's best is at least as good
    assert float(metrics["val/best_f1"]) >= float(metrics["val/f1"])
    chosen = yaml.safe_load(thresholds.read_text())["model"]["init_args"]
    assert chosen == {key: validated.model.best_thresholds[key] for key in ("detection_threshold", "min_confidence")}
    assert (chosen["detection_threshold"], chosen["min_confidence"]) == pytest.approx(
        (float(metrics["val/best_detection_threshold"]), float(metrics["val/best_min_confidence"])))
    assert str(checkpoints[0]) in thresholds.read_text()  # it says which models it was chosen for
    predict = RecognizeCLI(args=["predict", *args, "--config", str(thresholds), "--csv", str(tmp_path / "s.csv"),
                                 "--out", str(tmp_path / "pages")])
    assert predict.model.detection_threshold == chosen["detection_threshold"]
    assert predict.model.min_confidence == chosen["min_confidence"]
    assert (tmp_path / "s.csv").is_file()


def test_an_empty_array_is_refused(recognizer):
    with pytest.raises(ValueError, match=r"page 0: expected an RGB uint8 H x W x 3 array with pixels, got uint8 "
                                         r"\(0, 0, 3\)"):
        recognizer.recognize(np.zeros((0, 0, 3), np.uint8))


def last_line(run: subprocess.CompletedProcess) -> str:
    return (run.stdout + run.stderr).strip().splitlines()[-1]


@pytest.mark.slow
def test_an_unwritable_output_fails_before_the_first_page_naming_the_folder(data_with_a_corrupt_page, checkpoints,
                                                                             tmp_path):
    data_dir, _ = data_with_a_corrupt_page
    (tmp_path / "a_file").write_text("not a folder")
    args = [*predict_args(data_dir, checkpoints, tmp_path), "--csv", str(tmp_path / "a_file" / "submission.csv")]
    run = subprocess.run([sys.executable, "predict.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode != 0
    assert f"cannot write the submission to {tmp_path / 'a_file'}" in last_line(run)
    assert not (tmp_path / "pages").exists() or not list((tmp_path / "pages").iterdir())  # no page was recognised


@pytest.mark.slow
def test_a_refused_checkpoint_is_the_last_line_of_predict(data_with_a_corrupt_page, checkpoints, tmp_path):
    data_dir, _ = data_with_a_corrupt_page
    detector, _ = checkpoints
    args = [*predict_args(data_dir, checkpoints, tmp_path), "--model.classifier_ckpt", str(detector)]
    run = subprocess.run([sys.executable, "predict.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode != 0
    assert f"{detector} is not a CharClassifier checkpoint" in last_line(run)


@pytest.mark.slow
def test_a_checkpoint_of_the_other_model_is_refused_by_train_py(checkpoints, synthetic_dir, tmp_path):
    detector, _ = checkpoints
    args = ["validate", *recipe("classifier", "demo"), "--ckpt_path", str(detector), "--data.data_dir",
            str(synthetic_dir), "--data.synthetic_pages", "0", "--trainer.logger", "false"]
    run = subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode != 0
    assert f"{detector} is a CharDetector checkpoint, but the config trains a CharClassifier" in last_line(run)


DDP = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]


def validated_in_two_processes(script: str, args: list[str], folder: Path) -> dict:
    """``val/*`` of ``script validate`` run by two DDP processes on the CPU, read from its CSV log."""
    logger = ["--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(folder)]
    run = subprocess.run([sys.executable, script, "validate", *args, *DDP, *logger], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env=ONE_THREAD)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = pd.read_csv(next(folder.rglob("metrics.csv")))
    return {key: float(metrics[key].dropna().iloc[-1]) for key in metrics if key.startswith("val/")}


def validated_in_one_process(model: L.LightningModule, data: L.LightningDataModule, folder: Path) -> dict:
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=folder)
    trainer.validate(model, data)
    return {key: float(value) for key, value in trainer.callback_metrics.items()}


@pytest.mark.slow
def test_validation_in_two_ddp_processes_counts_each_page_once(checkpoints, synthetic_dir, tmp_path):
    """Three validation pages on two processes: Lightning's padding would count one of them twice."""
    detector, classifier = checkpoints
    pages = PageDataModule(synthetic_dir, eval_longest_side=512, num_workers=0, n_folds=3, originals=True)
    pages.setup("validate")
    assert len(pages.val_pages) % 2 == 1
    common = ["--data.data_dir", str(synthetic_dir), "--data.synthetic_pages", "0", "--data.num_workers", "0",
              "--data.n_folds", "3"]
    runs = {
        "detector": ("train.py", [*recipe("detector", "demo"), *common, "--data.eval_longest_side", "512",
                                  "--ckpt_path", str(detector)],
                     CharDetector.load_from_checkpoint(detector, weights_only=True),
                     PageDataModule(synthetic_dir, eval_longest_side=512, num_workers=0, n_folds=3)),
        "classifier": ("train.py", [*recipe("classifier", "demo"), *common, "--data.input_size", "32",
                                    "--ckpt_path", str(classifier)],
                       CharClassifier.load_from_checkpoint(classifier, weights_only=True),
                       CharDataModule(synthetic_dir, input_size=32, num_workers=0, n_folds=3,
                                      cache_dir=str(tmp_path / "cache"))),
        "recognizer": ("predict.py", [*recipe("recognizer", "demo"), *common, "--model.detector_ckpt", str(detector),
                                      "--model.classifier_ckpt", str(classifier)],
                       Recognizer.from_checkpoints(detector, classifier), pages),
    }
    for name, (script, args, model, data) in runs.items():
        two = validated_in_two_processes(script, args, tmp_path / name)
        one = validated_in_one_process(model, data, tmp_path / name)
        assert two["val/f1"] == pytest.approx(one["val/f1"], abs=1e-6), name
        assert two["val/precision"] == pytest.approx(one["val/precision"], abs=1e-6), name


@pytest.mark.slow
def test_the_real_benchmark_runs_both_models_on_real_pages_and_kmnist(checkpoints, shared_dir, capsys):
    from kuzu_lightning.tools.kuzu import run

    detector, classifier = checkpoints
    result = run(["benchmark", "real", "--detector", str(detector), "--classifier", str(classifier), "--real_data",
                   str(shared_dir)])
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == json.loads(json.dumps(result))
    assert (result["pages"], result["characters"], result["true_box_characters"]) == (11, 1450, 1292)
    books = ["100241706", "200003076", "200010454", "200021637", "200021853", "200021925", "hnsd001"]
    assert result["books"] == books
    assert result["detection_threshold"] == 0.3  # the fixture detector never validated: its score_threshold
    for scores in (result["detection"], result["baseline_detection"]):
        assert sorted(scores["books"]) == books
        assert scores["overall"]["tp"] + scores["overall"]["fn"] == 1450
    assert result["true_box_top1"] <= result["true_box_top5"] <= result["true_box_in_vocabulary"] < 1
    with_classes = [book for book in books if book != "200010454"]  # its boxes have no code points
    assert sorted(result["true_box_books"]) == sorted(result["end_to_end"]["books"]) == with_classes
    assert sum(book["characters"] for book in result["true_box_books"].values()) == 1292
    end_to_end = result["end_to_end"]["overall"]
    assert end_to_end["pages"] == 10 and end_to_end["tp"] + end_to_end["fn"] == 1292
    assert sorted(result["reading_order"]["books"]) == with_classes
    assert result["reading_order"]["overall"]["characters"] == 1292
    assert result["kmnist_top1"] is not None  # scored: the fixture's classes hold KMNIST's ten kana


def test_a_ckpt_path_that_is_no_checkpoint_is_refused_naming_the_file(synthetic_dir, tmp_path):
    from kuzu_lightning.cli import TrainCLI

    mistaken = tmp_path / "my_recipe.yaml"
    mistaken.write_text("trainer:\n  max_epochs: 1\n")
    with pytest.raises(ValueError, match=rf"^{mistaken} is not a Lightning checkpoint") as refused:
        TrainCLI(args=["validate", *recipe("classifier", "demo"), "--ckpt_path", str(mistaken), "--data.data_dir",
                       str(synthetic_dir), "--trainer.logger", "false"])
    assert "weights_only=False" not in str(refused.value)  # never advice to run a file's pickled code


@pytest.mark.parametrize(("value", "read"), [("2", "2"), ("-1", "-1"), (".nan", "nan"), ("high", "'high'")])
def test_predict_refuses_a_threshold_outside_0_to_1_before_the_models_load(value, read, tmp_path):
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text(f"model:\n  init_args:\n    detection_threshold: {value}\n")
    with pytest.raises(ValueError, match=rf"^{thresholds}: model.init_args.detection_threshold must be a number "
                                         rf"between 0 and 1, not {read}$"):  # the missing model was never reached
        RecognizeCLI(args=["predict", *recipe("recognizer", "demo"), "--config", str(thresholds),
                           "--model.detector_ckpt", str(tmp_path / "missing.ckpt"), "--trainer.logger", "false"])


def test_a_threshold_out_of_range_on_the_command_line_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit):
        RecognizeCLI(args=["predict", *recipe("recognizer", "demo"), "--model.min_confidence", "1.5",
                           "--model.detector_ckpt", str(tmp_path / "missing.ckpt"), "--trainer.logger", "false"])
    error = capsys.readouterr().err
    assert 'Parser key "min_confidence"' in error and "v>=0 and v<=1" in error and "missing.ckpt" not in error


def test_validate_checks_where_it_writes_the_thresholds_before_the_models_load(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(OSError, match=f"cannot write the thresholds to {tmp_path / 'a_file'}"):
        RecognizeCLI(args=["validate", *recipe("recognizer", "demo"), "--thresholds_out",
                           str(tmp_path / "a_file" / "thresholds.yaml"), "--model.detector_ckpt",
                           str(tmp_path / "missing.ckpt"), "--trainer.logger", "false"])
