"""A synthetic set before it learns: its initial pixels (random real images, a collage of them on a canvas, one
real image tiled, or noise) and its layout, described before it exists (for --dry-run and the bench)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from texdistill.data import ImageDataset, PixelSpace
from texdistill.errors import ConfigError
from texdistill.method.quilt import quilt

INITS = ("real", "noise", "real-tiled", "quilt")
QUILT_POOL = 32  # real images per class a quilt picks its patches from


@dataclass(frozen=True)
class SetLayout:
    """A synthetic set described before it exists (for --dry-run estimates and the bench): what a mode means."""

    values: int  # learnable pixel values
    step_batch: int  # samples per student step
    step_unit: str  # what those samples are
    eval_epoch: int  # samples per evaluation epoch
    baselines: int  # real-image baselines evaluated beside it (see baselines())
    description: str


def set_layout(texture: bool, classes: int, channels: int, res: int, ipc: int = 1, canvas_size: float = 2.0,
               canvas_samples: int = 1, batch_syn: int | None = None) -> SetLayout:
    """The layout build_synthetic would make with these options."""
    if texture:
        side = canvas_shape((res, res), canvas_size)[0]
        return SetLayout(classes * channels * side * side, canvas_samples * classes, "canvas crops",
                         classes * max(1, round(canvas_size ** 2)), 3,  # crops with the pixels of all canvases
                         f"{classes} texture canvases {channels}×{side}×{side}, {canvas_samples} {res}-px crop(s) "
                         f"per class per step")
    images = ipc * classes
    return SetLayout(images * channels * res * res, min(batch_syn or images, images), "images", images, 1,
                     f"{classes}×{ipc} images {channels}×{res}×{res}, batch {batch_syn or 'all'}")


def canvas_shape(crop: tuple[int, int], canvas_size: float) -> tuple[int, int]:
    """Canvas side lengths for a crop size and a canvas/crop ratio ≥ 1."""
    if canvas_size < 1:
        raise ConfigError(f"--canvas-size must be ≥ 1 (canvas side / crop side), got {canvas_size}")
    return round(crop[0] * canvas_size), round(crop[1] * canvas_size)


def real_images(dataset: ImageDataset, space: PixelSpace, label: int, count: int,
                generator: torch.Generator) -> torch.Tensor:
    """`count` random real images of a class, encoded (count, C, H, W); repeats if the class is small."""
    pool = dataset.images_of_class(label)
    pick = torch.randperm(len(pool), generator=generator)
    pick = pick.repeat(math.ceil(count / len(pool)))[:count]
    return space.encode(pool[pick])


def collage(images: torch.Tensor, canvas: tuple[int, int]) -> torch.Tensor:
    """Lay images (n, C, h, w) out row by row on a canvas (C, Hc, Wc), cropping the last row/column."""
    n, c, h, w = images.shape
    rows, cols = math.ceil(canvas[0] / h), math.ceil(canvas[1] / w)
    grid = images[torch.arange(rows * cols) % n].view(rows, cols, c, h, w)
    return grid.permute(2, 0, 3, 1, 4).reshape(c, rows * h, cols * w)[:, :canvas[0], :canvas[1]]


def init_pixels(kind: str, init: str, dataset: ImageDataset, space: PixelSpace, per_class: int,
                canvas: tuple[int, int] | None, generator: torch.Generator) -> torch.Tensor:
    """Initial pixels: (K·k, C, H, W) images, or (K, C, Hc, Wc) canvases when `canvas` is given."""
    if init not in INITS:
        raise ConfigError(f"unknown --init '{init}'; choose one of {', '.join(INITS)}")
    c, (h, w) = dataset.channels, dataset.image_size
    out_h, out_w = canvas or (h, w)
    blocks = []
    for label in range(dataset.num_classes):
        if init == "noise":
            blocks.append(torch.randn(1 if canvas else per_class, c, out_h, out_w, generator=generator))
        elif canvas is None:
            blocks.append(real_images(dataset, space, label, per_class, generator))
        elif init == "quilt":
            pool = real_images(dataset, space, label, QUILT_POOL, generator)
            blocks.append(quilt(pool, canvas, generator).unsqueeze(0))
        else:
            count = 1 if init == "real-tiled" else math.ceil(out_h / h) * math.ceil(out_w / w)
            blocks.append(collage(real_images(dataset, space, label, count, generator), canvas).unsqueeze(0))
    return torch.cat(blocks)
