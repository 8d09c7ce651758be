"""Fashion-MNIST (MIT, Zalando SE): the embedded demo subset and the full idx files."""

from __future__ import annotations

import gzip
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from texdistill.data.dataset import ImageDataset, resize_square, to_nchw
from texdistill.errors import DataError

CLASS_NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
DEMO_FILE = "fashion_mnist_demo.npz"
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (optionally gzipped) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read idx file {path}: {exc}; re-copy the file") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte idx file (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: header says {shape}, file has {len(data) - offset} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _find_idx(data_dir: Path, stem: str) -> Path:
    for candidate in (data_dir / stem, data_dir / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise DataError(f"{data_dir} has no {stem}[.gz]; point --data-dir at the folder with the four "
                    f"Fashion-MNIST idx files (Debian: apt-get install dataset-fashion-mnist → {DEBIAN_DIR})")


def load_fashion_mnist(data_dir: str | Path | None = None, res: int | None = None) -> ImageDataset:
    """The full Fashion-MNIST (60k/10k) from its idx files; defaults to Debian's location."""
    root = Path(data_dir or DEBIAN_DIR)
    if not root.is_dir():
        raise DataError(f"Fashion-MNIST folder {root} does not exist; pass --data-dir or use --data fashion-demo")
    arrays = {}
    for split, (images_stem, labels_stem) in IDX_FILES.items():
        arrays[split] = (read_idx(_find_idx(root, images_stem)), read_idx(_find_idx(root, labels_stem)))
    return _build("fashion-mnist", arrays, res)


def load_fashion_demo(data_dir: str | Path | None = None, res: int | None = None) -> ImageDataset:
    """The class-balanced Fashion-MNIST subset shipped inside the package (works offline)."""
    with resources.files("texdistill.data").joinpath(DEMO_FILE).open("rb") as f:
        npz = np.load(f, allow_pickle=False)
        arrays = {split: (npz[f"{split}_images"], npz[f"{split}_labels"]) for split in ("train", "test")}
    return _build("fashion-demo", arrays, res)


def _build(name: str, arrays: dict, res: int | None) -> ImageDataset:
    splits = {}
    for split, (images, labels) in arrays.items():
        if res is not None and res != images.shape[1]:
            images = resize_square(images, res)
        splits[split] = (to_nchw(images), torch.from_numpy(labels.astype(np.int64)))
    return ImageDataset(name, *splits["train"], *splits["test"], class_names=list(CLASS_NAMES))
