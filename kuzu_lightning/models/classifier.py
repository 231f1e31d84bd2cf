"""``CharClassifier``: the LightningModule around :class:`~kuzu_lightning.models.two_head_se.TwoHeadSE`.

Loss: ``head_weights[0] * CE(plain head) + head_weights[1] * CE(SE head)`` (optional label
smoothing). Probabilities: the mean of both heads' softmaxes. Logged: ``train/loss``, ``train/lr``,
``val/loss``, top-1 and top-5 accuracy of each head (``val/top1_plain``, ``val/top1_se``, ...)
and of the combination (``val/top1``, ``val/top5``), and ``val/f1``: the competition F1 over the
validation pages when every ground-truth box is classified (a box classified ``unk`` counts as
not predicted). ``test`` logs the same under ``test/``.

Hyper-parameters are plain values (``codes`` is the class list, linked from the DataModule), so
checkpoints load with ``weights_only=True`` and carry their own vocabulary.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from kuzu_lightning.data.vocabulary import UNK
from kuzu_lightning.kuzushiji_f1 import KuzushijiF1
from kuzu_lightning.models.checkpoints import record_class, start_from
from kuzu_lightning.models.optim import build_optimizer, build_schedule
from kuzu_lightning.models.two_head_se import TwoHeadSE


def mean_probabilities(plain: torch.Tensor, se: torch.Tensor) -> torch.Tensor:
    """The prediction of the two heads: the mean of their softmaxes (in float32 under mixed precision)."""
    return (plain.float().softmax(1) + se.float().softmax(1)) / 2


class CharClassifier(L.LightningModule):
    """Two-head Xception + SE character classifier.

    Args:
        codes: class index -> code point (``unk`` last when the data has that class).
        backbone, pretrained, weights_path, dropout, se_reduction: the network, see ``TwoHeadSE``.
        head_weights: weights of the plain and SE heads' cross-entropies.
        label_smoothing: of both cross-entropies.
        optimizer, lr, weight_decay, momentum: see :func:`~kuzu_lightning.models.optim.build_optimizer`.
        schedule, warmup_steps: see :func:`~kuzu_lightning.models.optim.lr_factor`.
        top_k: how many candidates ``predict_step`` returns per crop.
        init_from: start from the weights of this trained checkpoint, or released model's name (fine-tuning; a class
            of another class table starts afresh, see :func:`~kuzu_lightning.models.checkpoints.start_from`).
    """

    def __init__(self, codes: list[str], backbone: str = "legacy_xception", pretrained: bool = False,
                 weights_path: str | None = None, dropout: float = 0.5, se_reduction: int = 16,
                 head_weights: tuple[float, float] = (1.0, 1.0), label_smoothing: float = 0.0,
                 optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0, momentum: float = 0.9,
                 schedule: str = "cosine", warmup_steps: int = 500, top_k: int = 5, init_from: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.codes = list(codes)
        self.network = TwoHeadSE(len(self.codes), backbone, pretrained, weights_path, dropout, se_reduction)
        self.unk_index = self.codes.index(UNK) if UNK in self.codes else None
        if init_from:
            start_from(self, init_from)
        k = min(5, len(self.codes))
        accuracy = MetricCollection({
            f"top{n}{head}": MulticlassAccuracy(len(self.codes), top_k=n, average="micro")
            for n in sorted({1, k}) for head in ("", "_plain", "_se")
        })
        self.val_accuracy = accuracy.clone(prefix="val/")
        self.test_accuracy = accuracy.clone(prefix="test/")
        self.val_f1 = KuzushijiF1()
        self.test_f1 = KuzushijiF1()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``B x C``: the mean of both heads' softmaxes."""
        return mean_probabilities(*self.network(images))

    def loss(self, plain: torch.Tensor, se: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        w_plain, w_se = self.hparams.head_weights
        smoothing = self.hparams.label_smoothing
        return (w_plain * F.cross_entropy(plain.float(), labels, label_smoothing=smoothing)
                + w_se * F.cross_entropy(se.float(), labels, label_smoothing=smoothing))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        plain, se = self.network(batch["images"])
        loss = self.loss(plain, se, batch["labels"])
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])
        return loss

    def _evaluate(self, batch: dict, stage: str, accuracy: MetricCollection, f1: KuzushijiF1) -> torch.Tensor:
        plain, se = self.network(batch["images"])
        labels = batch["labels"]
        self.log(f"{stage}/loss", self.loss(plain, se, labels), batch_size=len(labels), sync_dist=True)
        probabilities = mean_probabilities(plain, se)
        for name, metric in accuracy.items():
            scores = {"plain": plain, "se": se}.get(name.rsplit("_", 1)[-1], probabilities)
            metric.update(scores, labels)
        self.log_dict(accuracy, batch_size=len(labels))
        predicted = probabilities.argmax(1)
        preds, target = [], []
        for page in range(len(batch["image_ids"])):
            chars = (batch["page"] == page) & batch["is_char"]
            kept = chars & (predicted != self.unk_index) if self.unk_index is not None else chars
            preds.append({"boxes": batch["boxes"][kept], "labels": predicted[kept]})
            target.append({"boxes": batch["boxes"][chars], "labels": labels[chars]})
        f1.update(preds, target)
        return probabilities

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, "val", self.val_accuracy, self.val_f1)

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, "test", self.test_accuracy, self.test_f1)

    def _log_f1(self, stage: str, f1: KuzushijiF1) -> None:
        scores = f1.compute()
        self.log_dict({f"{stage}/{name}": value for name, value in scores.items()})
        f1.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_f1("val", self.val_f1)

    def on_test_epoch_end(self) -> None:
        self._log_f1("test", self.test_f1)

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        """Per page: its ``image_id``, crop ``boxes``, and the ``top_k`` ``codes`` with ``probabilities``."""
        probabilities, indices = self(batch["images"]).topk(min(self.hparams.top_k, len(self.codes)), dim=1)
        pages = []
        for page, image_id in enumerate(batch["image_ids"]):
            mine = batch["page"] == page
            pages.append({
                "image_id": image_id,
                "boxes": batch["boxes"][mine].cpu(),
                "codes": [[self.codes[i] for i in row] for row in indices[mine].tolist()],
                "probabilities": probabilities[mine].cpu(),
            })
        return pages

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        record_class(self, checkpoint)

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = build_optimizer(self.parameters(), hp.optimizer, hp.lr, hp.weight_decay, hp.momentum)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": build_schedule(optimizer, total, hp.schedule, hp.warmup_steps)}
