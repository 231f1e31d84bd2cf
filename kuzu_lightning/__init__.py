"""kuzu_lightning: Kuzushiji recognition with PyTorch Lightning.

A page scan goes in; every character on it comes out as a Unicode code point with its position,
scored by the Kaggle "Kuzushiji Recognition" (2019) F1.

The public names below are imported on first use, not with the package: a command that needs no
model (``kuzu score``, ``kuzu synthetic``) starts without torch and Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_PUBLIC = {
    "CharClassifier": "kuzu_lightning.models.classifier",
    "CharDataModule": "kuzu_lightning.data.chars",
    "CharDetector": "kuzu_lightning.models.detector",
    "Character": "kuzu_lightning.records",
    "KuzushijiF1": "kuzu_lightning.kuzushiji_f1",
    "PageDataModule": "kuzu_lightning.data.pages",
    "RecognizedPage": "kuzu_lightning.records",
    "Recognizer": "kuzu_lightning.models.recognizer",
}
__all__ = ["CharClassifier", "CharDataModule", "CharDetector", "Character", "KuzushijiF1", "PageDataModule",
           "RecognizedPage", "Recognizer"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports them
    from kuzu_lightning.data.chars import CharDataModule
    from kuzu_lightning.data.pages import PageDataModule
    from kuzu_lightning.kuzushiji_f1 import KuzushijiF1
    from kuzu_lightning.models.classifier import CharClassifier
    from kuzu_lightning.models.detector import CharDetector
    from kuzu_lightning.models.recognizer import Recognizer
    from kuzu_lightning.records import Character, RecognizedPage


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'kuzu_lightning' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
