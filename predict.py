"""Recognise pages with a trained detector and classifier: a Kaggle submission, per-page JSON, pictures.

    python predict.py --config configs/predict.yaml --model.detector_ckpt D.ckpt --model.classifier_ckpt C.ckpt
    python predict.py --config configs/predict.yaml --config configs/demo/base.yaml --config configs/demo/predict.yaml
    python predict.py validate --config configs/predict.yaml   # end-to-end F1 on the validation books
    python predict.py --help
"""

import sys

from kuzu_lightning.cli import RecognizeCLI, run

if __name__ == "__main__":
    sys.argv[1:] = RecognizeCLI.default_subcommand(sys.argv[1:])  # also what DDP's relaunched processes see
    run(RecognizeCLI)
