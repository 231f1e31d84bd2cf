"""Reading trained checkpoints: which model a file holds, its weights, the data settings it was trained with.

Checkpoints load with ``weights_only=True`` (plain tensors and values, no pickled code), memory-mapped.
A file that is missing, is no Lightning checkpoint, or holds another model is refused with an error
naming it.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch

from kuzu_lightning.pretrained import resolve

log = logging.getLogger(__name__)

SIGNATURES = {"CharDetector": "anchor_sizes", "CharClassifier": "codes"}
"""A hyper-parameter that only that model has, by model class name."""
KINDS = {"CharDetector": "detector", "CharClassifier": "classifier"}
"""Which checkpoint of a released model (:mod:`kuzu_lightning.pretrained`) each model class takes."""


def record_class(module: L.LightningModule, checkpoint: dict) -> None:
    """Name ``module``'s class in a checkpoint's hyper-parameters, as LightningCLI does for the models it builds,
    so that ``train.py ... --ckpt_path`` takes a checkpoint saved from Python too."""
    checkpoint.setdefault("hyper_parameters", {}).setdefault("_class_path",
                                                             f"{type(module).__module__}.{type(module).__qualname__}")


def read_checkpoint(path: str | Path) -> dict:
    """The contents of the checkpoint at ``path``, loaded with ``weights_only=True``; ``ValueError`` naming the file
    when it is not a checkpoint that loads so (no pickled code is ever run to read one)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # pickle, zip and torch errors alike: the file is not a checkpoint
        kind = type(error).__name__
        raise ValueError(f"{path} is not a Lightning checkpoint: torch.load(weights_only=True) cannot read it "
                         f"({kind})") from None
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} is not a Lightning checkpoint: it holds a {type(checkpoint).__name__}, not a dict")
    return checkpoint


def checkpoint_model(path: str | Path) -> str | None:
    """The class name of the model a checkpoint holds (``CharDetector``, ``CharClassifier``, or the one LightningCLI
    recorded), or None when the file cannot be read or does not say."""
    try:
        hparams = read_checkpoint(Path(path)).get("hyper_parameters") or {}
    except (ValueError, FileNotFoundError, AttributeError):
        return None
    if "_class_path" in hparams:
        return str(hparams["_class_path"]).rsplit(".", 1)[-1]
    return next((name for name, key in SIGNATURES.items() if key in hparams), None)


def load_trained(model_class: type[L.LightningModule], path: str | Path) -> tuple[L.LightningModule, dict]:
    """A ``model_class`` with the weights of the Lightning checkpoint at ``path``, in eval mode, and the
    hyper-parameters of the DataModule it was trained with (empty when not recorded).

    ``path`` may be a released model's name (:mod:`kuzu_lightning.pretrained`). Loaded with ``weights_only=True``;
    the network is built without downloading or reading pretrained weights (the checkpoint holds them). Raises
    ``ValueError`` naming the file when it is not a checkpoint of ``model_class`` (one of :data:`SIGNATURES`).
    """
    required = SIGNATURES[model_class.__name__]
    path = Path(resolve(path, KINDS[model_class.__name__]))
    if not path.is_file():
        raise FileNotFoundError(f"{model_class.__name__} checkpoint not found: {path}")
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or required not in hparams or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a {model_class.__name__} checkpoint (it has no '{required}' hyper-parameter)")
    hparams = {k: v for k, v in hparams.items() if not k.startswith("_")}
    # Built in an empty context: LightningCLI hands the config of the module it is instantiating (this
    # Recognizer) to save_hyperparameters() through a context variable, which a nested module would take.
    model = contextvars.Context().run(model_class, **{**hparams, "pretrained": False, "weights_path": None,
                                                      "init_from": None})
    missing, unexpected = model.load_state_dict(checkpoint["state_dict"], strict=False)
    # Pretrained backbones train with frozen batch norm, which has no batch counter; rebuilt without
    # pretrained weights they have ordinary batch norm, identical in eval mode.
    missing = [key for key in missing if not key.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{path}: its weights do not fit a {model_class.__name__} "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.on_load_checkpoint(checkpoint)
    return model.eval(), checkpoint.get("datamodule_hyper_parameters") or {}


def start_from(model: L.LightningModule, setting: str | Path) -> None:
    """Set ``model``'s weights to those of the trained checkpoint ``setting`` (or a released model's name): where
    fine-tuning starts. A classifier whose class table differs takes, for each of its classes, the heads' rows of
    that code where the checkpoint has one; its other classes keep their fresh start. ``ValueError`` naming the file
    when the networks differ otherwise."""
    name = type(model).__name__
    path = Path(resolve(setting, KINDS[name]))
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters") or {}
    if SIGNATURES[name] not in hparams or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a {name} checkpoint (it has no '{SIGNATURES[name]}' hyper-parameter)")
    own, state = model.state_dict(), dict(checkpoint["state_dict"])
    codes = list(hparams.get("codes") or ())
    if codes and codes != model.codes:
        rows = {code: i for i, code in enumerate(codes)}
        pairs = [(i, rows[code]) for i, code in enumerate(model.codes) if code in rows]
        for key in [key for key in state if "head.linear." in key and key in own]:
            merged = own[key].clone()
            if pairs:
                merged[[i for i, _ in pairs]] = state[key][[j for _, j in pairs]].to(merged.dtype)
            state[key] = merged
        log.info("%s: %d of the %d classes start from its heads' rows, the others afresh", path, len(pairs),
                 len(model.codes))
    misfits = [key for key in own if key in state and state[key].shape != own[key].shape]
    missing = [key for key in own if key not in state and not key.endswith("num_batches_tracked")]
    unexpected = [key for key in state if key not in own]
    if misfits or missing or unexpected:
        raise ValueError(f"{path}: its weights do not fit this {name} (other shapes {misfits[:3]}, missing "
                         f"{missing[:3]}, unexpected {unexpected[:3]}): fine-tune with the network it was trained as")
    model.load_state_dict({key: value.to(own[key].dtype) for key, value in state.items()}, strict=False)


def checkpoint_paths(setting: str | Path | Sequence[str | Path]) -> list[str]:
    """The paths of a checkpoint setting that holds one path or a list of them (an ensemble)."""
    paths = [setting] if isinstance(setting, (str, Path)) else list(setting)
    if not paths:
        raise ValueError("no checkpoint given")
    return [str(path) for path in paths]


def trained_data_settings(path: str | Path, kind: str) -> dict:
    """The hyper-parameters of the DataModule a ``kind`` (``detector`` or ``classifier``) checkpoint was trained
    with; ``path`` may be a released model's name. Empty when the file is missing, is no checkpoint or has none
    recorded (:func:`load_trained` then says why, naming the file)."""
    try:
        checkpoint = read_checkpoint(Path(resolve(path, kind)))
    except (ValueError, FileNotFoundError):
        return {}
    settings = checkpoint.get("datamodule_hyper_parameters") if isinstance(checkpoint, dict) else None
    return dict(settings) if isinstance(settings, dict) else {}
