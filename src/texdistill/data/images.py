"""Image files → uint8 RGB squares: any PIL mode, corrupt files skipped and reported, decoded on all cores."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from texdistill.data.dataset import square_crop
from texdistill.data.source import SPLITS, Decoded, Found, class_counts
from texdistill.errors import DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                  ".ppm", ".pgm", ".pbm"}
HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
# split → [(file, label)]
Items = dict[str, list[tuple[Path, int]]]


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_images(folder: Path) -> list[Path]:
    """Image files under `folder` (recursively), sorted; hidden files and other suffixes are ignored."""
    return sorted(p for p in folder.rglob("*") if is_image_file(p) and p.is_file())


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode → RGB: 16-bit/float greyscale rescaled to 8 bits, transparency composited onto white."""
    image = ImageOps.exif_transpose(image)  # phone photos store their rotation in EXIF
    if image.mode in HIGH_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        scale = _full_scale(image.mode, values.max(initial=0.0))
        image = Image.fromarray(np.clip(values / scale * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")  # a palette may carry transparency
    if image.mode in ALPHA_MODES:
        image = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image.convert("RGBA"))
    return image.convert("RGB")


def _full_scale(mode: str, top: float) -> float:
    """The white level of a high-bit-depth greyscale image: 16-bit modes are 65535; 32-bit int and float
    modes carry no bit depth, so their range is guessed from the largest value (1, 255 or 65535)."""
    if mode.startswith("I;16"):
        return 65535.0
    if mode == "F" and top <= 1.0:
        return 1.0
    return 255.0 if top <= 255 else 65535.0


def read_image(path: Path, res: int) -> np.ndarray:
    """One image file → uint8 (res, res, 3): shorter side resized to res, centre crop."""
    with Image.open(path) as image:
        if image.format == "JPEG":
            image.draft(image.mode, (res, res))  # decode at the smallest DCT scale that is still ≥ res
        image.load()
        return np.asarray(square_crop(to_rgb(image), res), dtype=np.uint8)


def _try_read(path: Path, res: int) -> np.ndarray | str:
    try:
        return read_image(path, res)
    except Exception as exc:  # noqa: BLE001 — any decoder failure means: skip this file and say why
        return f"{exc.__class__.__name__}: {exc}"


def decode_files(items: list[tuple[Path, int]], res: int, desc: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode (file, label) pairs in parallel → uint8 (N, res, res, 3), labels (N,), skipped "file: reason"."""
    images = np.zeros((len(items), res, res, 3), dtype=np.uint8)
    ok = np.zeros(len(items), dtype=bool)
    skipped = []
    workers = min(32, os.cpu_count() or 1)  # PIL decodes and resizes without the GIL
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda item: _try_read(item[0], res), items, chunksize=16)
        for i, result in enumerate(tqdm(results, total=len(items), desc=desc, unit="img", dynamic_ncols=True)):
            if isinstance(result, str):
                skipped.append(f"{items[i][0]}: {result}")
            else:
                images[i], ok[i] = result, True
    labels = np.array([label for _, label in items], dtype=np.int64)
    return images[ok], labels[ok], skipped


def file_source(name: str, root: Path, layout: str, class_names: list[str], items: Items, res: int) -> Found:
    """A Found for datasets of one image file per sample."""
    k = len(class_names)
    counts = {split: class_counts(np.array([label for _, label in items[split]], dtype=np.int64), k)
              for split in SPLITS}

    def decode() -> Decoded:
        arrays, skipped = {}, []
        for split in SPLITS:
            images, labels, bad = decode_files(items[split], res, f"decode {name} {split}")
            arrays[split] = (images, labels)
            skipped += bad
        if skipped:
            shown = "\n  ".join(skipped[:10]) + (f"\n  … {len(skipped) - 10} more" if len(skipped) > 10 else "")
            log.warning("%s: skipped %d unreadable file(s):\n  %s", name, len(skipped), shown)
        empty = [class_names[c] for c, n in enumerate(class_counts(arrays["train"][1], k)) if n == 0]
        if empty:
            raise DataError(f"{name}: class(es) {', '.join(empty)} have no readable training images "
                            f"({len(skipped)} file(s) could not be read, e.g. {skipped[0] if skipped else '-'}); "
                            f"fix or add images, or leave the class out with --classes")
        return Decoded(arrays, skipped)

    files = [path for split in SPLITS for path, _ in items[split]]
    return Found(name, root, layout, class_names, counts, files, 3, res, decode)
