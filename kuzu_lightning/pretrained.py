"""Released models: a trained detector and classifier that ship with the package and load by name.

A released model is a folder named as the model is, ``kuzu-synthetic-v1`` say, holding:

- ``detector.ckpt`` and ``classifier.ckpt``: Lightning checkpoints cut to what reading and fine-tuning need (the
  weights in half precision, the hyper-parameters, the data settings; no optimizer state), which load as any
  checkpoint does;
- ``thresholds.yaml``: the detection threshold and confidence floor chosen on validation books, as
  ``kuzu validate recognizer --thresholds_out`` writes them;
- ``MODEL_CARD.md``: what it was trained on, how, its figures and what it is bad at;
- ``release.json``: its name, licence, each file's size and SHA-256, and the checkpoints it was made from.

Wherever a checkpoint is asked for (``--detector``, ``--classifier``, ``model.detector_ckpt``...), a released model's
name stands for its checkpoint of that kind, and a pair of one released model reads at its thresholds unless others
are given (:func:`own_thresholds`); ``kuzu recognize`` with neither uses :data:`DEFAULT_MODEL`. The package's
released models are in ``kuzu_lightning/pretrained/``; ``$KUZU_MODELS`` names further folders of them
(``:``-separated; searched first). ``scripts/release_model.py`` makes one (:func:`release`).
Imports neither torch nor Lightning, but for :func:`release`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

DEFAULT_MODEL = "kuzu-synthetic-v1"
"""The released model that reads pages when no checkpoint is given."""
PACKAGE_MODELS = Path(__file__).parent / "pretrained"
FILES = {"detector": "detector.ckpt", "classifier": "classifier.ckpt", "thresholds": "thresholds.yaml",
         "card": "MODEL_CARD.md"}
KEPT = ("hyper_parameters", "datamodule_hyper_parameters", "validated_threshold", "pytorch-lightning_version")
"""What a released checkpoint keeps of a trained one, besides its weights."""
NAME = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*-v[0-9]+(?:\.[0-9]+)*")
"""What a released model's name looks like: lower-case words joined by ``-`` and a version, ``kuzu-synthetic-v1``."""


def model_folders() -> list[Path]:
    """Where released models are looked for: the folders of ``$KUZU_MODELS``, then the package's."""
    extra = [Path(folder) for folder in os.environ.get("KUZU_MODELS", "").split(os.pathsep) if folder]
    return [*extra, PACKAGE_MODELS]


def released_models() -> dict[str, Path]:
    """Every released model found, by name (the first folder holding a name wins)."""
    found: dict[str, Path] = {}
    for folder in model_folders():
        for release in sorted(folder.glob("*/release.json")) if folder.is_dir() else ():
            found.setdefault(release.parent.name, release.parent)
    return found


def is_model_name(setting: str | os.PathLike) -> bool:
    """Whether a checkpoint setting is a released model's name rather than a path."""
    return isinstance(setting, str) and NAME.fullmatch(setting) is not None and not Path(setting).exists()


def released_model(name: str) -> Path:
    """The folder of the released model ``name``; ``ValueError`` naming those there are when there is none."""
    found = released_models()
    if name not in found:
        there = ", ".join(sorted(found)) or "none"
        raise ValueError(f"no released model {name!r} (released models here: {there}; folders searched: "
                         f"{', '.join(map(str, model_folders()))}); give a checkpoint file, or a model's name")
    return found[name]


def resolve(setting: str | os.PathLike, kind: str) -> str | os.PathLike:
    """A checkpoint setting as a path: a released model's name becomes its ``kind`` (``detector`` or ``classifier``)
    checkpoint; a path stays as it is."""
    return str(released_model(setting) / FILES[kind]) if is_model_name(setting) else setting


def release_thresholds(name: str) -> Path:
    """The thresholds file of the released model ``name``."""
    return released_model(name) / FILES["thresholds"]


def own_thresholds(detector_ckpt, classifier_ckpt) -> dict[str, float]:
    """The thresholds a released model was released with when both settings name that one model (a name, or a list
    of that one name), else none: a released pair reads at its own thresholds unless others are given."""
    from kuzu_lightning.thresholds import read_thresholds

    names = {setting for value in (detector_ckpt, classifier_ckpt)
             for setting in ([value] if isinstance(value, (str, os.PathLike)) else list(value))}
    if len(names) != 1 or not is_model_name(name := names.pop()):
        return {}
    return read_thresholds(release_thresholds(name))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def compact_checkpoint(source: str | Path, target: Path) -> None:
    """The checkpoint at ``source`` cut to what reading and fine-tuning need, its floating-point weights in half
    precision, written to ``target``."""
    import torch

    from kuzu_lightning.models.checkpoints import read_checkpoint

    checkpoint = read_checkpoint(source)
    state = {key: value.half() if value.is_floating_point() else value
             for key, value in checkpoint["state_dict"].items()}
    kept = {key: checkpoint[key] for key in KEPT if key in checkpoint}
    torch.save({**kept, "state_dict": state}, target)


def release(name: str, detector: str | Path, classifier: str | Path, thresholds: str | Path, card: str | Path,
            licence: str, into: Path = PACKAGE_MODELS) -> Path:
    """Make the released model ``name`` under ``into`` (see the module docstring) from trained checkpoints, the
    thresholds ``kuzu validate recognizer --thresholds_out`` wrote and a model card; returns its folder. A release
    of that name already there is refused: a new release takes a new version."""
    from kuzu_lightning.models.checkpoints import load_trained
    from kuzu_lightning.models.classifier import CharClassifier
    from kuzu_lightning.models.detector import CharDetector
    from kuzu_lightning.thresholds import read_thresholds

    if not NAME.fullmatch(name):
        raise ValueError(f"{name!r} is no released model's name: lower-case words and a version, as {DEFAULT_MODEL}")
    folder = Path(into) / name
    if folder.exists():
        raise ValueError(f"{folder} exists: a new release takes a new version")
    read_thresholds(Path(thresholds))  # checked before anything is written
    load_trained(CharDetector, detector)
    load_trained(CharClassifier, classifier)
    partial = folder.with_name(f".{name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    compact_checkpoint(detector, partial / FILES["detector"])
    compact_checkpoint(classifier, partial / FILES["classifier"])
    shutil.copyfile(thresholds, partial / FILES["thresholds"])
    shutil.copyfile(card, partial / FILES["card"])
    files = {file: {"bytes": (partial / file).stat().st_size, "sha256": _sha256(partial / file)}
             for file in FILES.values()}
    record = {"name": name, "licence": licence, "files": files,
              "made_from": {"detector": str(detector), "classifier": str(classifier), "thresholds": str(thresholds)}}
    (partial / "release.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(partial, folder)
    return folder
