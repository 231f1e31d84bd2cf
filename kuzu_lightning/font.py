"""The Japanese font used to render synthetic pages and to draw recognised characters.

IPAexGothic, shipped inside the ``matplotlib-fontja`` package (a declared dependency), so no
system font or download is needed.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont


def japanese_font_path() -> Path:
    """Path of IPAexGothic (``ipaexg.ttf``) from the installed ``matplotlib-fontja`` package."""
    spec = importlib.util.find_spec("matplotlib_fontja")
    path = Path(spec.origin).parent / "fonts" / "ipaexg.ttf" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise FileNotFoundError("the Japanese font ipaexg.ttf was not found: pip install matplotlib-fontja")
    return path


@lru_cache(maxsize=64)
def japanese_font(size: int) -> ImageFont.FreeTypeFont:
    """IPAexGothic at ``size`` pixels (cached)."""
    return ImageFont.truetype(str(japanese_font_path()), size)
