"""Training you can trust: ``last.ckpt`` is the last step, and a run interrupted at any step (SIGKILL or
SIGINT, mid-epoch or at an epoch boundary) and resumed with ``--ckpt_path last`` ends with the very
weights of an uninterrupted run with the same seed. Real ``train.py`` processes, killed for real."""

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

from kuzu_lightning.cli import recipe
from kuzu_lightning.synthetic.generator import generate

pytestmark = pytest.mark.slow  # real train.py processes, killed and resumed
ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1"}
STEPS_PER_EPOCH, EPOCHS = 4, 2  # 8 optimizer steps
COMMON = ["--trainer.max_epochs", str(EPOCHS), "--trainer.limit_train_batches", str(STEPS_PER_EPOCH),
          "--trainer.limit_val_batches", "1", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
          "--trainer.enable_model_summary", "false", "--last_checkpoint.every_n_train_steps", "2",
          "--data.synthetic_pages", "0", "--data.num_workers", "0", "--data.n_folds", "3"]
SMALL = {
    "classifier": ["--data.input_size", "32", "--data.batch_size", "8", "--model.warmup_steps", "2"],
    "detector": ["--data.train_longest_side", "640", "--data.crop_heights", "[200, 240]", "--data.crop_size",
                 "[192, 224]", "--data.eval_longest_side", "512", "--data.crops_per_page", "4", "--data.batch_size", "2",
                 "--model.backbone", "mobilenet_v3_small", "--model.rpn_post_nms_top_n_test", "100",
                 "--trainer.num_sanity_val_steps", "1", "--trainer.check_val_every_n_epoch", "1"],
}


@pytest.fixture(scope="module")
def data_dir(module_dir):
    return generate(module_dir("resume_data"), pages=9, test_pages=1, seed=5, height=640)


def train(model: str, data_dir: Path, root: Path, *extra: str) -> subprocess.CompletedProcess:
    """``train.py fit`` in a session of its own, its output in a file: a killed process's loader workers
    (children of the forkserver, not of the killed process) outlive it, and are ended with its session."""
    args = [sys.executable, str(ROOT / "train.py"), "fit", *recipe(model, "demo"), "--data.data_dir", str(data_dir),
            "--trainer.default_root_dir", str(root), *COMMON, *SMALL[model], *extra]
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(args, cwd=root.parent, env=ENV, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            process.wait(timeout=600)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        output.seek(0)
        return subprocess.CompletedProcess(args, process.returncode, output.read(), "")


def interrupt_config(folder: Path, step: int, signal_name: str) -> list[str]:
    path = folder / f"interrupt-{signal_name}-{step}.yaml"
    path.write_text(yaml.safe_dump({"trainer": {"callbacks+": [
        {"class_path": "helpers.interrupt.InterruptAt", "init_args": {"step": step, "signal_name": signal_name}}]}}))
    return ["--config", str(path)]


def last(root: Path) -> dict:
    return torch.load(root / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def uninterrupted(data_dir, module_dir):
    runs = {}
    for model in SMALL:
        root = module_dir(f"{model}_whole") / "run"
        run = train(model, data_dir, root)
        assert run.returncode == 0, run.stdout[-3000:]
        runs[model] = last(root)
    return runs


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("model", list(SMALL))
def test_last_checkpoint_is_the_final_step(uninterrupted, model):
    assert uninterrupted[model]["global_step"] == EPOCHS * STEPS_PER_EPOCH


@pytest.mark.parametrize(("model", "step", "signal_name", "workers"), [
    ("classifier", 3, "SIGKILL", 0),  # mid-epoch: resumes from step 2, inside epoch 0
    ("detector", 3, "SIGKILL", 0),
    ("classifier", 5, "SIGKILL", 0),  # resumes from step 4, the end of epoch 0
    ("classifier", 7, "SIGINT", 0),  # Ctrl-C: resumes from step 6, inside epoch 1
    ("classifier", 7, "SIGKILL", 2),  # loader workers start before Lightning sets the resumed epoch
    ("classifier", 5, "SIGKILL", 2),
    ("detector", 7, "SIGKILL", 1),
])
def test_interrupted_and_resumed_run_ends_with_the_uninterrupted_weights(uninterrupted, data_dir, tmp_path, model,
                                                                         step, signal_name, workers):
    """The uninterrupted run had no loader workers: the draws depend on neither the workers nor the interruption."""
    root = tmp_path / "run"
    loader = ["--data.num_workers", str(workers)]
    stopped = train(model, data_dir, root, *loader, *interrupt_config(tmp_path, step, signal_name))
    assert stopped.returncode != 0
    saved = last(root)["global_step"]
    assert saved == step - 1  # the last checkpoint before the interruption (one every 2 steps)
    resumed = train(model, data_dir, root, *loader, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    final = last(root)
    assert final["global_step"] == EPOCHS * STEPS_PER_EPOCH
    assert max_difference(final["state_dict"], uninterrupted[model]["state_dict"]) == 0.0
