"""Albumentations recipes. Images are RGB ``uint8`` ``H x W x 3`` in and out."""

from __future__ import annotations

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
