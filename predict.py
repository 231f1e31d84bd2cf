"""Recognise pages with a trained detector and classifier from YAML configs: the LightningCLI behind ``kuzu predict``
and ``kuzu validate recognizer``, for one's own config files. ``predict`` (the default) writes a Kaggle submission
(``--csv``) and each page's files (``--out``, ``--formats``); ``validate`` scores the validation books.

    python predict.py --config kuzu_lightning/configs/recognizer.yaml --model.detector_ckpt D.ckpt \\
        --model.classifier_ckpt C.ckpt
    kuzu predict --preset demo --print_config > my_recognizer.yaml   # a preset as one file, to edit
    python predict.py validate --config my_recognizer.yaml --thresholds_out thresholds.yaml
    python predict.py --help
"""

import sys

from kuzu_lightning.cli import RecognizeCLI, run

if __name__ == "__main__":
    sys.argv[1:] = RecognizeCLI.default_subcommand(sys.argv[1:])  # also what DDP's relaunched processes see
    run(RecognizeCLI)
