"""Texture products: torus crops and tiling, seam metrics, wrap-aware resampling, captions.

A canvas is a torus: pixel (y, x) neighbours (y, (x + 1) mod W). Everything here respects that, so what
comes out (previews, print tiles, Wang tiles) stays seamless when the canvas is.
"""

from __future__ import annotations

import math

import torch


def tile(canvas: torch.Tensor, ny: int = 3, nx: int = 3) -> torch.Tensor:
    """Repeat a canvas (C, H, W) ny × nx times → (C, ny·H, nx·W); seamless iff the canvas is a torus."""
    return canvas.repeat(1, ny, nx)


def wrap_crops(canvases: torch.Tensor, index: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
               crop: tuple[int, int]) -> torch.Tensor:
    """Crops (B, C, h, w) of canvases (K, C, Hc, Wc) at top-left (dy, dx), wrapping around both edges.

    Equivalent to rolling canvas index[b] by (-dy[b], -dx[b]) and taking the top-left crop; done as one
    gather so the gradient reaches every canvas pixel, on both sides of a seam.
    """
    h, w = crop
    _, _, canvas_h, canvas_w = canvases.shape
    rows = (dy.view(-1, 1) + torch.arange(h, device=canvases.device)) % canvas_h  # (B, h)
    cols = (dx.view(-1, 1) + torch.arange(w, device=canvases.device)) % canvas_w  # (B, w)
    picked = canvases.permute(0, 2, 3, 1)[index.view(-1, 1, 1), rows.unsqueeze(2), cols.unsqueeze(1)]
    return picked.permute(0, 3, 1, 2)  # (B, C, h, w)


def random_rolls(images: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """Each image (B, C, H, W) rolled with wrap-around by a uniformly random (dy, dx) with `probability`
    (else unchanged): the crops a texture canvas of that image tiled would give."""
    b, _, h, w = images.shape
    rolled = torch.rand(b, generator=generator) < probability
    dy = torch.randint(h, (b,), generator=generator) * rolled
    dx = torch.randint(w, (b,), generator=generator) * rolled
    return wrap_crops(images, torch.arange(b, device=images.device), dy.to(images.device), dx.to(images.device), (h, w))


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


# ---- seam metrics --------------------------------------------------------------------------------
def line_steps(canvas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean |Δ| across each column boundary (W,) and row boundary (H,) of a canvas (C, H, W).

    Boundary j lies between column j and column (j + 1) mod W, so the last entry is the wrap-around seam.
    """
    x = canvas.detach().double()
    cols = (torch.roll(x, -1, dims=2) - x).abs().mean(dim=(0, 1))  # (W,)
    rows = (torch.roll(x, -1, dims=1) - x).abs().mean(dim=(0, 2))  # (H,)
    return cols, rows


def seam_ratio(canvas: torch.Tensor) -> float:
    """Mean |Δ| across the wrap seams ÷ mean |Δ| between interior neighbours: ≈1 invisible, ≫1 a visible edge."""
    cols, rows = line_steps(canvas)
    h, w = canvas.shape[-2:]
    seam = (cols[-1] * h + rows[-1] * w) / (h + w)
    interior = (cols[:-1].sum() * h + rows[:-1].sum() * w) / ((w - 1) * h + (h - 1) * w)
    return float(seam / interior.clamp_min(1e-12))


def seam_zscore(canvas: torch.Tensor) -> float:
    """The stronger wrap seam in standard deviations of the interior lines' mean |Δ| (invisible: |z| ≲ 3).

    Harder than the ratio: a seam only slightly stronger than average still stands out when the interior
    lines are all alike, which is what the eye picks up on a smooth texture.
    """
    scores = []
    for lines in line_steps(canvas):
        interior = lines[:-1]
        scores.append((lines[-1] - interior.mean()) / interior.std().clamp_min(1e-12))
    return float(max(scores))


def seam_metrics(units: torch.Tensor) -> dict[str, float]:
    """Seam ratio and z-score averaged over tileable units (n, C, H, W): canvases, or images tiled."""
    return {"ratio": sum(seam_ratio(u) for u in units) / len(units),
            "z": sum(seam_zscore(u) for u in units) / len(units)}


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


def quantize(x: torch.Tensor, white: float = 1.0) -> torch.Tensor:
    """Display values in [0, white] (float) → uint8, rounded and clipped."""
    return (x.detach().double().cpu() * (255.0 / white)).round().clamp(0, 255).to(torch.uint8)
