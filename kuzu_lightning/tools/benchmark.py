"""``kuzu benchmark NAME``: the speed benchmarks (:mod:`~kuzu_lightning.tools.speed`: ``metric``, ``score-csv``,
``ordering``, ``synthetic``, ``chars``, ``classifier``, ``detector``, ``pipeline``) and the accuracy benchmarks
(:mod:`~kuzu_lightning.tools.accuracy`: ``real``, ``reading-order``). Each prints one JSON object as its last line."""

from __future__ import annotations

import argparse
import json

from kuzu_lightning.tools.options import (
    adaptation_settings,
    add_adaptation_options,
    add_ensemble_option,
    add_test_time_options,
    test_time_settings,
)

SPEED = ("metric", "score-csv", "ordering", "synthetic", "chars", "classifier", "detector", "pipeline")
ACCURACY = ("real", "reading-order")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=(*SPEED, *ACCURACY),
                        help=f"speed: {', '.join(SPEED)}; accuracy: {', '.join(ACCURACY)}")
    parser.add_argument("--data_dir", help="detector, pipeline: a Kaggle-layout folder whose train (detector) or "
                        "train and test (pipeline) pages to read (default: synthetic pages of real size)")
    add_ensemble_option(parser, "detector", help="real: a CharDetector checkpoint (several with --classifier)")
    add_ensemble_option(parser, "classifier", help="real: a CharClassifier checkpoint, or several (with --detector)")
    add_test_time_options(parser)
    add_adaptation_options(parser)
    parser.add_argument("--detection_threshold", type=float, help="real: keep detections scoring this or more "
                        "(default: the detector's, chosen on its validation books)")
    parser.add_argument("--real_data", help="real, reading-order: the real data folder (default: $KUZU_REAL_DATA)")


def run(args: argparse.Namespace) -> dict:
    if args.classifier and not args.detector:
        raise SystemExit("error: --classifier needs --detector: the end-to-end score reads what the detector finds")
    if args.name in SPEED:
        from kuzu_lightning.tools.speed import ONE_CORE, one_core
        from kuzu_lightning.tools.speed import SPEED as BENCHMARKS

        core = one_core() if args.name in ONE_CORE else None
        options = {"data_dir": args.data_dir} if args.name in ("detector", "pipeline") else {}
        result = {**BENCHMARKS[args.name](**options), "cpu_core": core}
    else:
        from kuzu_lightning.data.real_pages import real_data_dir
        from kuzu_lightning.tools.accuracy import bench_reading_order, bench_real

        if args.name == "real":
            result = bench_real(real_data_dir(args.real_data), args.detector, args.classifier, args.detection_threshold,
                                adaptation_settings(args), **test_time_settings(args))
        else:
            result = bench_reading_order(real_data_dir(args.real_data, required=False))
    print(json.dumps(result))
    return result

