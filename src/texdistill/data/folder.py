"""Your own classes: a folder with one sub-folder of images per class.

Two layouts:
- `<dir>/<class>/…images…`: a fraction --holdout of each class is held out as the test split, chosen by a hash
  of the file path (stable across runs and machines, and adding an image does not reshuffle the others);
- `<dir>/train/<class>/…` with `<dir>/val/<class>/…` (or test/): the split is yours.
Images may sit in nested folders; any PIL-readable format and mode (see data/images.py) works.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from texdistill.data.images import IMAGE_SUFFIXES, Items, file_source, list_images
from texdistill.data.source import DataRequest, Found, select_classes
from texdistill.errors import DataError

DEFAULT_RES = 128
TEST_FOLDERS = ("val", "test")


def _class_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def held_out(files: list[Path], root: Path, fraction: float) -> tuple[list[Path], list[Path]]:
    """(train, test) of one class: the `fraction` of files whose path hashes lowest go to test (≥ 1 train)."""
    if fraction <= 0 or len(files) < 2:
        return files, []
    ranked = sorted(files, key=lambda p: hashlib.sha1(os.path.relpath(p, root).encode()).hexdigest())
    n_test = min(len(files) - 1, max(1, round(fraction * len(files))))
    test = set(ranked[:n_test])
    return [p for p in files if p not in test], sorted(test)


def scan_folder(request: DataRequest) -> Found:
    """Class sub-folders of --data-dir (pick some with --classes a,b,c), resized to --res (default 128)."""
    if request.data_dir is None:
        raise DataError("--data folder needs --data-dir: a folder with one sub-folder of images per class")
    root = Path(request.data_dir)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; --data-dir must hold one sub-folder of images per class")
    test_dir = next((root / t for t in TEST_FOLDERS if (root / t).is_dir()), None)
    split_layout = (root / "train").is_dir() and test_dir is not None
    train_dir = root / "train" if split_layout else root
    available = _class_folders(train_dir)
    if not available:
        raise DataError(f"{train_dir} has no class sub-folders; put each class's images in <dir>/<class>/")
    keep = select_classes(available, request.classes, f"folder {train_dir}")
    names = [available[c] for c in keep]
    items: Items = {"train": [], "test": []}
    for label, name in enumerate(names):
        files = list_images(train_dir / name)
        if not files:
            raise DataError(f"class folder {train_dir / name} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                            f"add some or leave the class out with --classes")
        if split_layout:
            train, test = files, list_images(test_dir / name) if (test_dir / name).is_dir() else []
        else:
            train, test = held_out(files, root, request.holdout)
        items["train"] += [(p, label) for p in train]
        items["test"] += [(p, label) for p in test]
    if split_layout:
        layout = f"train/<class>/ and {test_dir.name}/<class>/ folders"
    elif request.holdout > 0:
        layout = f"<class>/ folders, {request.holdout:.0%} of each class held out as the test split (--holdout)"
    else:
        layout = "<class>/ folders, no test split (--holdout 0)"
    return file_source("folder", root, layout, names, items, request.res or DEFAULT_RES, request)
