"""Texture products: wrap-aware resampling (print tiles), captions and contact-sheet layout.

A canvas is a torus: pixel (y, x) neighbours (y, (x + 1) mod W). Everything here respects that, so what
comes out (previews, print tiles, Wang tiles) stays seamless when the canvas is.
"""

from __future__ import annotations

import math

import torch

from texdistill.method.torus import image_grid


# ---- wrap-aware resampling -------------------------------------------------------------------------
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


def print_pixels(canvas_shape: tuple[int, int], size_cm: float, dpi: float) -> tuple[int, int]:
    """Pixel size (h, w) of a print tile size_cm wide at `dpi`, keeping the canvas's aspect ratio."""
    width = max(1, round(size_cm / 2.54 * dpi))
    return max(1, round(width * canvas_shape[0] / canvas_shape[1])), width


# ---- labels ---------------------------------------------------------------------------------------
def caption(image: torch.Tensor, text: str, size: int = 11, background: tuple[int, ...] | None = None,
            ink: tuple[int, ...] | None = None) -> torch.Tensor:
    """A uint8 image (C, H, W) with `text` centred in a band below it → (C, H + band, W).

    background and ink are per-channel uint8 values (default white and black); text too wide is cut with "…".
    """
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    c, h, w = image.shape
    background, ink = tuple(background or (255,) * c), tuple(ink or (0,) * c)
    font = ImageFont.load_default(size=size)
    band = round(size * 1.8)
    pil = Image.new("L" if c == 1 else "RGB", (w, h + band), background[0] if c == 1 else background)
    array = image.permute(1, 2, 0).cpu().numpy()
    pil.paste(Image.fromarray(np.ascontiguousarray(array[:, :, 0] if c == 1 else array)), (0, 0))
    draw = ImageDraw.Draw(pil)
    while len(text) > 1 and draw.textlength(text, font=font) > w - 2:
        text = text[:-2] + "…"
    draw.text((w / 2, h + band / 2), text, fill=ink[0] if c == 1 else ink, font=font, anchor="mm")
    out = torch.from_numpy(np.array(pil))
    return out.unsqueeze(0) if c == 1 else out.permute(2, 0, 1).contiguous()


def captioned_grid(images: list[torch.Tensor], labels: list[str], columns: int, min_side: int = 96) -> torch.Tensor:
    """uint8 images (C, H, W) of one size, enlarged to ≥ min_side and captioned, in a grid → (C, H', W')."""
    return image_grid(torch.stack([caption(enlarge(image, min_side), label) for image, label in zip(images, labels)]),
                      columns=columns, pad=6)


def enlarge(image: torch.Tensor, min_side: int) -> torch.Tensor:
    """Nearest-neighbour enlargement (C, H, W) → (C, kH, kW) by the smallest integer k giving a side ≥ min_side."""
    k = max(1, math.ceil(min_side / min(image.shape[1:])))
    return image.repeat_interleave(k, dim=1).repeat_interleave(k, dim=2)


