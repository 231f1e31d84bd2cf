"""The package face: public names imported on first use, one ``kuzu`` command for every job, commands that need no
model start without torch."""

import subprocess
import sys

import pytest

import kuzu_lightning
from kuzu_lightning.tools.kuzu import COMMANDS, run


def test_public_names_resolve_to_their_classes():
    from kuzu_lightning.models.recognizer import Recognizer
    from kuzu_lightning.records import Character

    assert kuzu_lightning.Recognizer is Recognizer and kuzu_lightning.Character is Character
    assert set(kuzu_lightning.__all__) <= set(dir(kuzu_lightning))
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        kuzu_lightning.Nothing  # noqa: B018


def test_python_m_kuzu_lightning_lists_every_job():
    run = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "kuzu_lightning", "--help"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    listed = [line.split()[0] for line in run.stdout.splitlines() if line.startswith("    ") and line[4] != " "]
    assert listed == list(COMMANDS)
    for job in ("demo", "synthetic", "train", "validate", "predict", "recognize", "score", "out-of-fold", "benchmark"):
        assert job in COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as stop:
        run([command, "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: kuzu {command}")


def test_the_commands_that_need_no_model_import_neither_torch_nor_lightning():
    probe = ("import sys, kuzu_lightning.tools.kuzu, kuzu_lightning.tools.score, kuzu_lightning.tools.synthetic_pages, "
             "kuzu_lightning.metrics, kuzu_lightning.synthetic.generator; "
             "print(sorted(m for m in ('torch', 'lightning', 'torchmetrics') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        run(["transcribe"])
    assert stop.value.code == 2 and "invalid choice: 'transcribe'" in capsys.readouterr().err


def test_a_command_that_succeeds_exits_with_status_0(tmp_path):
    """What a subcommand returns (here the dataset's folder) is not the exit status."""
    run = subprocess.run([sys.executable, "-m", "kuzu_lightning", "synthetic", "--out", str(tmp_path / "pages"),
                          "--pages", "1", "--test_pages", "1", "--height", "400"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "pages" / "train.csv").is_file() and run.stderr == ""


def test_bad_settings_end_a_command_with_the_reason_as_its_last_line(tmp_path):
    (tmp_path / "thresholds.yaml").write_text("model:\n  init_args:\n    min_confidence: 7\n")
    (tmp_path / "page.jpg").write_bytes(b"never read")
    run = subprocess.run([sys.executable, "-m", "kuzu_lightning", "recognize", str(tmp_path / "page.jpg"), "--detector",
                          "d.ckpt", "--classifier", "c.ckpt", "--out", str(tmp_path / "out"), "--config",
                          str(tmp_path / "thresholds.yaml")], capture_output=True, text=True)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1] == (f"error: {tmp_path / 'thresholds.yaml'}: model.init_args.min_confidence "
                                                    "must be a number between 0 and 1, not 7")
