"""``WandbLogger``: Lightning's W&B logger, without the ``anonymous=None`` it always passes to ``wandb.init``.

W&B (0.19 and later) deprecated that setting and prints "The anonymous setting has no effect" on
every run that is given it, even as None; this logger gives it only when ``anonymous=True`` is asked
for. Everything else is Lightning's :class:`lightning.pytorch.loggers.WandbLogger`.
"""

from __future__ import annotations

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger


class WandbLogger(LightningWandbLogger):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
