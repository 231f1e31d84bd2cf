"""The detector: the network builder, and ``CharDetector`` through ``train.py``'s CLI on synthetic pages."""

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from helpers.wandb_log import history_and_config

from kuzu_lightning.cli import TrainCLI, recipe
from kuzu_lightning.data.kaggle import Page
from kuzu_lightning.data.pages import PageDataset, collate_whole_pages
from kuzu_lightning.models.checkpoints import load_trained
from kuzu_lightning.models.detector import CharDetector
from kuzu_lightning.synthetic.generator import generate

SMALL = [  # small crops for a CPU test
    "--data.synthetic_pages", "0", "--data.train_longest_side", "1280", "--data.crop_heights", "[200, 240]",
    "--data.crop_size", "[192, 224]", "--data.eval_longest_side", "1120", "--data.crops_per_page", "20",
    "--data.batch_size", "4", "--data.num_workers", "0", "--data.n_folds", "3",
    "--model.anchor_sizes", "[16, 32, 64]", "--trainer.check_val_every_n_epoch", "1",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false", "--trainer.log_every_n_steps", "1",
]


@pytest.fixture(scope="module")
def pages_dir(module_dir):
    """Nine pages of three books, 1024 px high, and one test page, printed (IPAexGothic): a few CPU
    steps learn them, as they cannot learn brush hands they have not seen in another book."""
    return generate(module_dir("pages"), pages=9, test_pages=1, seed=3, height=1024, styles=["gothic"])


def cli(subcommand: str, data_dir: Path, *overrides: str) -> TrainCLI:
    return TrainCLI(args=[subcommand, *recipe("detector", "demo"), "--data.data_dir", str(data_dir), *SMALL, *overrides])


def csv_logger(workdir: Path) -> list[str]:
    return ["--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(workdir / "logs")]


@pytest.fixture(scope="module")
def trained(pages_dir, module_dir):
    """A short training on the synthetic pages with the CSV logger, run from a scratch folder."""
    workdir = module_dir("run")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        run = cli("fit", pages_dir, "--trainer.max_epochs", "4", "--trainer.check_val_every_n_epoch", "4",
                  *csv_logger(workdir))
    return run, workdir


# ------------------------------------------------------------------------------- the network


def test_anchors_one_size_per_pyramid_level_or_all_sizes_on_each():
    resnet = CharDetector("resnet50", anchor_sizes=(12, 24, 32, 64, 96)).network
    assert resnet.rpn.anchor_generator.sizes == ((12,), (24,), (32,), (64,), (96,))
    assert resnet.rpn.anchor_generator.aspect_ratios == ((0.5, 1.0, 2.0),) * 5
    mobile = CharDetector("mobilenet_v3_large", anchor_sizes=(12, 24, 32, 64, 96), aspect_ratios=(1.0,)).network
    assert mobile.rpn.anchor_generator.sizes == ((12, 24, 32, 64, 96),) * 3  # strides 16, 32, 64
    assert mobile.rpn.head.cls_logits.out_channels == 5
    assert CharDetector("mobilenet_v3_small", anchor_sizes=(16, 32, 64)).network.rpn.anchor_generator.sizes == \
        ((16,), (32,), (64,))
    assert resnet.roi_heads.nms_thresh == 0.25 and resnet.roi_heads.detections_per_img == 1200
    assert resnet.roi_heads.box_predictor.cls_score.out_features == 2  # background + "a character"


def test_torchvision_transform_does_not_rescale_pages():
    network = CharDetector("mobilenet_v3_small").network.eval()
    images = [torch.rand(3, 300, 200), torch.rand(3, 1700, 1100)]
    batch, _ = network.transform(images)
    assert batch.image_sizes == [(300, 200), (1700, 1100)]
    torch.testing.assert_close(batch.tensors[0, :, :300, :200],
                               (images[0] - torch.tensor([0.485, 0.456, 0.406])[:, None, None])
                               / torch.tensor([0.229, 0.224, 0.225])[:, None, None])


def test_local_backbone_weights_file_is_loaded(tmp_path):
    weights = torchvision.models.mobilenet_v3_small().state_dict()
    torch.save(weights, tmp_path / "mobilenet_v3_small.pth")
    detector = CharDetector(backbone="mobilenet_v3_small", weights_path=str(tmp_path / "mobilenet_v3_small.pth"))
    first = detector.network.backbone.body["0"][0].weight
    torch.testing.assert_close(first, weights["features.0.0.weight"])


def test_more_detections_than_a_submission_holds_are_refused():
    with pytest.raises(ValueError, match="1200"):
        CharDetector(backbone="mobilenet_v3_small", box_detections_per_img=1500)


# ------------------------------------------------------------------------- through the CLI


@pytest.mark.slow
def test_training_lowers_the_loss_and_detects_far_better_than_untrained(trained, pages_dir, tmp_path):
    run, workdir = trained
    metrics = pd.read_csv(Path(run.trainer.logger.log_dir) / "metrics.csv")
    losses = metrics["train/loss"].dropna().to_numpy()
    assert losses[-10:].mean() < 0.8 * losses[:10].mean()
    final = metrics.dropna(subset=["val/f1"]).iloc[-1]
    assert {"val/precision", "val/recall", "val/best_f1", "val/best_threshold"} <= set(metrics.columns)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        untrained = cli("validate", pages_dir, "--trainer.logger", "false").trainer.callback_metrics
    # an untrained head scatters up to 1200 boxes, a few of which land on characters of a dense page
    assert final["val/best_f1"] > float(untrained["val/best_f1"]) + 0.15
    assert (workdir / "outputs/demo/detector/checkpoints/last.ckpt").is_file()
    assert list(Path(run.trainer.log_dir, "pictures").glob("val_page0_step*.png"))


@pytest.mark.slow
def test_predictions_are_in_original_scan_pixels(trained, tmp_path):
    """The same page scanned at twice the size gives boxes twice as large."""
    model = trained[0].model.eval()
    page = cv2.imread(str(next(Path(trained[0].datamodule.data_dir, "test_images").glob("*.jpg"))))
    page = cv2.resize(page, (round(1120 * page.shape[1] / page.shape[0]), 1120), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(tmp_path / "page.png"), page)
    cv2.imwrite(str(tmp_path / "page2.png"), cv2.resize(page, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST))
    dataset = PageDataset([Page("page", image_path=tmp_path / "page.png"),
                           Page("page2", image_path=tmp_path / "page2.png")], longest_side=1120)
    batch = collate_whole_pages([dataset[0], dataset[1]])
    assert batch["scales"].tolist() == [[1.0, 1.0], [0.5, 0.5]]
    assert torch.equal(batch["images"][0], batch["images"][1])  # the area-averaged double is the page
    with torch.no_grad():
        once, twice = model.detect(batch)
    assert len(once["boxes"]) > 10
    torch.testing.assert_close(twice["boxes"], 2 * once["boxes"])
    torch.testing.assert_close(twice["scores"], once["scores"])


@pytest.mark.slow
def test_read_pages_keeps_the_order_the_threshold_and_an_unreadable_page(trained, tmp_path, caplog):
    model = trained[0].model.eval()
    scan = next(Path(trained[0].datamodule.data_dir, "test_images").glob("*.jpg"))
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    pages = [Page("broken", image_path=tmp_path / "broken.jpg"), Page("page", image_path=scan)]
    read = list(model.read_pages(pages, 1120, threshold=0.5))
    assert [page.image_id for page, _, _ in read] == ["broken", "page"]
    assert len(read[0][1]) == len(read[0][2]) == 0 and "page broken could not be read" in caplog.text
    with torch.inference_mode():
        found = model.detect(collate_whole_pages([PageDataset([pages[1]], 1120)[0]]))[0]
    kept = found["scores"] >= 0.5
    assert 0 < kept.sum() < len(kept)
    torch.testing.assert_close(read[1][1], found["boxes"][kept])
    torch.testing.assert_close(read[1][2], found["scores"][kept])


@pytest.mark.slow
def test_checkpoint_reloads_with_weights_only_validates_and_predicts(trained, pages_dir, tmp_path):
    run, workdir = trained
    callback = run.trainer.checkpoint_callback
    best = Path(callback.best_model_path)
    assert best.parent == workdir / "outputs/demo/detector/checkpoints" and (best.parent / "last.ckpt").is_file()
    reloaded = CharDetector.load_from_checkpoint(best, weights_only=True, map_location="cpu")
    assert reloaded.hparams.backbone == "mobilenet_v3_large" and list(reloaded.hparams.anchor_sizes) == [16, 32, 64]
    # the checkpoint reads pages at the threshold its own validation found best, not at score_threshold
    validations = pd.read_csv(Path(run.trainer.logger.log_dir) / "metrics.csv").dropna(subset=["val/f1"])
    chosen = validations[np.isclose(validations["val/f1"], float(callback.best_model_score))]["val/best_threshold"]
    assert len(chosen) == 1
    # recorded in the file itself (the chosen value may equal score_threshold, which the property falls back to)
    assert torch.load(best, map_location="cpu", weights_only=True)["validated_threshold"] == pytest.approx(
        chosen.iloc[0])
    assert reloaded.detection_threshold == load_trained(CharDetector, best)[0].detection_threshold == pytest.approx(
        chosen.iloc[0])
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        validate = cli("validate", pages_dir, "--ckpt_path", str(best), "--trainer.logger", "false")
        # the checkpoint holds the weights that scored its val/f1
        assert float(validate.trainer.callback_metrics["val/f1"]) == pytest.approx(float(callback.best_model_score))
        predict = cli("predict", pages_dir, "--ckpt_path", str(best), "--trainer.logger", "false",
                      "--return_predictions", "true")
    pages = [page for batch in predict.trainer.predict_loop.predictions for page in batch]
    assert [p["image_id"] for p in pages] == pd.read_csv(pages_dir / "sample_submission.csv")["image_id"].tolist()
    # predict keeps the detections every reader of pages keeps: those at the validated threshold
    page = PageDataset([Page(pages[0]["image_id"], image_path=pages_dir / "test_images" / f"{pages[0]['image_id']}.jpg")],
                       1120)[0]
    with torch.inference_mode():
        found = reloaded.eval().detect(collate_whole_pages([page]))[0]
    kept = found["scores"] >= chosen.iloc[0]
    assert 0 < kept.sum() < len(kept)
    torch.testing.assert_close(pages[0]["scores"], found["scores"][kept])
    boxes = pages[0]["boxes"]
    assert (boxes[:, 2:] > boxes[:, :2]).all() and boxes[:, 3].max() <= 1024  # the test page is 1024 px high


@pytest.mark.slow
def test_resume_continues_the_step_count(pages_dir, tmp_path):
    overrides = ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", *csv_logger(tmp_path)]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        first = cli("fit", pages_dir, "--trainer.max_epochs", "1", *overrides)
        assert first.trainer.global_step == 2
        resumed = cli("fit", pages_dir, "--trainer.max_epochs", "2", "--ckpt_path", "last", *overrides)
    assert resumed.trainer.global_step == 4


@pytest.mark.slow
def test_bf16_mixed_precision_on_cpu_trains_and_validates(pages_dir, tmp_path):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        run = cli("fit", pages_dir, "--trainer.precision", "bf16-mixed", "--trainer.max_epochs", "1",
                  "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", *csv_logger(tmp_path))
    metrics = pd.read_csv(Path(run.trainer.logger.log_dir) / "metrics.csv")
    assert np.isfinite(metrics["train/loss"].dropna()).all() and len(metrics["train/loss"].dropna()) == 2
    assert "val/f1" in metrics.columns


@pytest.mark.slow
def test_wandb_offline_run_records_metrics_pictures_and_config(pages_dir, tmp_path):
    import wandb

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        patch.setenv("WANDB_SILENT", "true")
        # an absolute folder: W&B's service, started by an earlier run of this process, resolves relative ones
        cli("fit", pages_dir, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
            "--trainer.limit_val_batches", "1", "--trainer.logger.init_args.save_dir", str(tmp_path / "wandb_runs"))
        wandb.finish()
    [log] = tmp_path.glob("wandb_runs/wandb/offline-run-*/run-*.wandb")
    history, config = history_and_config(log)
    assert len(history["train/loss"]) == 2 and len(history["val/f1"]) == 1
    assert {"val/precision", "val/recall", "val/best_f1", "train/loss_objectness"} <= set(history)
    assert history["val/page0/_type"] == ["images/separated"]
    assert list(log.parent.glob("files/media/images/val/page0_*.png"))
    assert config["config"]["data"]["init_args"]["eval_longest_side"] == 1120
    assert config["config"]["model"]["class_path"] == "kuzu_lightning.CharDetector"
