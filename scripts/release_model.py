"""Release a trained detector and classifier as a model that ships with the package and loads by name.

    python scripts/release_model.py --name kuzu-synthetic-v1 --detector D.ckpt --classifier C.ckpt \\
        --thresholds thresholds.yaml --card MODEL_CARD.md --licence "CC BY-SA 4.0"

writes ``kuzu_lightning/pretrained/NAME/`` (or ``--into DIR``): both checkpoints cut to what reading and fine-tuning
need, in half precision, the thresholds (``kuzu validate recognizer --thresholds_out``), the model card and
``release.json`` (see :mod:`kuzu_lightning.pretrained`). A release is a deliberate step, committed on its own, so
that the repository's history does not grow with every experiment: a name is released once, a new release takes a
new version.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kuzu_lightning.pretrained import PACKAGE_MODELS, release


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="the model's name and version, e.g. kuzu-synthetic-v1")
    parser.add_argument("--detector", required=True, help="the CharDetector checkpoint")
    parser.add_argument("--classifier", required=True, help="the CharClassifier checkpoint")
    parser.add_argument("--thresholds", required=True, help="kuzu validate recognizer --thresholds_out's file")
    parser.add_argument("--card", required=True, help="the model card (Markdown)")
    parser.add_argument("--licence", required=True, help="the weights' licence, as their training data allow")
    parser.add_argument("--into", type=Path, default=PACKAGE_MODELS, help=f"where it goes (default {PACKAGE_MODELS})")
    args = parser.parse_args(argv)
    folder = release(args.name, args.detector, args.classifier, args.thresholds, args.card, args.licence, args.into)
    record = json.loads((folder / "release.json").read_text(encoding="utf-8"))
    total = sum(file["bytes"] for file in record["files"].values())
    print(f"released {args.name} in {folder}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
