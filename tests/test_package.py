"""The package face: public names imported on first use, command lines that start without torch."""

import subprocess
import sys

import pytest

import kuzu_lightning

COMMANDS = ["metrics", "data.synthetic", "baseline", "benchmark", "demo"]


def test_public_names_resolve_to_their_classes():
    from kuzu_lightning.models.recognizer import Recognizer
    from kuzu_lightning.records import Character

    assert kuzu_lightning.Recognizer is Recognizer and kuzu_lightning.Character is Character
    assert set(kuzu_lightning.__all__) <= set(dir(kuzu_lightning))
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        kuzu_lightning.Nothing  # noqa: B018


def test_the_metric_and_the_synthetic_data_import_neither_torch_nor_lightning():
    probe = ("import sys, kuzu_lightning.metrics, kuzu_lightning.data.formats, kuzu_lightning.geometry; "
             "print(sorted(m for m in ('torch', 'lightning', 'torchmetrics') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("command", COMMANDS)
def test_python_m_commands_start_without_runpy_warnings(command):
    run = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", f"kuzu_lightning.{command}", "--help"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "found in sys.modules" not in run.stderr and "usage:" in run.stdout
