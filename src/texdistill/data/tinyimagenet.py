"""Tiny ImageNet (200 classes, 64 px) in its release layout.

tiny-imagenet-200/
  wnids.txt                       the 200 synsets
  words.txt                       synset → readable names (the first one is used)
  train/<wnid>/images/*.JPEG      500 per class
  val/images/*.JPEG + val/val_annotations.txt   (file, wnid, box) per line — or val/<wnid>/ folders
Classes are ordered by synset id, as torchvision's ImageFolder (and so MTT) orders them.
"""

from __future__ import annotations

from pathlib import Path

from texdistill.data.images import Items, file_source, list_images
from texdistill.data.source import DataRequest, Found, select_classes
from texdistill.errors import DataError

NATIVE_RES = 64
FOLDER = "tiny-imagenet-200"


def _root(data_dir: Path) -> Path:
    for root in (data_dir, data_dir / FOLDER):
        if (root / "train").is_dir() and (root / "val").is_dir():
            return root
    raise DataError(f"{data_dir} is not a Tiny ImageNet folder: expected train/ and val/ (the extracted "
                    f"{FOLDER}/ of the release)")


def _readable_names(root: Path, wnids: list[str]) -> list[str]:
    """First readable name of each synset from words.txt, made unique; the synset id when unknown."""
    words = {}
    if (root / "words.txt").is_file():
        for line in (root / "words.txt").read_text(encoding="utf-8", errors="replace").splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid] = text.split(",")[0].strip()
    names = [words.get(w) or w for w in wnids]
    return [f"{n} ({w})" if names.count(n) > 1 else n for n, w in zip(names, wnids)]


def scan_tinyimagenet(request: DataRequest) -> Found:
    """Tiny ImageNet from --data-dir (the tiny-imagenet-200 folder or its parent)."""
    if request.data_dir is None:
        raise DataError(f"--data tinyimagenet needs --data-dir: the extracted {FOLDER}/ folder")
    root = _root(Path(request.data_dir))
    if (root / "wnids.txt").is_file():
        wnids = sorted(set((root / "wnids.txt").read_text().split()))
    else:
        wnids = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    names = _readable_names(root, wnids)
    keep = select_classes(names, request.classes, "tinyimagenet", aliases={w: i for i, w in enumerate(wnids)})
    chosen = [wnids[c] for c in keep]
    label_of = {w: i for i, w in enumerate(chosen)}
    items: Items = {"train": [(p, i) for i, w in enumerate(chosen) for p in list_images(root / "train" / w)]}
    annotations = root / "val" / "val_annotations.txt"
    if annotations.is_file():
        items["test"] = []
        for line in annotations.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[1] in label_of:
                items["test"].append((root / "val" / "images" / parts[0], label_of[parts[1]]))
        val_layout = "val/images/ labelled by val/val_annotations.txt"
    elif all((root / "val" / w).is_dir() for w in chosen):
        items["test"] = [(p, i) for i, w in enumerate(chosen) for p in list_images(root / "val" / w)]
        val_layout = "val/<wnid>/ folders"
    else:
        raise DataError(f"{root / 'val'} has neither val_annotations.txt nor one folder per class")
    layout = f"Tiny ImageNet release layout: train/<wnid>/images/, {val_layout}"
    return file_source("tinyimagenet", root, layout, [names[c] for c in keep], items, request.res or NATIVE_RES, request)
