"""Texture products: tiled previews of toroidal canvases and grids of images."""

from __future__ import annotations

import math

import torch


def tile(canvas: torch.Tensor, ny: int = 3, nx: int = 3) -> torch.Tensor:
    """Repeat a canvas (C, H, W) ny × nx times → (C, ny·H, nx·W); seamless iff the canvas is a torus."""
    return canvas.repeat(1, ny, nx)


def image_grid(images: torch.Tensor, columns: int | None = None, pad: int = 2) -> torch.Tensor:
    """Images (n, C, H, W) of one dtype laid out in a grid with `pad` pixels of spacing → (C, H', W')."""
    n, c, h, w = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    out = torch.zeros(c, rows * (h + pad) - pad, columns * (w + pad) - pad, dtype=images.dtype)
    if images.dtype == torch.uint8:
        out.fill_(255)
    for i in range(n):
        r, col = divmod(i, columns)
        out[:, r * (h + pad): r * (h + pad) + h, col * (w + pad): col * (w + pad) + w] = images[i]
    return out
