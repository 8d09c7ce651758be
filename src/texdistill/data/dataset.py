"""The common dataset object every reader returns: uint8 images, labels, class names."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from texdistill.errors import DataError


@dataclass
class ImageDataset:
    """A labelled image dataset held as uint8 tensors; 1- and 3-channel images are both first-class.

    `train_*` is what every network trains on; `val_*` (possibly empty) is the validation split carved from the
    training images (data/validation.py), disjoint from train and test; `test_*` is the dataset's test split."""

    name: str
    train_images: torch.Tensor  # (N, C, H, W) uint8
    train_labels: torch.Tensor  # (N,) int64
    test_images: torch.Tensor  # (M, C, H, W) uint8
    test_labels: torch.Tensor  # (M,) int64
    class_names: list[str]
    layout: str = ""  # what the reader found on disk, in words
    skipped: list[str] = field(default_factory=list)  # unreadable files left out
    val_images: torch.Tensor | None = None  # (V, C, H, W) uint8; None: no validation split (empty)
    val_labels: torch.Tensor | None = None  # (V,) int64

    def __post_init__(self) -> None:
        if self.val_images is None:
            self.val_images = self.train_images[:0]
            self.val_labels = self.train_labels[:0]
        for split, images, labels in (("train", self.train_images, self.train_labels),
                                      ("val", self.val_images, self.val_labels),
                                      ("test", self.test_images, self.test_labels)):
            if images.dtype != torch.uint8 or images.ndim != 4:
                raise DataError(f"{self.name}: {split} images must be uint8 (N, C, H, W), got "
                                f"{images.dtype} {tuple(images.shape)}")
            if images.shape[1] not in (1, 3):
                raise DataError(f"{self.name}: images need 1 or 3 channels, got {images.shape[1]}")
            if len(images) != len(labels):
                raise DataError(f"{self.name}: {len(images)} {split} images but {len(labels)} labels")
        if len(self.train_images) == 0:
            raise DataError(f"{self.name}: the training split is empty; check --data-dir")
        if self.num_classes < 2:
            raise DataError(f"{self.name}: distillation needs at least 2 classes, found {self.num_classes}")
        present = torch.unique(self.train_labels)
        if len(present) != self.num_classes:
            missing = sorted(set(range(self.num_classes)) - set(present.tolist()))
            names = ", ".join(self.class_names[i] for i in missing)
            raise DataError(f"{self.name}: classes without training images: {names}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the images."""
        return int(self.train_images.shape[2]), int(self.train_images.shape[3])

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) of split `name`: "train", "val" or "test"."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split '{name}': train, val or test")
        return getattr(self, f"{name}_images"), getattr(self, f"{name}_labels")

    def class_counts(self, split: str = "train") -> list[int]:
        return torch.bincount(self.split(split)[1], minlength=self.num_classes).tolist()

    def channel_stats(self, chunk: int = 1024) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training images in [0, 1] units (chunked: data may be mmapped)."""
        total = torch.zeros(self.channels, dtype=torch.float64)
        squares = torch.zeros(self.channels, dtype=torch.float64)
        for start in range(0, len(self.train_images), chunk):
            x = self.train_images[start:start + chunk].to(torch.float64) / 255.0
            total += x.sum(dim=(0, 2, 3))
            squares += x.pow(2).sum(dim=(0, 2, 3))
        count = self.train_images[:, 0].numel()
        mean = total / count
        std = ((squares - count * mean.pow(2)) / max(1, count - 1)).clamp_min(0).sqrt().clamp_min(1e-6)
        return mean.tolist(), std.tolist()

    def images_of_class(self, label: int, split: str = "train") -> torch.Tensor:
        """All uint8 images of one class, (n, C, H, W)."""
        images, labels = self.split(split)
        return images[labels == label]

    def describe(self) -> str:
        h, w = self.image_size
        val = f"{len(self.val_images)} validation / " if len(self.val_images) else ""
        return (f"{self.name}: {self.num_classes} classes, {len(self.train_images)} train / {val}"
                f"{len(self.test_images)} test images, {self.channels}×{h}×{w}")


def resize_square(images: np.ndarray, res: int) -> np.ndarray:
    """Resize uint8 (N, H, W[, C]) images to res×res: shorter side to res, then centre crop."""
    if len(images) == 0:
        return np.zeros((0, res, res, *images.shape[3:]), dtype=np.uint8)
    return np.stack([np.asarray(square_crop(Image.fromarray(image), res)) for image in images])


def square_crop(pil: Image.Image, res: int) -> Image.Image:
    """A PIL image resized so its shorter side is `res` (bicubic, antialiased), then centre-cropped to res×res."""
    w, h = pil.size
    scale = res / min(w, h)
    new_w, new_h = max(res, round(w * scale)), max(res, round(h * scale))
    if (new_w, new_h) != (w, h):
        pil = pil.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - res) // 2, (new_h - res) // 2
    return pil.crop((left, top, left + res, top + res))


def to_nchw(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) numpy → (N, C, H, W) torch uint8."""
    if images.ndim == 3:
        images = images[:, :, :, None]
    nchw = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return torch.from_numpy(nchw if nchw.flags.writeable else nchw.copy())
