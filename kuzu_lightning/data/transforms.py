"""Albumentations recipes. Images are RGB ``uint8`` ``H x W x 3`` in and out."""

from __future__ import annotations

import math

import albumentations as A
import cv2


def char_train_transform() -> A.Compose:
    """Character-crop augmentation of the Keras original, plus brightness/contrast.

    Crop or pad each side by up to 5%, affine scale 0.8-1.2, rotation and shear up to 5 degrees
    (borders replicate the paper), then brightness and contrast jitter. The crop size is kept.
    """
    return A.Compose([
        A.CropAndPad(percent=(-0.05, 0.05), keep_size=True, border_mode=cv2.BORDER_REPLICATE),
        A.Affine(scale=(0.8, 1.2), rotate=(-5, 5), shear=(-5, 5), border_mode=cv2.BORDER_REPLICATE, p=1.0),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
    ])


def char_strong_transform() -> A.Compose:
    """The strong augmentation of self-training (FixMatch's): :func:`char_train_transform`, then blur or noise, and
    one or two holes cut out of the crop (filled with noise)."""
    return A.Compose([
        *char_train_transform().transforms,
        A.OneOf([A.GaussianBlur(sigma_limit=(0.3, 1.2)), A.GaussNoise(std_range=(0.02, 0.08))], p=0.5),
        A.CoarseDropout(num_holes_range=(1, 2), hole_height_range=(0.1, 0.3), hole_width_range=(0.1, 0.3),
                        fill="random_uniform", p=0.5),
    ])


def page_train_transform(crop_size: tuple[int, int] = (384, 512), crop_heights: tuple[int, int] = (400, 533),
                         min_visibility: float = 0.5, augment: bool = True, paper: int = 255) -> A.Compose:
    """The detector's training crop of a resized page, with its boxes, as in the second-place solution.

    A window ``crop_heights`` px high (uniform) with the aspect of ``crop_size`` (height, width)
    is cut at a random place and resized to ``crop_size``; a page smaller than the largest window
    is first padded with ``paper``. Boxes are ``pascal_voc`` (xyxy pixels, passed as ``bboxes``
    with ``labels``): they are clipped to the window and kept when at least ``min_visibility`` of
    their area stays inside. With ``augment``, then hue/saturation/value, brightness/contrast and
    gamma jitter.
    """
    height, width = crop_size
    colour = [
        A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=20, val_shift_limit=20, p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
        A.RandomGamma(gamma_limit=(80, 120), p=0.5),
    ]
    return A.Compose([
        A.PadIfNeeded(min_height=crop_heights[1], min_width=math.ceil(crop_heights[1] * width / height),
                      border_mode=cv2.BORDER_CONSTANT, fill=paper),
        A.RandomSizedCrop(min_max_height=crop_heights, size=crop_size, w2h_ratio=width / height,
                          interpolation=cv2.INTER_AREA),
        *(colour if augment else []),
    ], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=min_visibility,
                                clip=True))
