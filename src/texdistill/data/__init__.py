"""Datasets: readers that find data on disk, the decoded cache, and the pixel space the networks see."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from texdistill.data.cache import load_cached
from texdistill.data.cifar import CIFAR10, CIFAR100, scan_cifar
from texdistill.data.dataset import ImageDataset
from texdistill.data.fashion_mnist import scan_fashion_demo, scan_fashion_mnist
from texdistill.data.folder import scan_folder
from texdistill.data.imagenet import SUBSETS, scan_imagenet_subset
from texdistill.data.source import DataRequest, DatasetShape, Found, Reader, to_dataset
from texdistill.data.space import PixelSpace
from texdistill.data.tinyimagenet import scan_tinyimagenet
from texdistill.data.validation import with_val
from texdistill.errors import DataError

log = logging.getLogger(__name__)

IMAGENET_SUBSET = DatasetShape(channels=3, res=128, classes=10, train=13000, test=500)  # ≈1300 train, 50 val/class
READERS: dict[str, Reader] = {
    "fashion-demo": Reader(scan_fashion_demo, DatasetShape(1, 28, 10, 10000, 2000)),
    "fashion-mnist": Reader(scan_fashion_mnist, DatasetShape(1, 28, 10, 60000, 10000)),
    "cifar10": Reader(partial(scan_cifar, CIFAR10), DatasetShape(3, 32, 10, 50000, 10000)),
    "cifar100": Reader(partial(scan_cifar, CIFAR100), DatasetShape(3, 32, 100, 50000, 10000)),
    "tinyimagenet": Reader(scan_tinyimagenet, DatasetShape(3, 64, 200, 100000, 10000)),
    **{subset: Reader(partial(scan_imagenet_subset, subset), IMAGENET_SUBSET) for subset in SUBSETS},
    "folder": Reader(scan_folder),
}


def find_dataset(name: str, data_dir: str | None = None, res: int | None = None,
                 classes: tuple[str, ...] | None = None, holdout: float = 0.1, patches: int = 0,
                 background: str = "white", val_fraction: float = 0.0) -> Found:
    """Locate a dataset (see READERS) without decoding it: layout, classes, counts, source files."""
    return _scan(DataRequest(name, data_dir, res, classes, holdout, patches, background, val_fraction))


def load_dataset(name: str, data_dir: str | None = None, res: int | None = None, *,
                 classes: tuple[str, ...] | None = None, holdout: float = 0.1, patches: int = 0,
                 background: str = "white", val_fraction: float = 0.0,
                 cache_dir: str | Path | None = None) -> ImageDataset:
    """Load a dataset by name, decoded once into `cache_dir` (memory-mapped afterwards) when given; with
    `val_fraction` > 0 that share of each class's training images is the validation split (data/validation.py)."""
    request = DataRequest(name, data_dir, res, classes, holdout, patches, background, val_fraction)
    found = _scan(request)
    log.info("%s: %s", found.name, found.layout)
    if cache_dir is not None and found.cacheable:
        return load_cached(found, request, cache_dir)
    return to_dataset(found, found.decode())


def _scan(request: DataRequest) -> Found:
    if request.name not in READERS:
        raise DataError(f"unknown dataset '{request.name}'; choose one of: {', '.join(READERS)}")
    found = READERS[request.name].scan(request)
    if request.patches and not found.patched:
        raise DataError(f"--patches cuts crops from image files; {request.name} is stored as arrays of "
                        f"{found.res}-px images: drop --patches (it is for folder, ImageNet subsets, tinyimagenet)")
    if not 0 <= request.val_fraction < 1:
        raise DataError(f"the validation fraction must be in [0, 1), got {request.val_fraction}")
    # image-file readers carve it by picture (data/images.py); array readers here, per class
    return found if found.patched else with_val(found, request.val_fraction)


__all__ = ["DataRequest", "DatasetShape", "Found", "ImageDataset", "PixelSpace", "READERS", "find_dataset",
           "load_dataset"]
