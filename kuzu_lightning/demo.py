"""The demo: ``python -m kuzu_lightning.demo``, from the repository root, on a CPU.

It generates the built-in synthetic dataset (``data/synthetic``), trains the detector and the
classifier with the real recipes and the demo's overrides (``configs/detector.yaml`` +
``configs/demo/base.yaml`` + ``configs/demo/detector.yaml``, and likewise the classifier; see
:func:`~kuzu_lightning.cli.recipe`), validates both together on the validation books with
``configs/predict.yaml`` and its demo overrides (the error budget, and the detection threshold and
confidence floor that read those books best, written to ``thresholds.yaml`` in the recognizer's
``trainer.default_root_dir``, ``outputs/demo/recognizer``),
recognises the synthetic test pages with those thresholds and the two best checkpoints, and scores
the submission against the test pages' answers, pages neither model has seen and no setting was
chosen on. It prints where everything is; its last line is JSON: the end-to-end F1, precision and
recall, the detection-only F1, the chosen thresholds, the error budget, the wall time and the
submission's and pictures' paths.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import wandb

from kuzu_lightning.cli import ProjectCLI, RecognizeCLI, TrainCLI, recipe, write_thresholds
from kuzu_lightning.metrics import score_csv

log = logging.getLogger(__name__)

MODELS = ("detector", "classifier", "predict")


def run(cli_class: type[ProjectCLI], args: list[str]) -> ProjectCLI:
    """``cli_class(args=args)``, its W&B run finished: Lightning leaves it open, and the next
    command's logger would write into it. The CLI sees none of the demo's own command line (its
    ``--overrides`` are already in ``args``; Lightning warns when it gets both)."""
    command_line, sys.argv = sys.argv, sys.argv[:1]
    try:
        cli = cli_class(args=args)
    finally:
        sys.argv = command_line
    wandb.finish()
    return cli


def train(model: str, overrides: list[str]) -> str:
    """Fit the demo's ``model`` (then ``overrides``); the path of its best checkpoint."""
    checkpoints = run(TrainCLI, ["fit", *recipe(model, demo=True), *overrides]).trainer.checkpoint_callback
    return checkpoints.best_model_path or checkpoints.last_model_path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m kuzu_lightning.demo", description=__doc__.split("\n\n")[1])
    parser.add_argument("--overrides", type=Path, default=None,
                        help="a folder of further YAML overrides, detector.yaml, classifier.yaml and predict.yaml "
                             "(each optional), applied after the demo's configs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    missing = [path for name in MODELS for path in recipe(name, demo=True)[1::2] if not Path(path).is_file()]
    if missing:
        parser.error(f"{', '.join(missing)} not found: the demo runs from a checkout of the repository")
    extra = {name: ["--config", str(args.overrides / f"{name}.yaml")]
             if args.overrides and (args.overrides / f"{name}.yaml").is_file() else [] for name in MODELS}
    start = time.perf_counter()
    detector = train("detector", extra["detector"])
    classifier = train("classifier", extra["classifier"])
    models = ["--model.detector_ckpt", detector, "--model.classifier_ckpt", classifier]
    validated = run(RecognizeCLI, ["validate", *recipe("predict", demo=True), *extra["predict"], *models])
    thresholds = Path(validated.trainer.default_root_dir) / "thresholds.yaml"
    write_thresholds(thresholds, validated.model)
    budget = {key.removeprefix("val/budget/"): round(float(value), 4)
              for key, value in validated.trainer.callback_metrics.items() if key.startswith("val/budget/")}
    cli = run(RecognizeCLI, ["predict", *recipe("predict", demo=True), *extra["predict"], "--config", str(thresholds),
                             *models])
    settings = cli.config["predict"]
    solution = Path(settings.data.init_args.data_dir) / "test_solution.csv"
    scores = score_csv(settings.output, solution)
    detection = score_csv(settings.output, solution, class_agnostic=True)
    result = {"f1": scores["f1"], "precision": scores["precision"], "recall": scores["recall"],
              "detection_f1": detection["f1"], "detection_threshold": cli.model.detection_threshold,
              "min_confidence": cli.model.hparams.min_confidence, "budget": budget,
              "wall_s": round(time.perf_counter() - start, 1), "thresholds": str(thresholds),
              "submission": str(settings.output), "text": str(settings.text_dir), "pictures": str(settings.pictures_dir)}
    print(f"\ndetector checkpoint:   {detector}\nclassifier checkpoint: {classifier}\n"
          f"submission:            {settings.output}\npages as JSON:         {settings.json_dir}\n"
          f"pages as text:         {settings.text_dir}\n"
          f"pictures:              {settings.pictures_dir}\n"
          f"thresholds (chosen on the validation books): {thresholds}\n"
          f"end-to-end F1 on the {solution.parent.name} test pages: {scores['f1']:.3f} "
          f"(precision {scores['precision']:.3f}, recall {scores['recall']:.3f}; detection only {detection['f1']:.3f})")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
