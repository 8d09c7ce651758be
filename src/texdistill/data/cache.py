"""Decoded datasets cached as uint8 .npy files: memory-mapped on load (a second run starts in seconds), no pickle.

One folder per (reader, source folder, resolution, class list, hold-out, validation split) under the cache
directory. Its
meta.json records a fingerprint of every source file (path, size, mtime); when a file is added, removed or
changed the folder is rebuilt in place. Folders are written under a temporary name and renamed into place,
so an interrupted run never leaves a half-written cache behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from texdistill.data.dataset import ImageDataset
from texdistill.data.source import ALL_SPLITS, DataRequest, Found, to_dataset
from texdistill.errors import CheckpointError, DataError
from texdistill.storage import read_json, write_json

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when decoding changes, so old caches are rebuilt
META = "meta.json"


def identity(found: Found, request: DataRequest) -> dict:
    """What the cached arrays depend on besides the files' contents."""
    ident = {"version": CACHE_VERSION, "reader": request.name, "root": str(Path(found.root).resolve()),
             "res": found.res, "classes": list(found.class_names), "holdout": request.holdout}
    # options added later count only when set, so caches made before them keep their folder; a cache made
    # before the validation split existed holds all training images: it is the cache of val_fraction 0
    ident.update({k: getattr(request, k) for k, default in (("patches", 0), ("background", "white"),
                                                             ("val_fraction", 0.0))
                  if getattr(request, k) != default})
    return ident


def fingerprint(found: Found) -> str:
    """Hash of (relative path, size, mtime) of every source file."""
    root = Path(found.root)
    entries = []
    for path in found.files:
        try:
            stat = path.stat()
        except OSError as exc:
            raise DataError(f"{path} disappeared while reading {found.name}; run again") from exc
        entries.append((os.path.relpath(path, root), stat.st_size, stat.st_mtime_ns))
    return _digest(entries)


def cache_path(found: Found, request: DataRequest, cache_dir: str | Path) -> Path:
    return Path(cache_dir) / f"{request.name}-{found.res}px-{_digest(identity(found, request))[:12]}"


def load_cached(found: Found, request: DataRequest, cache_dir: str | Path) -> ImageDataset:
    """The dataset from its cache folder, (re)building the folder when missing or stale."""
    folder = cache_path(found, request, cache_dir)
    ident, prints = identity(found, request), fingerprint(found)
    meta = _read_meta(folder)
    if meta.get("identity") == ident and meta.get("fingerprint") == prints:
        try:
            dataset = open_cache(folder, found.name, meta)
            log.info("%s: using the decoded cache %s", found.name, folder)
            return dataset
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s: cache %s is unreadable (%s); rebuilding it", found.name, folder, exc)
    elif meta:
        log.info("%s: the source files changed since %s was built; rebuilding it", found.name, folder)
    started = time.time()
    decoded = found.decode()
    dataset = to_dataset(found, decoded)
    meta = {"identity": ident, "fingerprint": prints, "name": found.name, "class_names": dataset.class_names,
            "layout": found.layout, "skipped": decoded.skipped, "decode_seconds": round(time.time() - started, 1)}
    _write(folder, dataset, meta)
    return open_cache(folder, found.name, meta)


def open_cache(folder: Path, name: str, meta: dict) -> ImageDataset:
    """Memory-map a cache folder (copy-on-write: nothing is read until used, the files are never modified).
    A folder without val_*.npy (no validation split, or written before there was one) has an empty one."""
    arrays = {f"{split}_{kind}": torch.from_numpy(np.load(folder / f"{split}_{kind}.npy", mmap_mode="c",
                                                          allow_pickle=False))
              for split in ALL_SPLITS for kind in ("images", "labels")
              if split != "val" or (folder / f"{split}_{kind}.npy").exists()}
    return ImageDataset(name, arrays["train_images"], arrays["train_labels"], arrays["test_images"],
                        arrays["test_labels"], class_names=list(meta["class_names"]), layout=meta["layout"],
                        skipped=list(meta["skipped"]), val_images=arrays.get("val_images"),
                        val_labels=arrays.get("val_labels"))


def _write(folder: Path, dataset: ImageDataset, meta: dict) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for split in ALL_SPLITS:
        images, labels = dataset.split(split)
        if split == "val" and len(labels) == 0:
            continue  # no validation split: the folder is laid out as before there was one
        np.save(tmp / f"{split}_images.npy", images.numpy(), allow_pickle=False)  # (N, C, H, W) uint8
        np.save(tmp / f"{split}_labels.npy", labels.numpy(), allow_pickle=False)
    write_json(tmp / META, meta)  # written last: a folder with meta.json is complete
    old = folder.parent / f".{folder.name}.old-{os.getpid()}"
    if folder.exists():
        folder.rename(old)
    try:
        tmp.rename(folder)
    except OSError:  # another process finished the same cache first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def _read_meta(folder: Path) -> dict:
    try:
        return read_json(folder / META) if (folder / META).exists() else {}
    except (CheckpointError, OSError):  # a damaged meta.json just means "rebuild"
        return {}


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
