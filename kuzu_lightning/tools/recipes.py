"""``kuzu train``, ``kuzu validate`` and ``kuzu predict``: the shipped recipes run through LightningCLI (the CLIs of
``train.py`` and ``predict.py``), chosen by preset; see :data:`USAGE`."""

from __future__ import annotations

import argparse
import json

from kuzu_lightning.cli import PRESETS
from kuzu_lightning.tools.options import (
    ADAPTATION_HELP,
    ENSEMBLE_OPTIONS,
    HTML_HELP,
    adaptation_settings,
    add_adaptation_options,
    add_ensemble_option,
    add_test_time_options,
    test_time_settings,
)

USAGE = """\
examples:
  kuzu train detector --preset demo                                  # the demo's detector, on a CPU
  kuzu train classifier --data_dir data/kaggle                       # the real recipe (one GPU)
  kuzu train classifier --preset demo --ckpt_path last               # resume where the run stopped
  kuzu validate detector --preset demo --ckpt_path CKPT              # one model on its validation books
  kuzu validate recognizer --preset demo --detector CKPT --classifier CKPT --thresholds_out thresholds.yaml
  kuzu predict --preset demo --detector CKPT --classifier CKPT --config thresholds.yaml [--out DIR] [--csv FILE]
  kuzu predict --detector D1 D2 --classifier C1 C2 --page_scales 1 1.25 --crop_shifts 0.05 --crop_scales 1.1
  kuzu predict --detector CKPT --classifier CKPT --adapt [--adapt_steps 200] [--no-adapt_batchnorm]

The preset's configs are read first (real: the recipe as it is, for the Kaggle data on one GPU; demo: the demo's
CPU-sized overrides on the built-in synthetic data; synthetic: the synthetic pre-training, on top of the demo's),
then each --config file, then the other options. Those are LightningCLI's own (--trainer.max_epochs 5,
--model.lr 3e-4, --ckpt_path last, --print_config: every option of `python train.py fit --help`) or the ones
above, which every kuzu command spells the same way.
"""

SHARED_OPTIONS = {  # kuzu's spelling: the LightningCLI option it stands for
    "data_dir": "--data.data_dir",
    "detector": "--model.detector_ckpt",
    "classifier": "--model.classifier_ckpt",
    "detection_threshold": "--model.detection_threshold",
    "min_confidence": "--model.min_confidence",
    "top_k": "--model.top_k",
    "accelerator": "--trainer.accelerator",
    "devices": "--trainer.devices",
    "precision": "--trainer.precision",
    "num_workers": "--data.num_workers",
}
FOR_BOTH_MODELS = ("detector", "classifier", "detection_threshold", "min_confidence", "top_k")
"""The options of the recognizer alone (validate recognizer, predict), with the test-time ones
(:func:`~kuzu_lightning.tools.options.add_test_time_options`, which set ``--model.page_scales`` and
``--model.crop_views``)."""


class RecipeCommand:
    """One of ``kuzu train``, ``kuzu validate`` and ``kuzu predict`` (see the module docstring)."""

    passes_on_arguments = True  # the options kuzu does not know go to LightningCLI

    def __init__(self, name: str, models: tuple[str, ...]):
        self.name, self.models = name, models

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = USAGE
        if len(self.models) > 1:
            parser.add_argument("model", choices=self.models)
        parser.add_argument("--preset", choices=PRESETS, default="real",
                            help="real (the recipe as it is, default), demo or synthetic")
        parser.add_argument("--config", action="append", default=[], metavar="FILE",
                            help="a config of one's own, read after the preset's (may be given again)")
        for option, target in SHARED_OPTIONS.items():
            if option in FOR_BOTH_MODELS and "recognizer" not in self.models:
                continue
            if option in ENSEMBLE_OPTIONS:
                add_ensemble_option(parser, option, help=f"the same as {target}")
            else:
                parser.add_argument(f"--{option}", metavar="VALUE", help=f"the same as {target}")
        if "recognizer" in self.models:
            add_test_time_options(parser)
        if self.name == "predict":
            add_adaptation_options(parser)
            parser.add_argument("--html", action="store_true", help=HTML_HELP)

    def lightning_arguments(self, args: argparse.Namespace) -> tuple[type, list[str]]:
        """The CLI class and the arguments it runs with."""
        from kuzu_lightning.cli import RecognizeCLI, TrainCLI, recipe

        model = getattr(args, "model", self.models[0])
        subcommand = {"train": "fit", "validate": "validate", "predict": "predict"}[self.name]
        arguments = [subcommand, *recipe(model, args.preset)]
        arguments += [argument for path in args.config for argument in ("--config", path)]
        for option, target in SHARED_OPTIONS.items():
            value = getattr(args, option, None)
            if isinstance(value, list):  # one checkpoint stays a path; several, a list
                value = value[0] if len(value) == 1 else json.dumps(value)
            if value is not None:
                arguments += [target, value]
        if "page_scales" in args:
            for key, value in test_time_settings(args).items():
                arguments += [f"--model.{key}", json.dumps(value)]
        if getattr(args, "html", False):
            arguments += ["--html", "true"]
        settings = adaptation_settings(args) if "adapt" in args else None  # checked before any model loads
        if settings is not None:
            arguments += ["--adapt", "true"]
            for name in ADAPTATION_HELP:
                if getattr(args, f"adapt_{name}") is not None:
                    arguments += [f"--adapt_{name}", str(getattr(settings, name)).lower()]
        return (RecognizeCLI if model == "recognizer" else TrainCLI), [*arguments, *args.passed_on]

    def run(self, args: argparse.Namespace):
        from kuzu_lightning.cli import run

        cli_class, arguments = self.lightning_arguments(args)
        return run(cli_class, arguments)


train = RecipeCommand("train", ("detector", "classifier"))
validate = RecipeCommand("validate", ("detector", "classifier", "recognizer"))
predict = RecipeCommand("predict", ("recognizer",))
