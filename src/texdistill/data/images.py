"""Image files → uint8 RGB squares: any PIL mode, corrupt files skipped and reported, decoded on all cores."""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from texdistill.data.dataset import square_crop
from texdistill.data.source import ALL_SPLITS, DataRequest, Decoded, Found, class_counts
from texdistill.data.validation import carve_files, val_layout
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


BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}


def background_rgb(text: str) -> tuple[int, int, int]:
    """'white', 'black' or '#rrggbb' → an RGB triple; DataError naming the accepted forms otherwise."""
    if text.lower() in BACKGROUNDS:
        return BACKGROUNDS[text.lower()]
    if len(text) == 7 and text.startswith("#"):
        try:
            return tuple(int(text[i:i + 2], 16) for i in (1, 3, 5))
        except ValueError:
            pass
    raise DataError(f"--background must be white, black or a colour #rrggbb (e.g. #808080), got '{text}'")


def to_rgb(image: Image.Image, background: tuple[int, int, int] = BACKGROUNDS["white"]) -> Image.Image:
    """Any PIL mode → RGB: 16-bit/float greyscale rescaled to 8 bits, transparency composited onto `background`."""
    image = ImageOps.exif_transpose(image)  # phone photos store their rotation in EXIF
    if image.mode in HIGH_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        scale = _full_scale(image.mode, values.max(initial=0.0))
        image = Image.fromarray(np.clip(values / scale * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")  # a palette may carry transparency
    if image.mode in ALPHA_MODES:
        image = Image.alpha_composite(Image.new("RGBA", image.size, (*background, 255)), image.convert("RGBA"))
    return image.convert("RGB")


def _full_scale(mode: str, top: float) -> float:
    """The white level of a high-bit-depth greyscale image: 16-bit modes are 65535; 32-bit int and float
    modes carry no bit depth, so their range is guessed from the largest value (1, 255 or 65535)."""
    if mode.startswith("I;16"):
        return 65535.0
    if mode == "F" and top <= 1.0:
        return 1.0
    return 255.0 if top <= 255 else 65535.0


@dataclass(frozen=True)
class Reading:
    """How image files become training images: the side, how many crops per picture, the background."""

    res: int
    patches: int = 0  # 0: one centre crop per picture; N: N random crops per picture at several scales
    background: tuple[int, int, int] = BACKGROUNDS["white"]

    @property
    def per_file(self) -> int:
        return self.patches or 1


def read_image(path: Path, reading: Reading) -> np.ndarray:
    """One image file → uint8 (per_file, res, res, 3): its centre crop (shorter side resized to res), or
    `patches` random square crops — side log-uniform between res and the shorter side, anywhere in the picture,
    resized to res — drawn from a generator seeded by the file's name, so a file always gives the same patches."""
    res = reading.res
    with Image.open(path) as image:
        if image.format == "JPEG" and not reading.patches:
            image.draft(image.mode, (res, res))  # decode at the smallest DCT scale that is still ≥ res
        image.load()
        rgb = to_rgb(image, reading.background)
    if not reading.patches:
        return np.asarray(square_crop(rgb, res), dtype=np.uint8)[None]
    w, h = rgb.size
    short = min(w, h)
    seed = int.from_bytes(hashlib.sha1(f"{path.name}:{reading.patches}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    low, high = np.log(min(res, short)), np.log(short)  # never upsampled from fewer pixels than res, unless tiny
    out = np.empty((reading.patches, res, res, 3), dtype=np.uint8)
    for i in range(reading.patches):
        side = int(round(np.exp(rng.uniform(low, max(low, high)))))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = rgb.crop((x, y, x + side, y + side))
        out[i] = np.asarray(crop.resize((res, res), Image.Resampling.BICUBIC, reducing_gap=2.0), dtype=np.uint8)
    return out


def _try_read(path: Path, reading: Reading) -> np.ndarray | str:
    try:
        return read_image(path, reading)
    except Exception as exc:  # noqa: BLE001 — any decoder failure means: skip this file and say why
        return f"{exc.__class__.__name__}: {exc}"


def decode_files(items: list[tuple[Path, int]], reading: Reading, desc: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode (file, label) pairs in parallel → uint8 (N·per_file, res, res, 3), labels, skipped "file: reason"."""
    res, per_file = reading.res, reading.per_file
    images = np.zeros((len(items), per_file, res, res, 3), dtype=np.uint8)
    ok = np.zeros(len(items), dtype=bool)
    skipped = []
    workers = min(32, os.cpu_count() or 1)  # PIL decodes and resizes without the GIL
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda item: _try_read(item[0], reading), items, chunksize=16)
        for i, result in enumerate(tqdm(results, total=len(items), desc=desc, unit="img", dynamic_ncols=True)):
            if isinstance(result, str):
                skipped.append(f"{items[i][0]}: {result}")
            else:
                images[i], ok[i] = result, True
    labels = np.repeat(np.array([label for _, label in items], dtype=np.int64), per_file)
    return images.reshape(-1, res, res, 3)[np.repeat(ok, per_file)], labels[np.repeat(ok, per_file)], skipped


def file_source(name: str, root: Path, layout: str, class_names: list[str], items: Items, res: int,
                request: DataRequest) -> Found:
    """A Found for datasets of image files: one sample per file, or --patches samples per file. Splits are made
    by file before decoding, so the patches of a picture are all in one split (no leakage into the test set),
    the validation split (request.val_fraction of each class's training pictures) included."""
    reading = Reading(res, request.patches, background_rgb(request.background))
    k = len(class_names)
    if request.val_fraction > 0:
        items = {**items}
        items["train"], items["val"] = carve_files(items["train"], root, request.val_fraction)
        layout += val_layout(request.val_fraction).replace("images", "pictures")
    splits = [split for split in ALL_SPLITS if split in items]
    counts = {split: [n * reading.per_file for n in class_counts(np.array([label for _, label in items[split]],
                                                                          dtype=np.int64), k)]
              for split in splits}
    if request.patches:
        layout += f"; {request.patches} random crops per picture (--patches), each split's pictures apart"

    def decode() -> Decoded:
        arrays, skipped = {}, []
        for split in splits:
            images, labels, bad = decode_files(items[split], reading, f"decode {name} {split}")
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

    files = [path for split in splits for path, _ in items[split]]
    return Found(name, root, layout, class_names, counts, files, 3, res, decode, patched=True,
                 val_fraction=request.val_fraction)
