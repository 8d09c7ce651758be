"""What a reader finds on disk before decoding anything, and the pieces every reader shares.

A reader is `scan(request) -> Found`: it checks the layout, lists classes, counts images and names every file
it will read (the cache fingerprint) — cheap, so `--dry-run` and cache look-ups never decode. `Found.decode()`
then produces uint8 arrays, which data/cache.py stores and turns into an ImageDataset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from texdistill.data.dataset import ImageDataset, resize_square, to_nchw
from texdistill.errors import DataError

SPLITS = ("train", "test")  # the splits readers find on disk
ALL_SPLITS = ("train", "val", "test")  # and the datasets they make: "val" is carved from train (data/validation.py)
# split → (uint8 images (N, H, W) or (N, H, W, C), integer labels (N,))
Arrays = dict[str, tuple[np.ndarray, np.ndarray]]


# the help of the data options of the stages' configs (config.py) that this layer gives meaning to
DATA_HELP = {
    "patches": "image-file datasets (folder, ImageNet subsets, tinyimagenet): cut this many random square crops from "
               "every picture — sides from --res up to the picture's shorter side, so several scales — instead of "
               "one centre crop; a few large photos per class become hundreds of training images. Pictures are split "
               "into train/val/test before, so no picture has patches on two sides; 0 = one centre crop per picture",
    "val_fraction": "share of each class's training images held out as the validation split (fixed: the same images "
                    "whatever --seed; image files: by picture, before --patches). Experts, distillation, recognisers "
                    "and judges never see them; `evaluate --split val` tests on them. 0: none (all train, as before)",
    "split": "the real images the fresh networks are tested on: 'test' (the dataset's test split: final numbers) or "
             "'val' (the validation split, --val-fraction: for choosing options; `texdistill sweep` rows use it "
             "unless a row says \"split\": \"test\")",
}


@dataclass(frozen=True)
class DataRequest:
    """Which dataset, where, and how: the options of CommonConfig that shape the data."""

    name: str
    data_dir: str | None = None
    res: int | None = None
    classes: tuple[str, ...] | None = None  # class names to keep, in this order (None: all)
    holdout: float = 0.1  # folder datasets without a test split: fraction of each class held out
    patches: int = 0  # image-file datasets: random crops per picture (0: one centre crop per picture)
    background: str = "white"  # what transparent pixels are composited onto: white, black or #rrggbb
    val_fraction: float = 0.0  # share of each class's training images (pictures) held out as the validation split


@dataclass(frozen=True)
class DatasetShape:
    """Sizes that memory and time estimates need."""

    channels: int
    res: int
    classes: int
    train: int
    test: int


@dataclass
class Decoded:
    arrays: Arrays
    skipped: list[str] = field(default_factory=list)  # unreadable files: "path: reason"


@dataclass
class Found:
    """A dataset located on disk, not decoded yet."""

    name: str
    root: Path | None
    layout: str  # the layout found, in words (printed, logged, stored with the cache)
    class_names: list[str]
    counts: dict[str, list[int]]  # split → images (files) per class; "val" only where one is carved
    files: list[Path]  # everything decode() reads: the cache is keyed by their sizes and mtimes
    channels: int
    res: int
    decode: Callable[[], Decoded]
    cacheable: bool = True  # False for the embedded demo set: it loads faster than a cache would
    patched: bool = False  # decode() cuts --patches crops per picture (image-file readers)
    val_fraction: float = 0.0  # the validation split carved from the training images (0: none)

    @property
    def shape(self) -> DatasetShape:
        return DatasetShape(self.channels, self.res, len(self.class_names),
                            sum(self.counts["train"]), sum(self.counts["test"]))

    def describe(self) -> str:
        """A few lines for people: name, layout, classes, counts, resolution."""
        k = len(self.class_names)
        shown = ", ".join(self.class_names[:12]) + (f", … ({k - 12} more)" if k > 12 else "")
        train, test, val = self.counts["train"], self.counts["test"], sum(self.counts.get("val", []))
        return (f"{self.name} in {self.root or 'the package'}: {self.layout}\n"
                f"  {k} classes: {shown}\n"
                f"  {sum(train)} train images ({min(train)}–{max(train)} per class), "
                f"{f'{val} validation images, ' if val else ''}{sum(test)} test images; "
                f"decoded to {self.channels}×{self.res}×{self.res} uint8")


@dataclass(frozen=True)
class Reader:
    """A dataset family: its scan function and, for estimates made without the data, its usual shape."""

    scan: Callable[[DataRequest], Found]
    nominal: DatasetShape | None = None


def select_classes(available: list[str], requested: tuple[str, ...] | None, dataset: str,
                   aliases: dict[str, int] | None = None) -> list[int]:
    """Indices into `available` of the requested classes (names, or `aliases` such as synset ids), in the
    requested order; all of them when nothing is requested."""
    if requested is None:
        return list(range(len(available)))
    index = {**(aliases or {}), **{name: i for i, name in enumerate(available)}}
    unknown = [name for name in requested if name not in index]
    if unknown:
        listed = ", ".join(available[:30]) + (" …" if len(available) > 30 else "")
        raise DataError(f"{dataset} has no class {', '.join(repr(u) for u in unknown)}; --classes takes "
                        f"comma-separated names of: {listed}")
    chosen = [index[name] for name in requested]
    if len(set(chosen)) != len(chosen):
        raise DataError(f"--classes names a class twice: {','.join(requested)}")
    return chosen


def keep_classes(arrays: Arrays, keep: list[int], num_classes: int) -> Arrays:
    """Only the samples of classes `keep`, relabelled 0…len(keep)-1 in that order."""
    if keep == list(range(num_classes)):
        return arrays
    out = {}
    for split, (images, labels) in arrays.items():
        new = np.full(len(labels), -1, dtype=np.int64)
        for new_label, old_label in enumerate(keep):
            new[np.asarray(labels) == old_label] = new_label
        out[split] = (images[new >= 0], new[new >= 0])
    return out


def class_counts(labels: np.ndarray, num_classes: int) -> list[int]:
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)[:num_classes].tolist()


def to_dataset(found: Found, decoded: Decoded) -> ImageDataset:
    """The ImageDataset of decoded arrays (uint8 NHWC/NHW numpy → NCHW torch)."""
    splits = {}
    for split in ALL_SPLITS:
        if split in decoded.arrays:
            images, labels = decoded.arrays[split]
            splits[split] = (to_nchw(images), torch.from_numpy(np.asarray(labels, dtype=np.int64)))
    val = splits.get("val", (None, None))
    return ImageDataset(found.name, *splits["train"], *splits["test"], class_names=list(found.class_names),
                        layout=found.layout, skipped=list(decoded.skipped), val_images=val[0], val_labels=val[1])


def resize_arrays(arrays: Arrays, res: int) -> Arrays:
    """Arrays resized to res×res (shorter side + centre crop) unless they already are."""
    return {split: (images if images.shape[1:3] == (res, res) else resize_square(images, res), labels)
            for split, (images, labels) in arrays.items()}
