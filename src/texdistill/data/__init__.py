"""Datasets: readers that return an ImageDataset, and the pixel space the networks see."""

from __future__ import annotations

from collections.abc import Callable

from texdistill.data.dataset import ImageDataset
from texdistill.data.fashion_mnist import load_fashion_demo, load_fashion_mnist
from texdistill.data.space import PixelSpace
from texdistill.errors import DataError

# name → loader(data_dir, res) returning an ImageDataset
READERS: dict[str, Callable[..., ImageDataset]] = {
    "fashion-demo": load_fashion_demo,
    "fashion-mnist": load_fashion_mnist,
}


def load_dataset(name: str, data_dir: str | None = None, res: int | None = None) -> ImageDataset:
    """Load a dataset by name (see READERS) from data_dir, resized to res when given."""
    if name not in READERS:
        raise DataError(f"unknown dataset '{name}'; choose one of: {', '.join(READERS)}")
    return READERS[name](data_dir, res)


__all__ = ["ImageDataset", "PixelSpace", "READERS", "load_dataset"]
