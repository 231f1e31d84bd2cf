"""The command-line options that every command reading pages spells the same way and that take one value or more:
``--detector`` and ``--classifier`` (several checkpoints: an ensemble), ``--page_scales``, ``--crop_shifts`` and
``--crop_scales`` (test-time augmentation; see :mod:`kuzu_lightning.ensemble`); and book adaptation's, ``--adapt`` and
``--adapt_*`` (:mod:`kuzu_lightning.adaptation`). Imports neither torch nor Lightning."""

from __future__ import annotations

import argparse
from dataclasses import fields

from kuzu_lightning.adaptation_settings import SETTING_TYPES, AdaptationSettings


def crop_views(shifts: list[float] | None, scales: list[float] | None) -> tuple[tuple[float, float, float], ...] | None:
    """The Recognizer's ``crop_views`` of ``--crop_shifts`` and ``--crop_scales``: the box itself, the box moved by each
    shift left, right, up and down (a share of its width or height), and the box scaled by each scale about its
    centre; None when neither option is given."""
    if not shifts and not scales:
        return None
    for scale in scales or ():
        if not scale > 0:
            raise ValueError(f"--crop_scales must be above 0, not {scale}")
    moved = [view for shift in shifts or () for view in ((shift, 0.0, 1.0), (-shift, 0.0, 1.0), (0.0, shift, 1.0),
                                                           (0.0, -shift, 1.0))]
    return ((0.0, 0.0, 1.0), *moved, *((0.0, 0.0, float(scale)) for scale in scales or ()))


FORMATS_HELP = ("what to write per page, comma-separated: json (always), txt (its text in reading order), page "
                "(PAGE XML), alto (ALTO v4) and png (the scan beside its transcription)")


HTML_HELP = "also write a static site to browse the pages in a web browser (OUT/index.html)"


ENSEMBLE_OPTIONS = {  # the options that take one value or more: how each value is shown and read
    "detector": ("CKPT", str), "classifier": ("CKPT", str), "page_scales": ("FACTOR", float),
    "crop_shifts": ("SHARE", float), "crop_scales": ("FACTOR", float),
}


TEST_TIME_HELP = {
    "page_scales": "detect at these factors of the detector's page size, boxes fused (default 1)",
    "crop_shifts": "also classify each character with its box moved left, right, up and down by these shares of its "
                   "size, probabilities averaged",
    "crop_scales": "also classify each character with its box scaled by these factors, probabilities averaged",
}


def add_test_time_options(parser: argparse.ArgumentParser) -> None:
    """``--page_scales``, ``--crop_shifts`` and ``--crop_scales``."""
    for option, text in TEST_TIME_HELP.items():
        add_ensemble_option(parser, option, help=text)


def test_time_settings(args: argparse.Namespace) -> dict:
    """The Recognizer's ``page_scales`` and ``crop_views`` of those options, where given."""
    settings = {"page_scales": tuple(args.page_scales)} if args.page_scales else {}
    views = crop_views(args.crop_shifts, args.crop_scales)
    return {**settings, "crop_views": views} if views else settings


def add_ensemble_option(parser: argparse.ArgumentParser, option: str, **kwargs) -> None:
    """One of :data:`ENSEMBLE_OPTIONS`: one value or more (an ensemble, a test-time augmentation), spelled the same in
    every command that reads pages."""
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


ADAPTATION_HELP = {
    "steps": "fine-tuning steps per book, at most (0: batch-norm statistics only)",
    "epochs": "passes over a book's confident characters, at most",
    "confidence": "fine-tune on the characters read with this probability or more",
    "lr": "the fine-tuning's learning rate",
    "batch_size": "crops per fine-tuning step",
    "batchnorm": "re-estimate batch-norm statistics on the book's characters (AdaBN)",
}


def add_adaptation_options(parser: argparse.ArgumentParser) -> None:
    """``--adapt`` and ``--adapt_steps``, ``--adapt_epochs``, ``--adapt_confidence``, ``--adapt_lr``,
    ``--adapt_batch_size``, ``--adapt_batchnorm`` / ``--no-adapt_batchnorm`` (defaults: :class:`AdaptationSettings`)."""
    parser.add_argument("--adapt", action="store_true",
                        help="adapt the classifiers to each book on its own pages first (AdaBN; with --adapt_steps, "
                             "self-training too), keeping the adapted checkpoints beside the book's outputs")
    for field in fields(AdaptationSettings):
        if field.name not in ADAPTATION_HELP:
            continue
        text = f"{ADAPTATION_HELP[field.name]} (default {field.default})"
        if SETTING_TYPES[field.name] is bool:
            parser.add_argument(f"--adapt_{field.name}", action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            parser.add_argument(f"--adapt_{field.name}", type=SETTING_TYPES[field.name], metavar=field.name.upper(),
                                help=text)


def adaptation_settings(args: argparse.Namespace) -> AdaptationSettings | None:
    """The :class:`AdaptationSettings` of ``--adapt_*`` when ``--adapt`` is given, else None; ``SystemExit`` naming the
    setting out of range."""
    given = {name: getattr(args, f"adapt_{name}") for name in ADAPTATION_HELP
             if getattr(args, f"adapt_{name}", None) is not None}
    if not args.adapt:
        if given:
            raise SystemExit(f"error: --adapt_{next(iter(given))} needs --adapt")
        return None
    return checked_adaptation(given)


def checked_adaptation(given: dict) -> AdaptationSettings:
    """The :class:`AdaptationSettings` of the settings ``given`` (the others at their defaults); ``SystemExit`` naming
    a setting out of range."""
    try:
        return AdaptationSettings(**given)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
