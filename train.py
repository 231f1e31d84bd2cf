"""Train, validate, test or predict with one model from a YAML config.

    python train.py fit --config configs/detector.yaml
    python train.py fit --config configs/detector.yaml --config configs/demo/base.yaml --config configs/demo/detector.yaml
    python train.py fit --config configs/classifier.yaml --ckpt_path last   # resume where the run stopped
    python train.py validate --config configs/classifier.yaml --ckpt_path outputs/classifier/checkpoints/last.ckpt
    python train.py fit --help
"""

from kuzu_lightning.cli import TrainCLI, run

if __name__ == "__main__":
    run(TrainCLI)
