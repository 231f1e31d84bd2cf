"""The real recipes (``configs/detector.yaml``: ResNet-152-FPN; ``configs/classifier.yaml``: ``legacy_xception`` at
96 px with class balance and ``unk``; ``configs/recognizer.yaml``), run through ``kuzu`` as a Kaggle user runs them,
on pages of real size with a class table of the real size, their callbacks and W&B logger included.

They change only what a CPU and a tiny data set force: the accelerator (a CPU, ``bf16-mixed`` for ``16-mixed``),
a few steps, small batches and loader workers, and ImageNet weights read from a local file (``weights_path``, the
offline way; it takes the same path as ``pretrained: true``, frozen batch norm and the trainable stages) since
nothing can be downloaded here. The ``gpu`` tests run both models at ``16-mixed`` where CUDA is.
"""

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import timm
import torch
import torchvision
from helpers.wandb_log import history_and_config

from kuzu_lightning.data.formats import char_to_code
from kuzu_lightning.data.images import decode_page
from kuzu_lightning.data.kaggle import Page
from kuzu_lightning.data.pages import PageDataset, collate_whole_pages
from kuzu_lightning.models.checkpoints import load_trained
from kuzu_lightning.models.classifier import CharClassifier
from kuzu_lightning.models.detector import CharDetector
from kuzu_lightning.synthetic.generator import full_vocabulary, generate
from kuzu_lightning.tools.kuzu import run

KAGGLE_CLASSES = 4781
CPU = ["--accelerator", "cpu", "--precision", "bf16-mixed", "--num_workers", "1", "--trainer.max_epochs", "1",
       "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
       "--trainer.log_every_n_steps", "1"]


@pytest.fixture(scope="module")
def real_size_pages(module_dir) -> Path:
    """Five training pages of five books and one test page, 3900 px high as real scans, drawn from every class the
    fonts have (4,643), with a class table of the Kaggle table's size: those classes and 138 more no page draws."""
    folder = generate(module_dir("real_size"), pages=5, test_pages=1, books=5, seed=2, height=3900,
                      vocabulary=full_vocabulary())
    drawn = set(full_vocabulary())
    unused = [chr(c) for c in range(0x4E00, 0x9FFF) if chr(c) not in drawn][:KAGGLE_CLASSES - len(drawn)]
    chars = [*full_vocabulary(), *unused]
    pd.DataFrame({"Unicode": [char_to_code(c) for c in chars], "char": chars}).to_csv(
        folder / "unicode_translation.csv", index=False)
    return folder


def calibrated_resnet152(pages: Path) -> dict:
    """The ``state_dict`` of an untrained ResNet-152 whose batch-norm statistics are those of its own activations on
    crops of ``pages``' scans, normalised as the detector normalises them, as ImageNet weights' statistics fit real
    images: frozen (as ``pretrained: true`` freezes them), a fresh network's identity statistics let 152 layers'
    activations grow without bound."""
    network = torchvision.models.resnet152()
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the batches
    page = torch.from_numpy(decode_page(next((pages / "train_images").glob("*.jpg")), 1024)).permute(2, 0, 1)
    crops = torch.stack([page[:, y:y + 224, x:x + 224] for y in (200, 400, 600) for x in (100, 300)]).float() / 255
    mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    network.train()
    with torch.no_grad():
        network((crops - mean) / std)
    return network.state_dict()


@pytest.fixture(scope="module")
def imagenet_files(real_size_pages, module_dir) -> dict[str, Path]:
    """Backbone weights files as the offline way reads them (untrained weights: nothing can be downloaded here)."""
    folder = module_dir("weights")
    torch.manual_seed(0)
    torch.save(calibrated_resnet152(real_size_pages), folder / "resnet152.pth")
    torch.save(timm.create_model("legacy_xception", num_classes=0, global_pool="").state_dict(),
               folder / "legacy_xception.pth")
    return {"detector": folder / "resnet152.pth", "classifier": folder / "legacy_xception.pth"}


@pytest.fixture(scope="module")
def workdir(module_dir):
    folder = module_dir("kaggle_user")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        yield folder


def trained(model: str, real_size_pages: Path, imagenet_files, *extra: str):
    import wandb

    # the recipe's folder, made absolute: W&B's service, started by an earlier test, resolves relative ones from its own
    logs = ["--trainer.logger.init_args.save_dir", str(Path.cwd() / "outputs" / model)]
    result = run(["train", model, "--data_dir", str(real_size_pages), *CPU, "--model.pretrained", "false",
                  "--model.weights_path", str(imagenet_files[model]), *logs, *extra])
    wandb.finish()
    return result


def wandb_log(workdir: Path, model: str) -> tuple[dict, dict]:
    [log] = (workdir / "outputs" / model / "wandb").glob("offline-run-*/run-*.wandb")
    return history_and_config(log)


@pytest.fixture(scope="module")
def detector_run(workdir, real_size_pages, imagenet_files):
    return trained("detector", real_size_pages, imagenet_files, "--data.batch_size", "2")


@pytest.fixture(scope="module")
def classifier_run(workdir, real_size_pages, imagenet_files):
    return trained("classifier", real_size_pages, imagenet_files, "--data.batch_size", "16")


@pytest.mark.slow
def test_the_detector_recipe_trains_resnet152_fpn_on_real_size_pages(detector_run, workdir, real_size_pages):
    settings = detector_run.model.hparams
    assert (settings.backbone, list(settings.anchor_sizes), settings.optimizer) == ("resnet152", [12, 24, 32, 64, 96],
                                                                                   "sgd")
    body = detector_run.model.network.backbone.body
    assert isinstance(body.bn1, torchvision.ops.FrozenBatchNorm2d)  # ImageNet weights: batch norm frozen
    assert all(p.requires_grad for p in body.parameters())  # trainable_layers 5: every stage trains
    assert detector_run.trainer.precision == "bf16-mixed" and detector_run.trainer.global_step == 2
    assert detector_run.datamodule.hparams.eval_longest_side == 1688
    reloaded = load_trained(CharDetector, workdir / "outputs" / "detector" / "checkpoints" / "last.ckpt")[0]
    test_page = next((real_size_pages / "test_images").glob("*.jpg"))
    with torch.inference_mode():  # it reads a page: boxes with finite scores
        found = reloaded.detect(collate_whole_pages([PageDataset([Page("test", image_path=test_page)], 1688)[0]]))[0]
    assert len(found["scores"]) and torch.isfinite(found["scores"]).all()
    history, config = wandb_log(workdir, "detector")
    assert len(history["train/loss"]) == 2 and history["val/page0/_type"] == ["images/separated"]  # its callback
    assert config["config"]["model"]["init_args"]["milestones"] == [0.67, 0.89]  # the recipe's schedule
    checkpoints = workdir / "outputs" / "detector" / "checkpoints"
    assert (checkpoints / "last.ckpt").is_file() and len(list(checkpoints.glob("epoch*.ckpt"))) == 1


@pytest.mark.slow
def test_the_classifier_recipe_trains_xception_on_96_px_crops_with_the_full_class_table(classifier_run, workdir):
    model, data = classifier_run.model, classifier_run.datamodule.hparams
    assert len(model.codes) == KAGGLE_CLASSES + 1 and model.codes[-1] == "unk"  # the class table and unk
    assert model.hparams.backbone == "legacy_xception" and data.input_size == 96
    assert (data.class_balance, data.min_count, data.unk_per_page) == (0.5, 20, 20)
    assert classifier_run.trainer.precision == "bf16-mixed" and classifier_run.trainer.global_step == 2
    history, config = wandb_log(workdir, "classifier")
    assert history["val/samples/_type"] == ["images/separated"]  # its callback
    assert history["val/f1"][-1] == pytest.approx(float(classifier_run.trainer.callback_metrics["val/f1"]))
    assert len(config["codes"]) == KAGGLE_CLASSES + 1
    reloaded = load_trained(CharClassifier, workdir / "outputs" / "classifier" / "checkpoints" / "last.ckpt")[0]
    assert reloaded.codes == model.codes


@pytest.mark.slow
def test_the_recognizer_recipe_reads_the_test_pages_with_both(detector_run, classifier_run, workdir, real_size_pages):
    checkpoints = workdir / "outputs"
    run(["predict", "--data_dir", str(real_size_pages), "--accelerator", "cpu", "--precision", "bf16-mixed",
          "--num_workers", "1", "--detector", str(checkpoints / "detector/checkpoints/last.ckpt"),
          "--classifier", str(checkpoints / "classifier/checkpoints/last.ckpt"), "--formats", "json,txt,png",
          "--detection_threshold", "0.0"])  # what a detector of two steps finds is what the classifier reads
    [test_id] = pd.read_csv(real_size_pages / "sample_submission.csv")["image_id"]
    submission = pd.read_csv(workdir / "outputs" / "submission.csv", keep_default_na=False)
    assert submission["image_id"].tolist() == [test_id]
    page = json.loads((workdir / "outputs" / "pages" / f"{test_id}.json").read_text(encoding="utf-8"))
    assert page["error"] is None and page["height"] == 3900 and len(page["characters"]) > 100
    assert len(submission["labels"][0].split()) == 3 * len(page["characters"])
    codes = set(pd.read_csv(real_size_pages / "unicode_translation.csv")["Unicode"])
    assert {c["code"] for c in page["characters"]} <= codes  # unk is dropped, never written
    assert {p.suffix for p in (workdir / "outputs" / "pages").iterdir()} == {".json", ".txt", ".png"}


@pytest.mark.gpu
@pytest.mark.parametrize("model", ["detector", "classifier"])
def test_both_models_run_a_fast_dev_run_at_16_mixed_on_a_gpu(model, real_size_pages, imagenet_files, tmp_path,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(["train", model, "--data_dir", str(real_size_pages), "--accelerator", "gpu", "--precision", "16-mixed",
                  "--num_workers", str(min(4, os.cpu_count() or 1)), "--trainer.fast_dev_run", "true",
                  "--trainer.logger", "false", "--model.pretrained", "false",
                  "--model.weights_path", str(imagenet_files[model])])
    assert result.trainer.precision == "16-mixed" and result.trainer.global_step == 1
    assert next(result.model.parameters()).device.type == "cuda"
