"""Small files in the real on-disk formats of each dataset, generated for the reader tests."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def random_split(rng: np.random.Generator, n: int, classes: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """n random uint8 (size, size, 3) images and labels cycling through the classes."""
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), np.arange(n) % classes


def write_cifar_binary(folder: Path, files: dict[str, list[str]], label_bytes: int, names_file: str,
                       names: list[str], splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Records of [label bytes][R plane][G plane][B plane], split across `files` as the official archive."""
    folder.mkdir(parents=True)
    (folder / names_file).write_text("\n".join(names) + "\n\n")
    for split, (images, labels) in splits.items():
        label_block = np.zeros((len(labels), label_bytes), dtype=np.uint8)
        label_block[:, -1] = labels  # the class label is the last label byte
        if label_bytes == 2:  # CIFAR-100: the coarse label (some other number) comes first
            label_block[:, 0] = labels % 20
        records = np.concatenate([label_block, images.transpose(0, 3, 1, 2).reshape(len(images), -1)], axis=1)
        for file, part in zip(files[split], np.array_split(records, len(files[split]))):
            part.tofile(folder / file)


class Py2Pickler(pickle._Pickler):
    """Pickles bytes as Python 2 `str` (BINSTRING), like the official CIFAR python batches (protocol 2)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle(obj: object) -> bytes:
    """obj as Python 2 + numpy 1.x would have pickled it (numpy.core.multiarray, py2 strings)."""
    import io

    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def write_cifar_python(folder: Path, files: dict[str, list[str]], meta_file: str, names_key: bytes,
                       labels_key: bytes, names: list[str], splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    folder.mkdir(parents=True)
    (folder / meta_file).write_bytes(py2_pickle({names_key: [n.encode() for n in names]}))
    for split, (images, labels) in splits.items():
        for file, index in zip(files[split], np.array_split(np.arange(len(images)), len(files[split]))):
            batch = {b"batch_label": f"{file} of 1".encode(), labels_key: [int(x) for x in labels[index]],
                     b"data": images[index].transpose(0, 3, 1, 2).reshape(len(index), -1).copy(),
                     b"filenames": [f"img_{i}.png".encode() for i in index]}
            (folder / file).write_bytes(py2_pickle(batch))


def save_image(path: Path, array: np.ndarray, mode: str | None = None, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    image.save(path, **options)


def write_synset_tree(root: Path, synsets: list[str], train_per_class: int, val_per_class: int,
                      rng: np.random.Generator, flat_val: bool = False, size: int = 20) -> dict:
    """ImageNet-style train/<synset>/*.JPEG (+ val/<synset>/ or flat val/); returns {file name: synset} of val."""
    val_labels = {}
    for s in synsets:
        for i in range(train_per_class):
            save_image(root / "train" / s / f"{s}_{i}.JPEG", rng.integers(0, 256, (size, size + 6, 3), dtype=np.uint8),
                       format="JPEG", quality=95)
    number = 0
    for s in synsets:
        for i in range(val_per_class):
            number += 1
            name = f"ILSVRC2012_val_{number:08d}.JPEG"
            folder = root / "val" if flat_val else root / "val" / s
            save_image(folder / name, rng.integers(0, 256, (size + 4, size, 3), dtype=np.uint8), format="JPEG")
            val_labels[name] = s
    return val_labels
