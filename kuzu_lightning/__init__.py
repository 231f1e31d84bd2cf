"""kuzu_lightning: Kuzushiji recognition with PyTorch Lightning.

A page scan goes in; every character on it comes out as a Unicode code point with its position,
scored by the Kaggle "Kuzushiji Recognition" (2019) F1.
"""

from kuzu_lightning.data.chars import CharDataModule
from kuzu_lightning.data.pages import PageDataModule
from kuzu_lightning.metrics import KuzushijiF1
from kuzu_lightning.models.classifier import CharClassifier
from kuzu_lightning.models.detector import CharDetector
from kuzu_lightning.models.recognizer import Character, Recognizer

__all__ = ["CharClassifier", "CharDataModule", "CharDetector", "Character", "KuzushijiF1", "PageDataModule",
           "Recognizer"]
__version__ = "0.1.0"
