"""The ``LightningCLI`` of ``train.py`` (:class:`KuzuCLI`) and ``predict.py`` (:class:`RecognizeCLI`).

- The model and the data are chosen in the YAML by ``class_path`` (``kuzu_lightning.CharClassifier``
  with ``kuzu_lightning.CharDataModule``, ...).
- The class list is linked: the DataModule's ``codes`` become the model's ``codes`` when the model
  takes them, so ``num_classes`` is never typed twice.
- The whole resolved config is saved beside the logs and sent to every logger (W&B's run config).
- ``predict.py`` runs ``predict`` (the default) or ``validate`` of a Recognizer, with ``--output``,
  ``--json_dir`` and ``--pictures_dir`` for the :class:`~kuzu_lightning.callbacks.RecognitionWriter`.
"""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from kuzu_lightning.callbacks import RecognitionWriter


class LoggedConfig(SaveConfigCallback):
    """Writes ``config.yaml`` to the log folder and logs the resolved config as hyper-parameters."""

    def save_config(self, trainer, pl_module, stage) -> None:
        config = self.config.clone()
        config.pop("config", None)
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config.as_dict()})


class KuzuCLI(LightningCLI):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_callback", LoggedConfig)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        # Applied when the chosen model takes ``codes``; skipped for models that do not.
        parser.link_arguments("data.codes", "model.init_args.codes", apply_on="instantiate")


class RecognizeCLI(KuzuCLI):
    """``predict`` (the default subcommand) and ``validate`` of a :class:`~kuzu_lightning.Recognizer`."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {name: args for name, args in LightningCLI.subcommands().items() if name in ("predict", "validate")}

    @classmethod
    def default_subcommand(cls, argv: list[str]) -> list[str]:
        """``argv`` with ``predict`` in front when it names no subcommand."""
        return argv if argv and argv[0] in cls.subcommands() else ["predict", *argv]

    def add_arguments_to_parser(self, parser) -> None:
        super().add_arguments_to_parser(parser)
        parser.add_argument("--output", default="outputs/submission.csv", help="the Kaggle submission CSV (predict)")
        parser.add_argument("--json_dir", default=None, help="one JSON file per page here (predict)")
        parser.add_argument("--pictures_dir", default=None, help="one PNG per page here (predict)")

    def before_predict(self) -> None:
        config = self.config[self.subcommand]
        self.trainer.callbacks.append(RecognitionWriter(config.output, config.json_dir, config.pictures_dir))
        # Pages' records go to files as they come; keeping them all in memory too is not needed.
        if self.config_init[self.subcommand].get("return_predictions") is None:
            self.config_init[self.subcommand]["return_predictions"] = False
