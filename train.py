"""Train, validate, test or predict with one model from a YAML config.

    python train.py fit --config configs/demo/classifier.yaml
    python train.py fit --config configs/classifier.yaml --data.data_dir data/kaggle
    python train.py validate --config configs/classifier.yaml --ckpt_path last
    python train.py fit --help
"""

from kuzu_lightning.cli import TrainCLI

if __name__ == "__main__":
    TrainCLI()
