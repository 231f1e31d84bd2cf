"""Train, validate, test or predict with one model from YAML configs: the LightningCLI behind ``kuzu train`` and
``kuzu validate detector|classifier``, for one's own config files.

    python train.py fit --config kuzu_lightning/configs/detector.yaml --config my_changes.yaml
    kuzu train detector --preset demo --print_config > my_detector.yaml   # a preset as one file, to edit
    python train.py fit --config my_detector.yaml [--ckpt_path last]
    python train.py validate --config my_detector.yaml --ckpt_path outputs/demo/detector/checkpoints/last.ckpt
    python train.py fit --help
"""

from kuzu_lightning.cli import TrainCLI, run

if __name__ == "__main__":
    run(TrainCLI)
