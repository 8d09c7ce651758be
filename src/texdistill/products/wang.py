"""Wang tiles cut from a toroidal canvas (after Cohen, Shade, Hiller & Deussen, SIGGRAPH 2003).

Every edge colour is a *diamond*: a square sample of the texture, centred on the edge, whose diagonal is the
edge itself. Horizontal colour c owns the canvas window centred at `sources[0, c]`; vertical colour c the one
at `sources[1, c]`. A tile with edges (N, E, S, W) is made of the four half-diamonds that lie inside it: the
tile's top row *is* row `y` of the N diamond's source, and the tile above it — whose S edge has the same
colour — ends with row `y − 1` of the same source. So wherever two edges match in colour, the pixels on
either side are two neighbouring rows (columns) of the canvas: continuous by construction, and the canvas
being a torus, a diamond can sit anywhere, across its seams too.

Inside a tile the four half-diamonds meet along its diagonals; Cohen et al. hide those joins with a
min-cost cut, we cross-fade: the weight of edge k at a pixel is exp(−(d_k − d_min) / (blend · d_min)), d the
distance to each edge. The fade is zero-width at the border (edge pixels come from their own diamond only;
the two corner pixels of an edge are an even mix of the two edges meeting there) and widest in the middle.

The tile set (Cohen et al.'s rule for stochastic tiling): for each pair of (N, W) colours there are two tiles,
with (S, E) = (N + j, W + j) mod K for j = 0, 1, so a scanline tiler always has two choices → 2K² tiles
(8 for K = 2) and a tiling that never repeats.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from texdistill.errors import ConfigError
from texdistill.method.torus import wrap_crops

N, E, S, W = range(4)


@dataclass
class WangTiles:
    """A tile set: pixels, edge colours, and where each colour's diamond was cut from the canvas."""

    tiles: torch.Tensor  # (n, C, T, T)
    edges: torch.Tensor  # (n, 4) colour of the N, E, S, W edge
    sources: torch.Tensor  # (2, K, 2): [horizontal | vertical][colour] → (y, x) of the diamond centre

    @property
    def size(self) -> int:
        return self.tiles.shape[-1]


def tile_set(colors: int) -> torch.Tensor:
    """Edge colours (2K², 4) as (N, E, S, W): two tiles per (N, W) pair, differing in both S and E."""
    rows = [(n, (w + j) % colors, (n + j) % colors, w)
            for n in range(colors) for w in range(colors) for j in range(2)]
    return torch.tensor(rows)


def edge_weights(size: int, blend: float) -> torch.Tensor:
    """(4, T, T) weights of the N, E, S, W layers: one-hot on the border, a cross-fade along the diagonals."""
    r = torch.arange(size, dtype=torch.float64).view(-1, 1).expand(size, size)
    x = r.t()
    distance = torch.stack([r, size - 1 - x, size - 1 - r, x])  # (4, T, T) to the N, E, S, W edge
    nearest = distance.min(dim=0).values
    width = (blend * nearest).clamp_min(1e-9)  # zero on the border → exactly the nearest edge's layer
    weights = torch.exp(-(distance - nearest) / width)
    return weights / weights.sum(dim=0, keepdim=True)


def wang_tiles(canvas: torch.Tensor, colors: int = 2, size: int | None = None, blend: float = 0.3,
               generator: torch.Generator | None = None) -> WangTiles:
    """Cut a set of 2·colors² Wang tiles of side `size` (default: half the canvas) from a canvas (C, H, W)."""
    _, height, width = canvas.shape
    size = size or min(height, width) // 2
    if colors < 2:
        raise ConfigError(f"--wang-colors must be ≥ 2 (one colour per edge tiles periodically), got {colors}")
    if not 4 <= size <= min(height, width):
        raise ConfigError(f"--wang-tile must be between 4 and the canvas side {min(height, width)}, got {size}")
    generator = generator or torch.Generator().manual_seed(0)
    sources = torch.stack([torch.randint(height, (2, colors), generator=generator),
                           torch.randint(width, (2, colors), generator=generator)], dim=-1)  # (2, K, 2)
    edges = tile_set(colors)
    half = size // 2
    # top-left canvas corner of each layer, so that the layer's edge row/column lands on the diamond centre
    h_src, v_src = sources[0][edges[:, [N, S]]], sources[1][edges[:, [E, W]]]  # (n, 2, 2)
    dy = torch.stack([h_src[:, 0, 0], v_src[:, 0, 0] - half, h_src[:, 1, 0] - size, v_src[:, 1, 0] - half], 1)
    dx = torch.stack([h_src[:, 0, 1] - half, v_src[:, 0, 1] - size, h_src[:, 1, 1] - half, v_src[:, 1, 1]], 1)
    layers = wrap_crops(canvas.unsqueeze(0), torch.zeros(dy.numel(), dtype=torch.long), dy.flatten(),
                        dx.flatten(), (size, size)).reshape(len(edges), 4, canvas.shape[0], size, size)
    weights = edge_weights(size, blend).to(canvas.dtype)  # (4, T, T)
    tiles = (layers * weights.view(1, 4, 1, size, size)).sum(dim=1)  # (n, C, T, T)
    return WangTiles(tiles, edges, sources)


def wang_layout(tiles: WangTiles, rows: int, cols: int, generator: torch.Generator) -> torch.Tensor:
    """(rows, cols) tile indices, placed in scanline order: each matches the N and W colours it meets."""
    colors = int(tiles.edges.max()) + 1
    layout = torch.empty(rows, cols, dtype=torch.long)
    for i in range(rows):
        for j in range(cols):
            north = tiles.edges[layout[i - 1, j], S] if i else torch.randint(colors, (), generator=generator)
            west = tiles.edges[layout[i, j - 1], E] if j else torch.randint(colors, (), generator=generator)
            fits = ((tiles.edges[:, N] == north) & (tiles.edges[:, W] == west)).nonzero().flatten()
            layout[i, j] = fits[torch.randint(len(fits), (), generator=generator)]
    return layout


def render_wang(tiles: WangTiles, layout: torch.Tensor) -> torch.Tensor:
    """The tiling (C, rows·T, cols·T) of a layout of tile indices."""
    rows, cols = layout.shape
    picked = tiles.tiles[layout.flatten()].view(rows, cols, -1, tiles.size, tiles.size)
    return picked.permute(2, 0, 3, 1, 4).reshape(-1, rows * tiles.size, cols * tiles.size)
