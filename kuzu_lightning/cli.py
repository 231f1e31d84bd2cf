"""The ``LightningCLI`` of ``train.py`` (:class:`TrainCLI`) and ``predict.py`` (:class:`RecognizeCLI`), and the
shipped recipes they read (``kuzu train``, ``kuzu validate`` and ``kuzu predict`` run them by preset).

Configs are composed, each setting written once:

- ``configs/base/trainer.yaml`` (both commands) and ``configs/base/checkpoint.yaml`` (``train.py``)
  are read first, as defaults: the seed, one GPU at 16-mixed, the W&B logger, the best-``val/f1``
  and last checkpoints;
- then every ``--config`` in order, each overriding the ones before: a preset's files
  (:func:`preset_configs`: the recipe, ``configs/detector.yaml``, ..., then for the ``demo`` preset
  ``configs/demo/base.yaml`` (CPU, 32-bit, W&B offline, the synthetic data) and ``configs/demo/detector.yaml``
  (the demo's own changes), then for ``synthetic`` ``configs/synthetic/detector.yaml``), then one's own files;
- then the command line's ``--key value`` overrides.

The configs are package data (``kuzu_lightning/configs/``), so an installed package has them wherever it runs.
A run writes everything under ``trainer.default_root_dir`` (relative to the working folder): the W&B files
there (unless the logger is given its own ``save_dir``) and the checkpoints in its ``checkpoints/``.

The model and the data are chosen in the YAML by ``class_path`` (``kuzu_lightning.CharClassifier``
with ``kuzu_lightning.CharDataModule``, ...). The class list is linked: the DataModule's ``codes``
become the model's ``codes`` when the model takes them, so ``num_classes`` is never typed twice.
The whole resolved config is saved beside the logs and sent to every logger (W&B's run config).

``predict.py`` runs ``predict`` (the default) or ``validate`` of a Recognizer. ``predict`` writes each page's files
to ``--out`` (``--formats``) and the Kaggle submission to ``--csv`` (:class:`~kuzu_lightning.writer.PageWriter`).
The page scale and the book-wise split of its pages come from the detector's checkpoint unless given.
``kuzu validate recognizer --thresholds_out FILE`` writes the ``detection_threshold`` and ``min_confidence``
that scored best on the validation books as a config, which ``predict.py --config FILE`` reads.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from kuzu_lightning.adaptation_settings import SETTING_TYPES
from kuzu_lightning.models.checkpoints import (
    SIGNATURES,
    checkpoint_model,
    checkpoint_paths,
    read_checkpoint,
    trained_data_settings,
)
from kuzu_lightning.random_states import RandomStates
from kuzu_lightning.thresholds import load_yaml, thresholds_in
from kuzu_lightning.tools.options import ADAPTATION_HELP, FORMATS_HELP, HTML_HELP, checked_adaptation
from kuzu_lightning.writer import PageWriter, check_writable, parse_formats

log = logging.getLogger(__name__)

CONFIGS = Path(__file__).resolve().parent / "configs"
"""The shipped configs (package data)."""
RECIPES = ("detector", "classifier", "recognizer")
"""The shipped recipes, one per model: ``configs/{recipe}.yaml``."""
PRESETS = ("real", "demo", "synthetic")
"""``real``: the recipe as it is (the Kaggle data, one GPU); ``demo``: with the demo's overrides (the built-in
synthetic data on a CPU); ``synthetic``: with the synthetic pre-training recipe on top of the demo's (more pages,
longer)."""
SPLIT_AND_SCALE = ("eval_longest_side", "n_folds", "fold", "val_books")
"""The data settings ``predict.py`` takes from the detector's checkpoint unless they are given."""


def run(cli_class: type[ProjectCLI], args: list[str] | None = None) -> ProjectCLI:
    """Run ``cli_class`` with ``args`` (default: the command line) and return it; when it fails, print the traceback,
    then the innermost cause as the last line, and exit with status 1.

    jsonargparse wraps an error raised while building the model or the data (a refused checkpoint,
    say) in its own, which ends with a dump of the config; the reason belongs at the end, where a
    person, or a log reader, looks first.
    """
    try:
        return cli_class(args=args)
    except Exception as error:  # reported below, and through the exit status
        cause = error
        while (inner := cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)) is not None:
            cause = inner
        traceback.print_exc()
        print(f"error: {cause}", file=sys.stderr)
        sys.exit(1)


def show_project_logs() -> None:
    """Print the project's own INFO messages ("wrote submission.csv", skipped pages, ...), as Lightning prints
    its own, unless the program has set up logging itself."""
    project = logging.getLogger("kuzu_lightning")
    if not logging.getLogger().handlers and not project.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        project.addHandler(handler)
        project.setLevel(logging.INFO)


def preset_configs(recipe: str, preset: str = "real") -> list[Path]:
    """The shipped config files of ``recipe`` (one of :data:`RECIPES`) under ``preset`` (one of :data:`PRESETS`), in
    the order they are read."""
    if recipe not in RECIPES or preset not in PRESETS:
        raise ValueError(f"no shipped recipe {recipe!r} with preset {preset!r}: the recipes are {', '.join(RECIPES)}, "
                         f"the presets {', '.join(PRESETS)}")
    files = [CONFIGS / f"{recipe}.yaml"]
    if preset in ("demo", "synthetic"):
        files += [CONFIGS / "demo" / "base.yaml", CONFIGS / "demo" / f"{recipe}.yaml"]
    if preset == "synthetic":
        files.append(CONFIGS / "synthetic" / f"{recipe}.yaml")
    return files


def recipe(name: str, preset: str = "real") -> list[str]:
    """The ``--config`` arguments of the shipped recipe ``name`` under ``preset`` (see :func:`preset_configs`)."""
    return [argument for path in preset_configs(name, preset) for argument in ("--config", str(path))]


class LoggedConfig(SaveConfigCallback):
    """Writes ``config.yaml`` to the log folder and logs the resolved config as hyper-parameters."""

    def save_config(self, trainer, pl_module, stage) -> None:
        config = self.config.clone()
        config.pop("config", None)
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config.as_dict()})


class ProjectCLI(LightningCLI):
    """What both commands share: subclass mode, the base configs, the logged config, the output folder."""

    BASE_CONFIGS: tuple[str, ...] = ("trainer.yaml",)

    def __init__(self, *args, **kwargs):
        show_project_logs()
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_callback", LoggedConfig)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        base = {"default_config_files": [str(CONFIGS / "base" / name) for name in self.BASE_CONFIGS]}
        per_subcommand = kwargs.get("run", True)  # run=False parses one config without a subcommand
        kwargs.setdefault("parser_kwargs", {name: base for name in self.subcommands()} if per_subcommand else base)
        super().__init__(*args, **kwargs)

    def parse_arguments(self, parser, args) -> None:
        """Parse ``args`` (default: the command line). Given ``args`` are taken as they are, without LightningCLI's
        warning about a command line beside them: ``kuzu`` translates its own command line into them, and the demo
        runs several CLIs in one process."""
        self.config = parser.parse_args(args)

    @property
    def settings(self) -> Namespace:
        """The parsed config of the subcommand (or of the whole command with ``run=False``)."""
        subcommand = self.config.get("subcommand")
        return self.config[subcommand] if subcommand else self.config

    def add_arguments_to_parser(self, parser) -> None:
        # Applied when the chosen model takes ``codes``; skipped for models that do not.
        parser.link_arguments("data.codes", "model.init_args.codes", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        trainer = self.settings.trainer
        logger = trainer.logger
        if not isinstance(logger, Namespace) or "save_dir" not in logger.init_args:
            return
        if logger.init_args.save_dir in (None, ".") and trainer.default_root_dir is not None:
            logger.init_args.save_dir = str(trainer.default_root_dir)
        # Made now: W&B looks for a git repository from it when the run starts, and warns when it is missing.
        Path(logger.init_args.save_dir or ".").mkdir(parents=True, exist_ok=True)


class TrainCLI(ProjectCLI):
    """``train.py``: fit, validate, test or predict one model.

    Two checkpoints in ``trainer.default_root_dir/checkpoints``: the best ``val/f1`` (``--checkpoint.*``)
    and ``last.ckpt``, the latest state, written every ``--last_checkpoint.every_n_train_steps`` steps and
    at the end of each epoch, so that ``--ckpt_path last`` resumes where the run stopped. Every checkpoint
    also holds the random generators' states (:class:`~kuzu_lightning.random_states.RandomStates`).
    """

    BASE_CONFIGS = ("trainer.yaml", "checkpoint.yaml")

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("trainer_defaults", {"callbacks": [RandomStates()]})
        super().__init__(*args, **kwargs)

    def parse_arguments(self, parser, args) -> None:
        """Refuse a ``--ckpt_path`` file that is no checkpoint, or a checkpoint of another model than the config's,
        naming the file (and both models), before LightningCLI reads its hyper-parameters (and with them, its model)."""
        super().parse_arguments(parser, args)
        config = self.settings
        path = config.get("ckpt_path")
        if not path or not Path(path).is_file() or not isinstance(config.get("model"), Namespace):
            return
        read_checkpoint(path)  # a file that is no checkpoint is refused, by name
        held, configured = checkpoint_model(path), config.model.class_path.rsplit(".", 1)[-1]
        if held in SIGNATURES and configured in SIGNATURES and held != configured:
            raise ValueError(f"{path} is a {held} checkpoint, but the config trains a {configured}: use the "
                             f"{held.removeprefix('Char').lower()}'s config with it")

    def add_arguments_to_parser(self, parser) -> None:
        super().add_arguments_to_parser(parser)
        for group in ("checkpoint", "last_checkpoint"):
            parser.add_lightning_class_args(ModelCheckpoint, group)
            parser.link_arguments("trainer.default_root_dir", f"{group}.dirpath",
                                  compute_fn=lambda root: str(Path(root or ".") / "checkpoints"))


class RecognizeCLI(ProjectCLI):
    """``predict`` (the default subcommand) and ``validate`` of a :class:`~kuzu_lightning.Recognizer`."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {name: args for name, args in LightningCLI.subcommands().items() if name in ("predict", "validate")}

    def parse_arguments(self, parser, args) -> None:
        """Check the thresholds of every ``--config`` file, naming the file and the key of one out of range, before
        the parser (which names the key alone) and before any model loads."""
        arguments = sys.argv[1:] if args is None else list(args)
        files = [value for flag, value in zip(arguments, arguments[1:]) if flag in ("--config", "-c")]
        files += [argument.removeprefix("--config=") for argument in arguments if argument.startswith("--config=")]
        for path in map(Path, files):
            if path.is_file():
                thresholds_in(path, load_yaml(path))
        super().parse_arguments(parser, args)

    @classmethod
    def default_subcommand(cls, argv: list[str]) -> list[str]:
        """``argv`` with ``predict`` in front when it names no subcommand."""
        return argv if argv and argv[0] in cls.subcommands() else ["predict", *argv]

    def add_arguments_to_parser(self, parser) -> None:
        super().add_arguments_to_parser(parser)
        parser.add_argument("--out", default="outputs/pages",
                            help="predict: each page's files go here, {image_id}.json and the --formats asked for")
        parser.add_argument("--formats", default="json,txt", help=f"predict: {FORMATS_HELP}")
        parser.add_argument("--csv", default="outputs/submission.csv", help="predict: the Kaggle submission CSV")
        parser.add_argument("--html", type=bool, default=False, help=f"predict: {HTML_HELP}")
        parser.add_argument("--thresholds_out", default=None,
                            help="validate: write the best detection_threshold and min_confidence of the grid here, "
                                 "as a config for predict (--config FILE)")
        parser.add_argument("--adapt", type=bool, default=False,
                            help="predict: adapt the classifiers to each book (the Kaggle book id) on its test pages "
                                 "first; the adapted checkpoints are kept in --out, one folder per book")
        for name, text in ADAPTATION_HELP.items():
            parser.add_argument(f"--adapt_{name}", type=SETTING_TYPES[name] | None, default=None,
                                help=f"predict --adapt: {text}")

    def before_instantiate_classes(self) -> None:
        """Page scale and split as the detector was validated with, unless the config or command line set them."""
        super().before_instantiate_classes()
        config = self.settings
        subcommand = self.config.get("subcommand")
        if subcommand == "predict":  # what would fail at the end fails now, before the models load
            parse_formats(config.formats)
            check_writable(Path(config.out), "the pages' files")
            check_writable(Path(config.csv).parent, "the submission")
        if subcommand == "validate" and config.thresholds_out:
            check_writable(Path(config.thresholds_out).parent, "the thresholds")
        data = config.data.init_args
        if not all(key in data for key in SPLIT_AND_SCALE):
            return
        detector = trained_data_settings(checkpoint_paths(config.model.init_args.detector_ckpt)[0], "detector")
        classifier = trained_data_settings(checkpoint_paths(config.model.init_args.classifier_ckpt)[0], "classifier")
        for key in SPLIT_AND_SCALE:
            if data[key] is None and detector.get(key) is not None:
                data[key] = detector[key]
        split = ("n_folds", "fold", "val_books")
        if detector and classifier and any(detector.get(k) != classifier.get(k) for k in split):
            log.warning("the detector and the classifier were trained on different book-wise splits (%s against %s): "
                        "validation pages of one may have been trained on by the other",
                        {k: detector.get(k) for k in split}, {k: classifier.get(k) for k in split})

    def before_predict(self) -> None:
        config = self.config[self.subcommand]
        self.trainer.callbacks.append(PageWriter(config.out, parse_formats(config.formats), config.csv,
                                                 html=config.html))
        if config.adapt:
            self.adapt(config)
        # Pages' records go to files as they come; keeping them all in memory too is not needed.
        if self.config_init[self.subcommand].get("return_predictions") is None:
            self.config_init[self.subcommand]["return_predictions"] = False

    def adapt(self, config: Namespace) -> None:
        """Book adaptation before the prediction (:func:`~kuzu_lightning.adaptation.adapt_books`): the pages are read
        book by book, each with its book's adapted classifiers."""
        from kuzu_lightning.adaptation import adapt_books

        settings = checked_adaptation({name: config[f"adapt_{name}"] for name in ADAPTATION_HELP
                                       if config[f"adapt_{name}"] is not None})
        if self.trainer.world_size > 1 or self.datamodule.hparams.eval_batch_size != 1:
            raise SystemExit("error: --adapt reads one page a batch on one device (--data.eval_batch_size 1, "
                             "--trainer.devices 1)")
        self.datamodule.prepare_data()
        pages = self.datamodule.predict_pages()
        trainer = config.trainer
        ordered, weights, _ = adapt_books(self.model, pages, pages, Path(config.out), settings,
                                          {"accelerator": trainer.accelerator, "precision": trainer.precision},
                                          self.datamodule.hparams.num_workers)
        self.datamodule.scans = ordered
        self.trainer.callbacks.append(weights)

    def after_validate(self) -> None:
        out = self.config[self.subcommand].thresholds_out
        if out and self.trainer.is_global_zero and self.model.best_thresholds is not None:
            write_thresholds(Path(out), self.model)
            log.info("best thresholds on the validation books written to %s", out)


def write_thresholds(path: Path, recognizer) -> None:
    """The ``detection_threshold`` and ``min_confidence`` that scored best in ``recognizer``'s last validation, as a
    config for ``predict.py --config PATH``, with the checkpoints and the F1 they were chosen with."""
    best, settings = recognizer.best_thresholds, recognizer.hparams
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# Chosen by `kuzu validate recognizer` on the validation books: end-to-end F1 {best['f1']:.4f}, the best of the\n"
        f"# grid {list(settings.threshold_grid)} x {list(settings.confidence_grid)}, for the checkpoints\n"
        f"#   detector:   {settings.detector_ckpt}\n#   classifier: {settings.classifier_ckpt}\n"
        f"# Read by: kuzu predict ... --config {path} (or python predict.py --config ... --config {path})\n"
        f"model:\n  init_args:\n    detection_threshold: {best['detection_threshold']}\n"
        f"    min_confidence: {best['min_confidence']}\n")
