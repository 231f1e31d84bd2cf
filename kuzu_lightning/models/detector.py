"""``CharDetector``: torchvision Faster R-CNN with one foreground class, "a character".

The network (:func:`build_faster_rcnn`) is torchvision's ``FasterRCNN`` on a ResNet-50/101/152
or MobileNetV3 (large or small) backbone with a feature pyramid, with

- a feature pyramid on strides 4 to 64 (ResNet, 5 levels) or 16 to 64 (MobileNet, 3 levels);
- anchors sized for characters: one size per pyramid level when the sizes and levels are as many
  (ResNet with the original's sizes 12, 24, 32, 64, 96), else every size on every level, each with
  the given aspect ratios;
- torchvision's internal transform kept for normalisation and batching but **not resizing**: the
  DataModule has already brought the page to its scale (see :class:`PageTransform`).

``CharDetector`` takes batches of :mod:`~kuzu_lightning.data.pages` (uint8 RGB images; it
normalises), sums torchvision's four losses for training, and returns boxes (xyxy) and scores
in **original-scan pixels** from :meth:`CharDetector.detect`. Validation logs the competition F1 in
class-agnostic mode (a detection is right when its centre falls in a character's box) at
``score_threshold``: ``val/f1``, ``val/precision``, ``val/recall``; and over a sweep of thresholds
the best: ``val/best_f1`` at ``val/best_threshold``. That best threshold of the last validation is
kept in the checkpoints (``validated_threshold``): :attr:`CharDetector.detection_threshold`, the
threshold the Recognizer and the real benchmark read pages at, is chosen on validation books.

Hyper-parameters are plain values, so checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import lightning as L
import torch
import torchvision
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import _mobilenet_extractor, _resnet_fpn_extractor
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops.misc import FrozenBatchNorm2d

from kuzu_lightning.data.kaggle import Page
from kuzu_lightning.data.loaders import worker_options
from kuzu_lightning.data.pages import PageDataset, collate_whole_pages
from kuzu_lightning.geometry import to_original
from kuzu_lightning.kuzushiji_f1 import KuzushijiF1
from kuzu_lightning.metrics import MAX_PREDICTIONS_PER_PAGE
from kuzu_lightning.models.checkpoints import record_class, start_from
from kuzu_lightning.models.optim import build_optimizer, build_schedule

RESNETS = ("resnet50", "resnet101", "resnet152")
MOBILENETS = ("mobilenet_v3_large", "mobilenet_v3_small")
BACKBONES = RESNETS + MOBILENETS


class PageTransform(GeneralizedRCNNTransform):
    """Torchvision's detection transform without its resize: normalise and pad to a batch only.

    Pages arrive at the scale the DataModule chose; resizing them again would break the mapping
    back to original-scan pixels and the character scale the anchors were sized for.
    """

    def resize(self, image: torch.Tensor, target: dict | None = None) -> tuple[torch.Tensor, dict | None]:
        return image, target


def build_backbone(name: str, pretrained: bool = False, weights_path: str | None = None,
                   trainable_layers: int = 3) -> nn.Module:
    """A backbone with a feature pyramid (``out_channels`` 256).

    With ``pretrained`` (torchvision's ImageNet weights, downloaded once) or ``weights_path`` (a
    local file of the same classification network's ``state_dict``, the offline way), batch norm
    is frozen and only the last ``trainable_layers`` stages train, as in torchvision's detection
    recipes; from scratch, every stage trains with ordinary batch norm.
    """
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, not {name!r}")
    initialised = pretrained or weights_path is not None
    network = getattr(torchvision.models, name)(weights="DEFAULT" if pretrained else None,
                                                norm_layer=FrozenBatchNorm2d if initialised else nn.BatchNorm2d)
    if weights_path is not None:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        network.load_state_dict(state.get("state_dict", state))
    if name in RESNETS:
        return _resnet_fpn_extractor(network, trainable_layers if initialised else 5)
    # Stages at strides 16 and 32 (torchvision's default keeps only stride 32: too coarse for characters).
    return _mobilenet_extractor(network, True, trainable_layers if initialised else 6, returned_layers=[3, 4])


def character_anchors(backbone: nn.Module, sizes: Sequence[int], aspect_ratios: Sequence[float]) -> AnchorGenerator:
    """Anchors of ``sizes`` px: one size per pyramid level when they are as many, else all on every level."""
    training = backbone.training
    with torch.no_grad():
        levels = len(backbone.eval()(torch.zeros(1, 3, 64, 64)))
    backbone.train(training)
    per_level = [(size,) for size in sizes] if len(sizes) == levels else [tuple(sizes)] * levels
    return AnchorGenerator(tuple(per_level), (tuple(aspect_ratios),) * levels)


def build_faster_rcnn(*, backbone: str, pretrained: bool, weights_path: str | None, trainable_layers: int,
                      anchor_sizes: Sequence[int], aspect_ratios: Sequence[float], box_nms_thresh: float,
                      box_detections_per_img: int, box_score_thresh: float, rpn_post_nms_top_n_test: int,
                      box_batch_size_per_image: int) -> FasterRCNN:
    """Faster R-CNN with one foreground class (label 1) for characters; see the module docstring and, for
    each setting and its default, :class:`CharDetector`."""
    features = build_backbone(backbone, pretrained, weights_path, trainable_layers)
    model = FasterRCNN(
        features, num_classes=2, rpn_anchor_generator=character_anchors(features, anchor_sizes, aspect_ratios),
        box_nms_thresh=box_nms_thresh, box_detections_per_img=box_detections_per_img,
        box_score_thresh=box_score_thresh, rpn_pre_nms_top_n_test=2 * rpn_post_nms_top_n_test,
        rpn_post_nms_top_n_test=rpn_post_nms_top_n_test, box_batch_size_per_image=box_batch_size_per_image,
    )
    model.transform = PageTransform(1, 1, model.transform.image_mean, model.transform.image_std)
    return model


class CharDetector(L.LightningModule):
    """Character detector; see the module docstring.

    Args:
        backbone, pretrained, weights_path, trainable_layers: see :func:`build_backbone`.
        anchor_sizes, aspect_ratios: anchors in pixels of the resized page.
        box_nms_thresh: IoU above which overlapping detections are suppressed (the original: 0.25).
        box_detections_per_img: most detections per page (at most 1200, the submission's limit).
        box_score_thresh: detections scoring below this are not returned at all.
        rpn_post_nms_top_n_test: region proposals kept per page at inference.
        box_batch_size_per_image: proposals sampled per training image for the box head's loss
            (torchvision's 512; fewer make a CPU step much cheaper, ``roi_align``'s backward dominates).
        score_threshold: the score above which a detection counts for ``val/f1``; also :attr:`detection_threshold`
            (the threshold ``predict`` and every reader of pages keep detections at) until a validation has chosen one.
        sweep: further thresholds tried for ``val/best_f1``.
        optimizer, lr, momentum, weight_decay: see :func:`~kuzu_lightning.models.optim.build_optimizer`
            (the original: SGD 0.005, momentum 0.9, weight decay 5e-4).
        schedule, warmup_steps, milestones, gamma: see :func:`~kuzu_lightning.models.optim.lr_factor`.
        init_from: start from the weights of this trained checkpoint, or released model's name (fine-tuning).
    """

    def __init__(self, backbone: str = "resnet50", pretrained: bool = False, weights_path: str | None = None,
                 trainable_layers: int = 3, anchor_sizes: tuple[int, ...] = (12, 24, 32, 64, 96),
                 aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0), box_nms_thresh: float = 0.25,
                 box_detections_per_img: int = 1200, box_score_thresh: float = 0.05,
                 rpn_post_nms_top_n_test: int = 2000, box_batch_size_per_image: int = 512,
                 score_threshold: float = 0.5,
                 sweep: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), optimizer: str = "sgd",
                 lr: float = 0.005, momentum: float = 0.9, weight_decay: float = 5e-4, schedule: str = "step",
                 warmup_steps: int = 500, milestones: tuple[float, ...] = (0.67, 0.89), gamma: float = 0.1,
                 init_from: str | None = None):
        super().__init__()
        if box_detections_per_img > MAX_PREDICTIONS_PER_PAGE:
            raise ValueError(f"box_detections_per_img={box_detections_per_img} is above the "
                             f"{MAX_PREDICTIONS_PER_PAGE} predictions a submission may hold per page")
        self.save_hyperparameters()
        self.network = build_faster_rcnn(
            backbone=backbone, pretrained=pretrained, weights_path=weights_path, trainable_layers=trainable_layers,
            anchor_sizes=anchor_sizes, aspect_ratios=aspect_ratios, box_nms_thresh=box_nms_thresh,
            box_detections_per_img=box_detections_per_img, box_score_thresh=box_score_thresh,
            rpn_post_nms_top_n_test=rpn_post_nms_top_n_test, box_batch_size_per_image=box_batch_size_per_image)
        self.thresholds = sorted({score_threshold, *sweep})
        self.val_f1 = nn.ModuleList(KuzushijiF1(class_agnostic=True) for _ in self.thresholds)
        self.test_f1 = nn.ModuleList(KuzushijiF1(class_agnostic=True) for _ in self.thresholds)
        self.validated_threshold: float | None = None
        if init_from:
            start_from(self, init_from)

    @property
    def detection_threshold(self) -> float:
        """The score threshold to read pages at: the sweep's best on the last validation (saved in checkpoints),
        else ``score_threshold``."""
        return self.hparams.score_threshold if self.validated_threshold is None else self.validated_threshold

    @staticmethod
    def _floats(images: list[torch.Tensor]) -> list[torch.Tensor]:
        return [image.float() / 255 for image in images]

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Detections of uint8 ``3 x H x W`` images: ``boxes`` xyxy in those images' pixels, ``scores``."""
        return [{"boxes": d["boxes"].float(), "scores": d["scores"].float()}
                for d in self.network(self._floats(images))]

    def detect(self, batch: dict) -> list[dict[str, torch.Tensor]]:
        """Detections of a page batch in original-scan pixels, best first; none for unreadable pages."""
        present = [i for i, image in enumerate(batch["images"]) if image is not None]
        found = dict(zip(present, self([batch["images"][i] for i in present]) if present else []))
        empty = {"boxes": torch.zeros(0, 4, device=self.device), "scores": torch.zeros(0, device=self.device)}
        pages = []
        for i in range(len(batch["images"])):
            page = found.get(i, empty)
            pages.append({"boxes": to_original(page["boxes"], batch["scales"][i]), "scores": page["scores"]})
        return pages

    @torch.inference_mode()
    def read_pages(self, pages: Sequence[Page], longest_side: int, threshold: float, max_pixels: int | None = None,
                   workers: int = 0) -> Iterator[tuple[Page, torch.Tensor, torch.Tensor]]:
        """``(page, boxes, scores)`` for each of ``pages``, in order, read resized to ``longest_side`` (the scale
        the detector was validated at): its detections scoring ``threshold`` or more, best first, boxes xyxy in
        original-scan pixels, on :attr:`device`. A page that fails to decode (logged by :class:`PageDataset`)
        has none. ``workers`` processes decode the pages."""
        dataset = PageDataset(list(pages), longest_side, max_pixels)
        loader = torch.utils.data.DataLoader(dataset, batch_size=1, collate_fn=collate_whole_pages,
                                             **worker_options(workers))
        for page, batch in zip(pages, loader):
            batch["images"] = [None if image is None else image.to(self.device) for image in batch["images"]]
            found = self.detect(batch)[0]
            kept = found["scores"] >= threshold
            yield page, found["boxes"][kept], found["scores"][kept]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self.network(self._floats(batch["images"]), batch["targets"])
        loss = sum(losses.values())
        size = len(batch["images"])
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log_dict({f"train/{name}": value for name, value in losses.items()}, batch_size=size)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=size)
        return loss

    def _evaluate(self, batch: dict, metrics: nn.ModuleList) -> list[dict[str, torch.Tensor]]:
        detections = self.detect(batch)
        target = [{"boxes": boxes} for boxes in batch["boxes"]]
        for threshold, metric in zip(self.thresholds, metrics):
            metric.update([{"boxes": d["boxes"][d["scores"] >= threshold]} for d in detections], target)
        return detections

    def validation_step(self, batch: dict, batch_idx: int) -> list[dict[str, torch.Tensor]]:
        return self._evaluate(batch, self.val_f1)

    def test_step(self, batch: dict, batch_idx: int) -> list[dict[str, torch.Tensor]]:
        return self._evaluate(batch, self.test_f1)

    def _log_f1(self, stage: str, metrics: nn.ModuleList) -> None:
        scores = [metric.compute() for metric in metrics]
        chosen = scores[self.thresholds.index(self.hparams.score_threshold)]
        best = max(range(len(scores)), key=lambda i: float(scores[i]["f1"]))
        self.log_dict({f"{stage}/{name}": value for name, value in chosen.items()})
        self.log_dict({f"{stage}/best_f1": scores[best]["f1"], f"{stage}/best_threshold": self.thresholds[best]})
        if stage == "val" and not self.trainer.sanity_checking:
            self.validated_threshold = self.thresholds[best]
        for metric in metrics:
            metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_f1("val", self.val_f1)

    def on_test_epoch_end(self) -> None:
        self._log_f1("test", self.test_f1)

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        """Per page: ``image_id``, ``boxes`` (xyxy, original-scan pixels) and ``scores`` of at least
        :attr:`detection_threshold`, the threshold every reader of pages uses."""
        pages = []
        for image_id, page in zip(batch["image_ids"], self.detect(batch)):
            kept = page["scores"] >= self.detection_threshold
            pages.append({"image_id": image_id, "boxes": page["boxes"][kept].cpu(), "scores": page["scores"][kept].cpu()})
        return pages

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        record_class(self, checkpoint)
        checkpoint["validated_threshold"] = self.validated_threshold

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.validated_threshold = checkpoint.get("validated_threshold")

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = build_optimizer(self.parameters(), hp.optimizer, hp.lr, hp.weight_decay, hp.momentum)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = build_schedule(optimizer, total, hp.schedule, hp.warmup_steps, milestones=hp.milestones,
                                  gamma=hp.gamma)
        return {"optimizer": optimizer, "lr_scheduler": schedule}
