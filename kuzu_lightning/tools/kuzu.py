"""``kuzu``: one command for every job, a subcommand each (also ``python -m kuzu_lightning``).

Each subcommand is a module of :mod:`kuzu_lightning.tools` (or an object in one, ``module:name``) with
``add_arguments(parser)`` and ``run(args)``, imported only when it is the one asked for, so that ``kuzu --help``
and the commands that need no model start without torch. Flags are spelled one way across subcommands, with
underscores as LightningCLI spells its own: ``--data_dir``, ``--out``, ``--csv``, ``--formats``, ``--detector``,
``--classifier``, ``--detection_threshold``, ``--min_confidence``, ``--page_scales``, ``--crop_shifts``,
``--crop_scales``, ``--accelerator``, ``--devices``, ``--precision``, ``--num_workers``, ``--real_data``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from kuzu_lightning import __version__

COMMANDS = {  # name: (module in kuzu_lightning.tools, one line of help)
    "demo": ("demo", "the whole pipeline on synthetic pages on a CPU: data, both models, validation, test pages, F1"),
    "synthetic": ("synthetic_pages", "write a Kaggle-layout dataset of synthetic brush-written pages"),
    "train": ("recipes:train", "train the detector or the classifier from a shipped recipe (LightningCLI fit)"),
    "validate": ("recipes:validate", "validate a model, or both together end to end, on the validation books"),
    "predict": ("recipes:predict", "recognise a Kaggle-layout folder's test pages: a submission and each page's files"),
    "recognize": ("recognize", "transcribe scans and PDFs: each page's JSON, text, PAGE XML, ALTO, picture, and a "
                               "site to browse them (resumable)"),
    "codh": ("codh", "CODH books as a Kaggle-layout folder, to train or fine-tune on"),
    "score": ("score", "the competition F1 of a submission against a solution"),
    "out-of-fold": ("out_of_fold", "the detected boxes of the training pages, each page read out of fold"),
    "baseline": ("baseline", "the model-free ink-blob baseline on a folder's test pages"),
    "benchmark": ("benchmark", "speed benchmarks, and accuracy on real pages and in reading order"),
    "statistics": ("page_statistics", "layout statistics of labelled real pages against synthetic ones"),
}


def tool(command: str):
    """The module (or object) that implements ``command``."""
    module, _, name = COMMANDS[command][0].partition(":")
    found = importlib.import_module(f"kuzu_lightning.tools.{module}")
    return getattr(found, name) if name else found


def parser_for(command: str | None) -> argparse.ArgumentParser:
    """The ``kuzu`` parser, with the arguments of ``command`` (the others are listed, not built)."""
    parser = argparse.ArgumentParser(prog="kuzu", description="Kuzushiji recognition with PyTorch Lightning.",
                                     epilog="`kuzu COMMAND --help` tells more about each.")
    parser.add_argument("--version", action="version", version=f"kuzu_lightning {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_line) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_line, description=help_line)
        if name == command:
            implementation = tool(name)
            implementation.add_arguments(sub)
            sub.set_defaults(run=implementation.run)
    return parser


def run(argv: list[str] | None = None):
    """Run ``kuzu`` with ``argv`` (default: the command line); returns what the subcommand returns."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = parser_for(command if command in COMMANDS else None)
    if command in COMMANDS and getattr(tool(command), "passes_on_arguments", False):
        args, rest = parser.parse_known_args(argv)
        args.passed_on = rest  # LightningCLI's options
    else:
        args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return args.run(args)


def main() -> int:
    """The console script: ``kuzu`` with the command line. The exit status is the subcommand's ``exit_status`` of what
    it returns where it has one (``recognize``: 1 when an input failed), else 0. Bad input or settings (a
    ``ValueError`` or ``OSError``, whose message names the file and the row or key) end it with that message as the
    last line and status 1; anything else raises, with its traceback."""
    argv = sys.argv[1:]
    try:
        result = run(argv)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    return getattr(tool(command), "exit_status", lambda _: 0)(result)
