"""The recognizer's two thresholds, ``detection_threshold`` and ``min_confidence``: numbers between 0 and 1, checked
wherever they are given (the command line, a config file, Python) before any model loads, the error naming the file
and the key."""

from __future__ import annotations

import math
from pathlib import Path

import yaml

THRESHOLDS = ("detection_threshold", "min_confidence")
KEYS = "model.init_args.detection_threshold and model.init_args.min_confidence"


def unit_interval(name: str, value) -> float:
    """``value`` as a float between 0 and 1; ``ValueError`` naming ``name`` if it is not one (NaN included)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be a number between 0 and 1, not {value!r}")
    return number


def load_yaml(path: Path) -> object:
    """The YAML of ``path``; ``ValueError`` naming the file when it cannot be read or parsed."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot be read ({error})") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not readable YAML ({getattr(error, 'problem', None) or error})") from None


def thresholds_in(path: Path, config: object) -> dict[str, float]:
    """The thresholds a config (the parsed YAML of ``path``) sets under ``model.init_args``, checked; ``ValueError``
    naming the file and the key for one that is not a number between 0 and 1."""
    model = config.get("model") if isinstance(config, dict) else None
    settings = model.get("init_args") if isinstance(model, dict) else None
    if not isinstance(settings, dict):
        return {}
    try:
        return {key: unit_interval(key, settings[key]) for key in THRESHOLDS if key in settings}
    except ValueError as error:
        raise ValueError(f"{path}: model.init_args.{error}") from None


def read_thresholds(path: Path) -> dict[str, float]:
    """The thresholds of a file as ``kuzu validate recognizer --thresholds_out`` writes it, which holds nothing else:
    ``ValueError`` naming the file and the key for broken YAML, an unknown key or a value out of range."""
    config = load_yaml(path)
    if config is None:
        return {}
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise ValueError(f"{path}: a thresholds file holds {KEYS}")
    settings = config["model"].get("init_args")
    unknown = [key for key in config if key != "model"] + [f"model.{key}" for key in config["model"]
                                                          if key != "init_args"]
    unknown += [f"model.init_args.{key}" for key in settings if key not in THRESHOLDS] if isinstance(settings, dict) \
        else []
    if unknown or not isinstance(settings, dict):
        raise ValueError(f"{path}: unknown key {unknown[0] if unknown else 'model.init_args'}; a thresholds file holds "
                         f"{KEYS}")
    return thresholds_in(path, config)
