"""``kuzu demo``: the whole pipeline on a CPU, from nothing, in the working folder.

It generates the built-in synthetic dataset (``data/synthetic``), trains the detector and the classifier with the
real recipes and the demo's overrides (``kuzu train detector --preset demo``, then the classifier), validates both
together on the validation books (the error budget, and the detection threshold and confidence floor that read
those books best, written to ``thresholds.yaml`` in the recognizer's ``trainer.default_root_dir``,
``outputs/demo/recognizer``), recognises the synthetic test pages with those thresholds and the two best
checkpoints, and scores the submission against the test pages' answers: pages neither model has seen and no setting
was chosen on. It prints where everything is; its last line is JSON: the end-to-end F1, precision and recall, the
detection-only F1, the chosen thresholds, the error budget, the wall time and the outputs' paths.

``--preset synthetic`` runs the synthetic pre-training recipes the same way (600 pages, longer; about two hours on
two CPU cores); ``--overrides DIR`` reads ``DIR/detector.yaml``, ``DIR/classifier.yaml`` and ``DIR/recognizer.yaml``
(each optional) after the preset's configs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RECIPES = ("detector", "classifier", "recognizer")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=("demo", "synthetic"), default="demo",
                        help="demo (default: 120 pages, about 15 minutes on 2 cores) or synthetic (600 pages, longer)")
    parser.add_argument("--overrides", type=Path, default=None,
                        help="a folder of further YAML overrides, detector.yaml, classifier.yaml and recognizer.yaml "
                             "(each optional), read after the preset's configs")


def run(args: argparse.Namespace) -> dict:
    import wandb

    from kuzu_lightning.cli import ProjectCLI, RecognizeCLI, TrainCLI, recipe, write_thresholds
    from kuzu_lightning.metrics import score_csv

    def finished(cli_class: type[ProjectCLI], arguments: list[str]) -> ProjectCLI:
        """``cli_class(args=arguments)``, its W&B run finished: Lightning leaves it open, and the next command's
        logger would write into it."""
        cli = cli_class(args=arguments)
        wandb.finish()
        return cli

    configs = {name: recipe(name, args.preset) for name in RECIPES}
    for name in RECIPES:
        override = args.overrides / f"{name}.yaml" if args.overrides else None
        if override and override.is_file():
            configs[name] += ["--config", str(override)]
    start = time.perf_counter()
    best = {}
    for name in ("detector", "classifier"):
        checkpoints = finished(TrainCLI, ["fit", *configs[name]]).trainer.checkpoint_callback
        best[name] = checkpoints.best_model_path or checkpoints.last_model_path
    models = ["--model.detector_ckpt", best["detector"], "--model.classifier_ckpt", best["classifier"]]
    validated = finished(RecognizeCLI, ["validate", *configs["recognizer"], *models])
    thresholds = Path(validated.trainer.default_root_dir) / "thresholds.yaml"
    write_thresholds(thresholds, validated.model)
    budget = {key.removeprefix("val/budget/"): round(float(value), 4)
              for key, value in validated.trainer.callback_metrics.items() if key.startswith("val/budget/")}
    cli = finished(RecognizeCLI, ["predict", *configs["recognizer"], "--config", str(thresholds), *models])
    settings = cli.config["predict"]
    solution = Path(settings.data.init_args.data_dir) / "test_solution.csv"
    scores = score_csv(settings.csv, solution)
    detection = score_csv(settings.csv, solution, class_agnostic=True)
    result = {"f1": scores["f1"], "precision": scores["precision"], "recall": scores["recall"],
              "detection_f1": detection["f1"], "detection_threshold": cli.model.detection_threshold,
              "min_confidence": cli.model.min_confidence, "budget": budget,
              "wall_s": round(time.perf_counter() - start, 1), "detector": best["detector"],
              "classifier": best["classifier"], "thresholds": str(thresholds), "submission": str(settings.csv),
              "pages": str(settings.out)}
    print(f"\ndetector checkpoint:   {best['detector']}\nclassifier checkpoint: {best['classifier']}\n"
          f"submission:            {settings.csv}\n"
          f"pages ({settings.formats}): {settings.out}\n"
          f"thresholds (chosen on the validation books): {thresholds}\n"
          f"end-to-end F1 on the {solution.parent.name} test pages: {scores['f1']:.3f} "
          f"(precision {scores['precision']:.3f}, recall {scores['recall']:.3f}; detection only {detection['f1']:.3f})")
    print(json.dumps(result))
    return result
