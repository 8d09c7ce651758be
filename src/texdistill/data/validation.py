"""The validation split: a fixed share of each class's training images, held out from everything that trains.

Options are chosen on it (presets, study rows, `texdistill evaluate --split val`); the test split is kept for
final numbers. The choice never moves: it depends on neither --seed nor --classes (each class is drawn by its own
name), so every run of a dataset holds out the same images.
- Array datasets (Fashion-MNIST, CIFAR): per class, a permutation drawn from a generator seeded by VAL_SEED and
  the class name; its first `val_count` members are the validation images.
- Image-file datasets (folders, ImageNet subsets, Tiny ImageNet): by *picture*, before --patches cuts crops, so
  no picture has patches on both sides; the pictures whose path (relative to the dataset root) hashes lowest
  go to validation (as --holdout picks the test pictures of a folder, with another salt), so adding a picture
  does not reshuffle the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np

from texdistill.data.source import Arrays, Decoded, Found

VAL_SEED = 2828  # fixed for good: changing it (or the rules below) moves every validation split
SALT = "texdistill-val"


def val_count(n: int, fraction: float) -> int:
    """Validation images of a class of n training images: round(fraction · n), at least 1 and at most n − 1."""
    if fraction <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, round(fraction * n)))


def carve_files(items: list[tuple[Path, int]], root: Path, fraction: float) -> tuple[list, list]:
    """(train, val) of (file, label) pairs: per class the val_count pictures whose relative path hashes lowest."""
    chosen: set[Path] = set()
    for label in sorted({label for _, label in items}):
        files = [path for path, lab in items if lab == label]
        ranked = sorted(files, key=lambda p: hashlib.sha1(f"{SALT}:{os.path.relpath(p, root)}".encode()).hexdigest())
        chosen.update(ranked[:val_count(len(files), fraction)])
    return [it for it in items if it[0] not in chosen], [it for it in items if it[0] in chosen]


def val_mask(labels: np.ndarray, class_names: list[str], fraction: float) -> np.ndarray:
    """Boolean mask of the validation samples among training `labels` (0 … len(class_names) − 1)."""
    labels = np.asarray(labels, dtype=np.int64)
    mask = np.zeros(len(labels), dtype=bool)
    for label, name in enumerate(class_names):
        members = np.flatnonzero(labels == label)
        name_key = int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "little")
        order = np.random.default_rng([VAL_SEED, name_key]).permutation(len(members))
        mask[members[order[:val_count(len(members), fraction)]]] = True
    return mask


def carve_arrays(arrays: Arrays, class_names: list[str], fraction: float) -> Arrays:
    """Arrays with "val" carved from "train" (both keep the order of the training arrays)."""
    images, labels = arrays["train"][0], np.asarray(arrays["train"][1])
    if len(images) != len(labels):
        return arrays  # ImageDataset says what is wrong with the files
    mask = val_mask(labels, class_names, fraction)
    return {**arrays, "train": (images[~mask], labels[~mask]), "val": (images[mask], labels[mask])}


def with_val(found: Found, fraction: float) -> Found:
    """An array dataset's Found whose decode() also carves the validation split (counts before decoding too)."""
    if fraction <= 0:
        return found
    val = [val_count(n, fraction) for n in found.counts["train"]]
    counts = {**found.counts, "train": [n - v for n, v in zip(found.counts["train"], val)], "val": val}
    decode = found.decode

    def carved() -> Decoded:
        decoded = decode()
        return Decoded(carve_arrays(decoded.arrays, found.class_names, fraction), decoded.skipped)

    layout = found.layout + val_layout(fraction)
    return dataclasses.replace(found, counts=counts, decode=carved, layout=layout, val_fraction=fraction)


def val_layout(fraction: float) -> str:
    return f"; {fraction:.0%} of each class's training images held out as the validation split (--val-fraction)"
