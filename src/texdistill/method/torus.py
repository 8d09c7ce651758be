"""The torus a texture canvas is: wrap-around crops, tiling, and how visible its seams are.

A canvas is a torus: pixel (y, x) neighbours (y, (x + 1) mod W). Training draws its samples with `wrap_crops`,
so no seam is special; the seam metrics measure whether the result shows one.
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


# ---- seam metrics ------------------------------------------------------------------------------
VISIBLE = {"ratio": 1.5, "z": 3.0, "edge_z": 3.0, "tile_edge_z": 3.0}  # above these an edge shows


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


def robust_z(lines: torch.Tensor) -> torch.Tensor:
    """Each line's value (n,) in robust z-units of all the *other* lines: (v − median) / (1.4826 · MAD); where
    more than half the other lines are alike (MAD 0: e.g. a black background) the mean absolute deviation
    (× 1.2533, its normal consistency factor) stands in for the MAD."""
    scores = torch.empty_like(lines)
    for i in range(len(lines)):
        others = torch.cat([lines[:i], lines[i + 1:]])
        deviation = (others - others.median()).abs()
        scale = 1.4826 * deviation.median() if deviation.median() > 0 else 1.2533 * deviation.mean()
        scores[i] = (lines[i] - others.median()) / scale.clamp_min(1e-12)
    return scores


def edge_metrics(canvas: torch.Tensor, crop: tuple[int, int]) -> dict[str, float]:
    """Straight edges anywhere on a canvas (C, H, W): the largest robust z of the mean |Δ| across any row or column
    boundary (`edge_z`), and across those at multiples of the crop side (`tile_edge_z`: where a collage's blocks
    meet, the wrap seam included). Invisible: ≲ 3."""
    cols, rows = (robust_z(lines) for lines in line_steps(canvas))
    at_tiles = [lines[side - 1::side] for lines, side in ((cols, crop[1]), (rows, crop[0]))]
    return {"edge_z": float(torch.cat([cols, rows]).max()), "tile_edge_z": float(torch.cat(at_tiles).max())}


def seam_metrics(units: torch.Tensor, crop: tuple[int, int] | None = None) -> dict[str, float]:
    """Seam ratio and z-score averaged over tileable units (n, C, H, W): canvases, or images tiled; with the
    `crop` of a canvas also its straight edges (edge_metrics), the largest over the units."""
    metrics = {"ratio": sum(seam_ratio(u) for u in units) / len(units),
               "z": sum(seam_zscore(u) for u in units) / len(units)}
    if crop is not None:
        edges = [edge_metrics(u, crop) for u in units]
        metrics.update({key: max(e[key] for e in edges) for key in ("edge_z", "tile_edge_z")})
    return metrics


HALF_NYQUIST = 0.25  # cycles per pixel


def high_frequency_share(images: torch.Tensor) -> float:
    """The share of the spectral power of images (B, C, H, W) (grey levels, each image's mean removed) that lies
    above half the Nyquist frequency (radially): pixel-level speckle raises it."""
    grey = images.double().mean(dim=1)
    power = torch.fft.fft2(grey - grey.mean(dim=(1, 2), keepdim=True)).abs().pow(2).sum(0)  # (H, W)
    fy = torch.fft.fftfreq(grey.shape[1], dtype=torch.float64).view(-1, 1)
    fx = torch.fft.fftfreq(grey.shape[2], dtype=torch.float64).view(1, -1)
    return float(power[(fy ** 2 + fx ** 2).sqrt() > HALF_NYQUIST].sum() / power.sum().clamp_min(1e-12))


# a seam counts as invisible while it is no stronger than the interior lines vary: a rolled smooth torus stays
# below both (tests/test_textures.py), an edge-clamped resize or a collage's block edges do not
INVISIBLE_RATIO, INVISIBLE_Z = 1.5, 3.0


def seam_verdict(ratio: float, z: float) -> str:
    """'invisible' or 'visible', from a seam's ratio and z-score (invisible: ratio ≤ 1.5 and |z| ≤ 3)."""
    return "invisible" if ratio <= INVISIBLE_RATIO and abs(z) <= INVISIBLE_Z else "visible"


def quantize(x: torch.Tensor, white: float = 1.0) -> torch.Tensor:
    """Display values in [0, white] (float) → uint8, rounded and clipped."""
    return (x.detach().double().cpu() * (255.0 / white)).round().clamp(0, 255).to(torch.uint8)
