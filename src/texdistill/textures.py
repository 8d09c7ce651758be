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


def _catmull_rom(t: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel (a = −0.5), support [−2, 2]."""
    t = t.abs()
    near = (1.5 * t - 2.5) * t * t + 1
    far = ((-0.5 * t + 2.5) * t - 4) * t + 2
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def periodic_resample_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) cubic resampling of one period of a periodic signal; taps past an end wrap around.

    Output j samples the input at (j + ½)·n_in/n_out − ½, so output j + n_out would sample the same point
    one period later: the result is again periodic. Shrinking widens the kernel (antialiasing).
    """
    ratio = n_in / n_out
    stretch = max(1.0, ratio)
    reach = math.ceil(2 * stretch)
    centres = (torch.arange(n_out, dtype=torch.float64) + 0.5) * ratio - 0.5  # (n_out,)
    taps = centres.floor().long().view(-1, 1) + torch.arange(1 - reach, reach + 1).view(1, -1)  # (n_out, k)
    weights = _catmull_rom((taps - centres.view(-1, 1)) / stretch)
    weights = weights / weights.sum(dim=1, keepdim=True)
    return torch.zeros(n_out, n_in, dtype=torch.float64).scatter_add_(1, taps % n_in, weights)


def resample_periodic(canvas: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A torus (C, H, W) resized to (C, h, w) float64 with a wrap-aware cubic filter, so it still tiles seamlessly."""
    x = canvas.double()
    if tuple(size) == tuple(canvas.shape[1:]):
        return x
    rows = periodic_resample_matrix(canvas.shape[1], size[0])  # (h, H)
    cols = periodic_resample_matrix(canvas.shape[2], size[1])  # (w, W)
    return torch.einsum("yi,cij,xj->cyx", rows, x, cols)
