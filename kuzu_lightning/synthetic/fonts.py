"""The Japanese fonts: brush styles to render synthetic pages, IPAexGothic to draw recognised characters.

Shipped with the package, so no system font and no download is needed:

- five public-domain brush fonts by Kouzan and Soseki Aoyagi, subset to the Kaggle class table and
  the hentaigana source kanji (``kuzu_lightning/synthetic/brush_fonts/``, rebuilt by ``scripts/build_fonts.py``
  from Debian's packages; ``fonts.json`` lists what each covers): ``kaisho`` (brush block script),
  ``gyosho`` (semi-cursive), ``sousho`` (the cursive grass script), ``soseki`` and ``kouzan_t``;
- ``gothic``: IPAexGothic, a modern printed face, from the ``matplotlib-fontja`` package.
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

FONTS = Path(__file__).parent / "brush_fonts"


@lru_cache(maxsize=1)
def _manifest() -> dict[str, dict[str, str]]:
    return json.loads((FONTS / "fonts.json").read_text(encoding="utf-8"))


BRUSH_STYLES = ("kaisho", "gyosho", "sousho", "soseki", "kouzan_t")
STYLES = (*BRUSH_STYLES, "gothic")


def japanese_font_path() -> Path:
    """Path of IPAexGothic (``ipaexg.ttf``) from the installed ``matplotlib-fontja`` package."""
    spec = importlib.util.find_spec("matplotlib_fontja")
    path = Path(spec.origin).parent / "fonts" / "ipaexg.ttf" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise FileNotFoundError("the Japanese font ipaexg.ttf was not found: pip install matplotlib-fontja")
    return path


def font_path(style: str) -> Path:
    """The font file of ``style`` (one of :data:`STYLES`)."""
    if style == "gothic":
        return japanese_font_path()
    if style not in BRUSH_STYLES:
        raise ValueError(f"unknown font style {style!r}; the styles are {', '.join(STYLES)}")
    path = FONTS / _manifest()[style]["file"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the {style} font is missing from the installed package")
    return path


def brush_characters(style: str) -> str:
    """The characters the brush font ``style`` has (as listed in ``fonts.json``)."""
    return _manifest()[style]["characters"]


@lru_cache(maxsize=16)
def style_font(style: str, size: int) -> ImageFont.FreeTypeFont:
    """The font of ``style`` at ``size`` pixels (cached). Brush fonts are WOFF2, which Pillow's
    FreeType reads (the PyPI wheels build it with Brotli); opening one takes about 50 ms."""
    try:
        return ImageFont.truetype(str(font_path(style)), size)
    except OSError as error:
        raise OSError(f"{font_path(style)}: Pillow cannot open this WOFF2 font ({error}); "
                      "install Pillow from PyPI, whose FreeType reads WOFF2") from error


@lru_cache(maxsize=64)
def japanese_font(size: int) -> ImageFont.FreeTypeFont:
    """IPAexGothic at ``size`` pixels (cached)."""
    return ImageFont.truetype(str(japanese_font_path()), size)
