"""CIFAR-10 and CIFAR-100 from the official archives: the binary version or the (pickled) python version.

The python version is a pickle. It is read by an unpickler that admits exactly the globals those files need
to rebuild a numpy uint8 array (numpy's array reconstructor, ndarray and dtype) and refuses every other
callable, so a crafted file cannot run code; the result is then checked to be plain data.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
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

NATIVE_RES = 32
RECORD = 3 * 32 * 32  # bytes of one image: R, G and B planes of 32×32


@dataclass(frozen=True)
class Variant:
    """Where one CIFAR variant keeps what, in both official formats."""

    name: str
    bin_folder: str
    bin_files: dict[str, tuple[str, ...]]
    label_bytes: int  # label bytes before each binary record; the class label is the last one
    bin_names: str
    py_folder: str
    py_files: dict[str, tuple[str, ...]]
    py_meta: str
    py_names_key: str
    py_labels_key: str


CIFAR10 = Variant("cifar10", "cifar-10-batches-bin",
                  {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)},
                  1, "batches.meta.txt",
                  "cifar-10-batches-py",
                  {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
                  "batches.meta", "label_names", "labels")
CIFAR100 = Variant("cifar100", "cifar-100-binary", {"train": ("train.bin",), "test": ("test.bin",)},
                   2, "fine_label_names.txt",  # records start with the coarse label, then the fine one
                   "cifar-100-python", {"train": ("train",), "test": ("test",)},
                   "meta", "fine_label_names", "fine_labels")


class CifarUnpickler(pickle.Unpickler):
    """Admits only what the CIFAR python batches reference; any other global is an UnpicklingError."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: CIFAR batches reference only "
                                         f"numpy's array reconstruction")
        if name == "_reconstruct":
            from numpy._core.multiarray import _reconstruct  # the same function under its numpy ≥ 2 name
            return _reconstruct
        return getattr(np, name)


def load_pickle(path: Path) -> dict[str, object]:
    """A CIFAR python batch as a dict with str keys; anything but plain data and uint8 arrays is refused."""
    try:
        with open(path, "rb") as f:
            obj = CifarUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: {exc}; use the official CIFAR archive") from exc
    except (OSError, EOFError, ValueError, TypeError) as exc:
        raise DataError(f"{path} is not a readable CIFAR python batch ({exc}); re-extract the archive") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path} holds a {type(obj).__name__}, not a CIFAR batch dict")
    out = {}
    for key, value in obj.items():
        if isinstance(value, np.ndarray) and value.dtype == object:
            raise DataError(f"{path}: an object array is not CIFAR data; use the official archive")
        out[key.decode() if isinstance(key, bytes) else str(key)] = value
    return out


def _locate(root: Path, v: Variant) -> tuple[Path, str]:
    """The folder holding the batches and its format ('binary' or 'python')."""
    for folder in (root, root / v.bin_folder, root / v.py_folder):
        if all((folder / f).is_file() for split in SPLITS for f in v.bin_files[split]):
            return folder, "binary"
        if all((folder / f).is_file() for split in SPLITS for f in v.py_files[split]):
            return folder, "python"
    raise DataError(f"no {v.name} batches in {root}: expected {v.bin_folder}/ ({', '.join(v.bin_files['train'])}, "
                    f"…) or {v.py_folder}/ ({', '.join(v.py_files['train'])}, …) from the official archive")


def _read_binary(folder: Path, v: Variant) -> tuple[list[str], dict]:
    names_file = folder / v.bin_names
    if not names_file.is_file():
        raise DataError(f"{folder} lacks {v.bin_names} (the class names of the binary archive); re-extract it")
    names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
    arrays = {}
    for split in SPLITS:
        parts = []
        for file in v.bin_files[split]:
            raw = np.fromfile(folder / file, dtype=np.uint8)
            if raw.size % (v.label_bytes + RECORD):
                raise DataError(f"{folder / file} is truncated ({raw.size} bytes is not a whole number of records)")
            parts.append(raw.reshape(-1, v.label_bytes + RECORD))
        records = np.concatenate(parts)
        images = records[:, v.label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        arrays[split] = (np.ascontiguousarray(images), records[:, v.label_bytes - 1].astype(np.int64))
    return names, arrays


def _read_python(folder: Path, v: Variant) -> tuple[list[str], dict]:
    meta = load_pickle(folder / v.py_meta)
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(v.py_names_key, [])]
    arrays = {}
    for split in SPLITS:
        images, labels = [], []
        for file in v.py_files[split]:
            batch = load_pickle(folder / file)
            data = batch.get("data")
            if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != RECORD:
                raise DataError(f"{folder / file}: 'data' is not a uint8 (N, {RECORD}) array")
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(np.asarray(batch.get(v.py_labels_key), dtype=np.int64))
        arrays[split] = (np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels))
    return names, arrays


def scan_cifar(variant: Variant, request: DataRequest) -> Found:
    """CIFAR-10/100 from --data-dir: the batches folder itself or the folder it was extracted into."""
    if request.data_dir is None:
        raise DataError(f"--data {variant.name} needs --data-dir: the folder holding {variant.bin_folder}/ or "
                        f"{variant.py_folder}/ (nothing is downloaded)")
    folder, kind = _locate(Path(request.data_dir), variant)
    files = sorted(folder / f for split in SPLITS for f in (variant.bin_files if kind == "binary"
                                                           else variant.py_files)[split])
    if kind == "python":
        files.append(folder / variant.py_meta)
    # the label counts need the whole files; they are small enough to read twice (cache hits skip decode)
    names, arrays = (_read_binary if kind == "binary" else _read_python)(folder, variant)
    for split, (images, labels) in arrays.items():
        if len(images) != len(labels) or (len(labels) and (labels.min() < 0 or labels.max() >= len(names))):
            raise DataError(f"{folder}: {split} labels do not match {len(names)} class names")
    keep = select_classes(names, request.classes, variant.name)
    res = request.res or NATIVE_RES
    counts = {split: [class_counts(arrays[split][1], len(names))[c] for c in keep] for split in SPLITS}

    def decode() -> Decoded:
        return Decoded(resize_arrays(keep_classes(arrays, keep, len(names)), res))

    layout = f"{kind} batches in {folder.name}/"
    return Found(variant.name, folder, layout, [names[c] for c in keep], counts, files, 3, res, decode)
