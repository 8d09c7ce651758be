"""A user cache of networks trained on real data (expert trajectories, judges, recognisers), keyed by content, as
model hubs do.

Where: `$TEXDISTILL_CACHE` if set, else `$XDG_CACHE_HOME/texdistill`, else `~/.cache/texdistill` (the convention
of torch hub and Hugging Face); the networks live in its `networks/` folder. `TEXDISTILL_NO_CACHE=1` (or
`--no-cache`) turns it off: every run folder then trains its own.

An entry's name carries a hash of everything that determines the network: the dataset's identity (reader,
resolution, classes, hold-out, …) with a SHA-256 of its uint8 train and test arrays and labels (so moving or
re-decoding the same data finds the same entry, and changed data another), the architecture, the training
recipe and its version, the epochs and the seed (an expert: every option of its training and its index).
Entries are safetensors with JSON metadata (no pickle), written to a temp file and renamed into place, so
concurrent writers each leave a whole file (the last rename wins; both trained the same network); a reader
checks the file and loads the weights strictly, and an unreadable entry is trained again with a warning. A run
folder still keeps a copy of every network it used (its `cache/judges/`, its `experts/`). The key does not hold
the thread count: a network trained under another number of threads adds in another order and ends with other
weights (a recogniser trained under 1 thread and under 2: test accuracy 86.4 against 86.6 %), so a run that
reuses it is as reproducible as the first run that trained it, not more.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from texdistill.config import CommonConfig
from texdistill.data import ImageDataset, find_dataset
from texdistill.storage import atomic_write

CACHE_ENV = "TEXDISTILL_CACHE"
OFF_ENV = "TEXDISTILL_NO_CACHE"


def user_cache_dir() -> Path | None:
    """The user cache's networks folder, or None when TEXDISTILL_NO_CACHE turns it off."""
    if os.environ.get(OFF_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        return None
    root = os.environ.get(CACHE_ENV)
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = Path(xdg) / "texdistill" if xdg else Path.home() / ".cache" / "texdistill"
    return Path(root).expanduser() / "networks"


def content_fingerprint(*tensors: torch.Tensor) -> str:
    """SHA-256 of the tensors' shapes, dtypes and bytes (Fashion-MNIST: ~10 ms; a 500 MB array: ~1 s)."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(f"{tuple(t.shape)} {t.dtype}".encode())
        flat = t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy()
        for i in range(0, len(flat), 1 << 24):  # 16 MiB at a time: no copy of a memory-mapped array
            digest.update(flat[i:i + (1 << 24)])
    return digest.hexdigest()


def dataset_identity(cfg: CommonConfig, dataset: ImageDataset) -> dict[str, Any]:
    """What makes a stage's dataset this dataset, wherever it lives: reader, resolution, classes, hold-out, counts,
    patches, background and the fingerprint of its train and test arrays."""
    found = find_dataset(**cfg.dataset_options())
    return {"reader": cfg.data, "res": found.res, "classes": list(found.class_names), "holdout": cfg.holdout,
            "counts": found.counts, "content": content_fingerprint(
                dataset.train_images, dataset.train_labels, dataset.test_images, dataset.test_labels),
            **({"patches": cfg.patches} if cfg.patches else {}),
            **({"background": cfg.background} if cfg.background != "white" else {})}


def key_of(determinants: dict[str, Any]) -> str:
    """A cache entry's key: 16 hex digits of the SHA-256 of everything that determines it (JSON, sorted keys)."""
    return hashlib.sha256(json.dumps(determinants, sort_keys=True).encode()).hexdigest()[:16]


def place(source: Path, target: Path) -> None:
    """Copy `source` to `target` atomically (temp file in target's folder, then rename)."""
    with open(source, "rb") as f:
        atomic_write(target, lambda out: shutil.copyfileobj(f, out, 1 << 20))
