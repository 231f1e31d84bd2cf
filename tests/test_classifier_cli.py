"""The classifier through ``train.py``'s CLI on easy synthetic data: real Lightning loops on a CPU."""

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from helpers.wandb_log import history_and_config

from kuzu_lightning.cli import TrainCLI, recipe
from kuzu_lightning.models.classifier import CharClassifier
from kuzu_lightning.synthetic.generator import generate

ROOT = Path(__file__).resolve().parents[1]
EASY = "あいうえおかきく"  # eight classes, printed (IPAexGothic) in every book


@pytest.fixture(scope="module")
def easy_dir(module_dir):
    return generate(module_dir("easy"), pages=12, test_pages=1, seed=1, height=512, vocabulary=EASY,
                    styles=["gothic"])


def cli(subcommand: str, data_dir: Path, *overrides: str) -> TrainCLI:
    return TrainCLI(args=[
        subcommand, *recipe("classifier", "demo"), "--data.data_dir", str(data_dir), "--data.synthetic_pages", "0",
        "--data.input_size", "32", "--data.batch_size", "16", "--data.num_workers", "0", "--data.n_folds", "3",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.log_every_n_steps", "1", *overrides,
    ])


@pytest.fixture(scope="module")
def trained(easy_dir, module_dir):
    """Four epochs on the easy set with the CSV logger, run from a scratch folder; on true boxes (the box jitter,
    which makes these few epochs learn more slowly, has its own tests in test_chars.py and runs in test_demo.py)."""
    workdir = module_dir("run")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        run = cli("fit", easy_dir, "--trainer.max_epochs", "4", "--model.warmup_steps", "10", "--data.box_jitter", "null",
                  "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
                  "--trainer.logger.save_dir", str(workdir / "logs"))
    return run, workdir


@pytest.mark.slow
def test_training_lowers_the_loss_and_learns_far_above_chance(trained):
    run, workdir = trained
    metrics = pd.read_csv(Path(run.trainer.logger.log_dir) / "metrics.csv")
    losses = metrics["train/loss"].dropna().to_numpy()
    assert losses[-10:].mean() < 0.6 * losses[:10].mean()
    final = metrics.dropna(subset=["val/top1"]).iloc[-1]
    assert final["val/top1"] > 0.6  # chance is 1/8; the most frequent class is about 1/4
    assert final["val/f1"] > 0.6
    assert {"val/top1_plain", "val/top1_se", "val/top5", "val/loss"} <= set(metrics.columns)
    assert (workdir / "outputs/demo/classifier/checkpoints/last.ckpt").is_file()
    assert list(Path(run.trainer.log_dir, "pictures").glob("val_samples_step*.png"))
    hparams = (Path(run.trainer.logger.log_dir) / "hparams.yaml").read_text()
    assert "codes:" in hparams and "data_dir" in hparams  # the model's and the resolved config's


@pytest.mark.slow
def test_loss_is_the_weighted_sum_and_probabilities_the_mean(trained):
    model = trained[0].model.eval()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        plain, se = model.network(images)
        expected = F.cross_entropy(plain, labels) + F.cross_entropy(se, labels)
        torch.testing.assert_close(model.loss(plain, se, labels), expected)
        torch.testing.assert_close(model(images), (plain.softmax(1) + se.softmax(1)) / 2)
    model.hparams.head_weights = (2.0, 0.5)
    with torch.no_grad():
        weighted = 2 * F.cross_entropy(plain, labels) + 0.5 * F.cross_entropy(se, labels)
        torch.testing.assert_close(model.loss(plain, se, labels), weighted)
    model.hparams.head_weights = (1.0, 1.0)


@pytest.mark.slow
def test_checkpoint_reloads_with_weights_only_and_predicts_identically(trained):
    run, workdir = trained
    checkpoint = workdir / "outputs/demo/classifier/checkpoints/last.ckpt"
    reloaded = CharClassifier.load_from_checkpoint(checkpoint, weights_only=True, map_location="cpu").eval()
    assert reloaded.codes == run.model.codes == [f"U+{ord(c):04X}" for c in EASY]
    saved = torch.load(checkpoint, weights_only=True, map_location="cpu")["state_dict"]
    for name, tensor in reloaded.state_dict().items():  # every weight and buffer, bit for bit
        assert torch.equal(tensor, saved[name]), name
    again = CharClassifier.load_from_checkpoint(checkpoint, weights_only=True, map_location="cpu").eval()
    batch = next(iter(run.datamodule.val_dataloader()))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(batch["images"]), again(batch["images"]), rtol=0, atol=0)
        pages = reloaded.predict_step(batch, 0)
    assert [p["image_id"] for p in pages] == batch["image_ids"]
    assert len(pages[0]["codes"][0]) == 5 and pages[0]["probabilities"].shape[1] == 5
    assert (pages[0]["probabilities"][:, :-1] >= pages[0]["probabilities"][:, 1:]).all()


def test_resume_continues_the_step_count_and_logger_false_works(easy_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = cli("fit", easy_dir, "--trainer.max_steps", "3", "--trainer.logger", "false",
                "--trainer.limit_val_batches", "1")
    assert first.trainer.global_step == 3
    second = cli("fit", easy_dir, "--trainer.max_steps", "5", "--trainer.logger", "false",
                 "--trainer.limit_val_batches", "1", "--ckpt_path", "last")
    assert second.trainer.global_step == 5
    assert torch.load(tmp_path / "outputs/demo/classifier/checkpoints/last.ckpt", weights_only=True)["global_step"] == 5


def test_wandb_offline_run_holds_the_metrics_and_the_resolved_config(easy_dir, tmp_path, monkeypatch):
    import wandb

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_SILENT", "true")
    # an absolute folder: W&B's service, once started by a run of this process, resolves relative ones
    run = cli("fit", easy_dir, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
              "--trainer.limit_val_batches", "1", "--trainer.logger.init_args.save_dir", str(tmp_path / "wandb_runs"))
    wandb.finish()
    (log,) = (tmp_path / "wandb_runs/wandb").glob("offline-run-*/run-*.wandb")
    history, config = history_and_config(log)
    assert len(history["train/loss"]) == 2 and all(v > 0 for v in history["train/loss"])
    assert history["val/f1"][-1] == pytest.approx(float(run.trainer.callback_metrics["val/f1"]))  # what was computed
    assert history["val/top1_se"][-1] == pytest.approx(float(run.trainer.callback_metrics["val/top1_se"]))
    assert history["val/samples/_type"] == ["images/separated"]
    assert list(log.parent.glob("files/media/images/val/samples_*.png"))
    resolved = config["config"]
    assert resolved["data"]["init_args"]["data_dir"] == str(easy_dir)
    assert resolved["model"]["init_args"]["backbone"] == "resnet18"
    assert config["codes"] == [f"U+{ord(c):04X}" for c in EASY]  # the model's own hyper-parameters


@pytest.mark.slow
def test_validate_test_and_predict_subcommands(trained, easy_dir, monkeypatch):
    run, workdir = trained
    monkeypatch.chdir(workdir)
    checkpoint = str(workdir / "outputs/demo/classifier/checkpoints/last.ckpt")
    common = ("--ckpt_path", checkpoint, "--trainer.logger", "false")
    validated = cli("validate", easy_dir, *common)
    assert validated.trainer.callback_metrics["val/top1"] > 0.6
    tested = cli("test", easy_dir, *common)
    assert tested.trainer.callback_metrics["test/f1"] == pytest.approx(float(validated.trainer.callback_metrics["val/f1"]))
    predicted = cli("predict", easy_dir, *common, "--return_predictions", "true")
    pages = [page for batch in predicted.trainer.predict_loop.predictions for page in batch]
    assert len(pages) == len(run.datamodule.val_cache_pages)


@pytest.mark.parametrize(("content", "message"), [(b"", "the file is empty"),
                                                   (b'image_id,labels\n"a_1,U+3042 1 2 3 4\n', "not a readable CSV")])
@pytest.mark.slow
def test_a_broken_train_csv_ends_train_py_with_the_file_on_the_last_line(easy_dir, tmp_path, content, message):
    data = shutil.copytree(easy_dir, tmp_path / "data", ignore=shutil.ignore_patterns("cache"))
    (data / "train.csv").write_bytes(content)
    args = ["fit", *recipe("classifier", "demo"), "--data.data_dir", str(data), "--data.synthetic_pages", "0",
            "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path / "run")]
    run = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True, timeout=600)
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1].startswith(f"error: {data / 'train.csv'}: {message}")
