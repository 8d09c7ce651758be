"""Fashion-MNIST (MIT, Zalando SE): the embedded demo subset and the full idx files."""

from __future__ import annotations

import gzip
from importlib import resources
from pathlib import Path

import numpy as np

from texdistill.data.source import (
    SPLITS,
    DataRequest,
    Decoded,
    Found,
    class_counts,
    keep_classes,
    resize_arrays,
    select_classes,
)
from texdistill.errors import DataError

CLASS_NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
NATIVE_RES = 28
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


def scan_fashion_mnist(request: DataRequest) -> Found:
    """The full Fashion-MNIST (60k/10k) from its idx files; defaults to Debian's location."""
    root = Path(request.data_dir or DEBIAN_DIR)
    if not root.is_dir():
        raise DataError(f"Fashion-MNIST folder {root} does not exist; pass --data-dir or use --data fashion-demo")
    paths = {split: tuple(_find_idx(root, stem) for stem in IDX_FILES[split]) for split in SPLITS}
    labels = {split: read_idx(paths[split][1]) for split in SPLITS}

    def load() -> dict:
        return {split: (read_idx(paths[split][0]), labels[split]) for split in SPLITS}

    layout = f"idx files ({', '.join(p.name for split in SPLITS for p in paths[split])})"
    return _found("fashion-mnist", root, layout, labels, load, request,
                  files=[p for split in SPLITS for p in paths[split]])


def scan_fashion_demo(request: DataRequest) -> Found:
    """The class-balanced Fashion-MNIST subset shipped inside the package (works offline)."""
    with resources.files("texdistill.data").joinpath(DEMO_FILE).open("rb") as f:
        npz = np.load(f, allow_pickle=False)
        arrays = {split: (npz[f"{split}_images"], npz[f"{split}_labels"]) for split in SPLITS}
    labels = {split: arrays[split][1] for split in SPLITS}
    found = _found("fashion-demo", None, "embedded class-balanced subset of Fashion-MNIST", labels,
                   lambda: arrays, request, files=[])
    found.cacheable = False  # loading the embedded arrays is faster than any cache
    return found


def _found(name: str, root: Path | None, layout: str, labels: dict, load, request: DataRequest,
           files: list[Path]) -> Found:
    keep = select_classes(CLASS_NAMES, request.classes, name)
    res = request.res or NATIVE_RES
    counts = {split: [class_counts(labels[split], len(CLASS_NAMES))[c] for c in keep] for split in SPLITS}

    def decode() -> Decoded:
        return Decoded(resize_arrays(keep_classes(load(), keep, len(CLASS_NAMES)), res))

    return Found(name, root, layout, [CLASS_NAMES[c] for c in keep], counts, files, 1, res, decode)
