"""The ``LightningCLI`` shared by ``train.py`` and ``predict.py``.

- The model and the data are chosen in the YAML by ``class_path`` (``kuzu_lightning.CharClassifier``
  with ``kuzu_lightning.CharDataModule``, ...).
- The class list is linked: the DataModule's ``codes`` become the model's ``codes`` when the model
  takes them, so ``num_classes`` is never typed twice.
- The whole resolved config is saved beside the logs and sent to every logger (W&B's run config).
"""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI, SaveConfigCallback


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
