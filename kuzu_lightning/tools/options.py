"""The command-line options that every command reading pages spells the same way and that take one value or more:
``--detector`` and ``--classifier`` (several checkpoints: an ensemble), ``--page_scales`` and ``--crop_views``
(test-time augmentation; see :mod:`kuzu_lightning.ensemble`). Imports neither torch nor Lightning."""

from __future__ import annotations

import argparse


def parse_view(text: str) -> tuple[float, float, float]:
    """A crop view ``(dx, dy, scale)`` from its command-line spelling ``DX,DY,SCALE`` (``0.05,0,1``)."""
    try:
        dx, dy, scale = (float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"a crop view is DX,DY,SCALE (three numbers, e.g. 0.05,0,1), not {text!r}") from None
    if not scale > 0:
        raise ValueError(f"a crop view's scale must be above 0, not {scale} (in {text!r})")
    return dx, dy, scale


ENSEMBLE_OPTIONS = {  # the options that take one value or more: how each value is shown and read
    "detector": ("CKPT", str), "classifier": ("CKPT", str), "page_scales": ("FACTOR", float),
    "crop_views": ("DX,DY,SCALE", parse_view),
}


def add_ensemble_option(parser: argparse.ArgumentParser, option: str, **kwargs) -> None:
    """``--detector``, ``--classifier``, ``--page_scales`` or ``--crop_views``: one value or more (an ensemble, a
    test-time augmentation), spelled the same in every command that reads pages."""
    metavar, convert = ENSEMBLE_OPTIONS[option]
    parser.add_argument(f"--{option}", nargs="+", metavar=metavar, type=argument_type(convert), **kwargs)


def argument_type(convert):
    """``convert`` for argparse: its ``ValueError`` becomes the usage error, with its own message."""

    def parse(text: str):
        try:
            return convert(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    parse.__name__ = getattr(convert, "__name__", "value")
    return parse
