"""A seamless real start for a texture canvas (--init quilt): image quilting on the torus.

Efros & Freeman (SIGGRAPH 2001) build a texture from overlapping patches, each joined to what is already there
along a minimum-error cut through the overlap. Here the patches are real images of the class, placed on a grid of
overlapping windows that wraps around the canvas, so the last window of a row (column) overlaps the first one and
is cut into it too: no straight edge remains, neither between patches nor at the wrap-around (a collage of the
same images has straight block edges at every multiple of the crop side). Each cut is softened to a 3-pixel blend.

Each window takes a random image of the pool, as a collage does. Efros & Freeman pick the patch that agrees best
with the overlap, which suits patches of one texture; from a pool of whole pictures it picks the emptiest, and
the quilt fills with background (pictures on white, README's example art: 55–100 % white pixels per class
against the collage's 59–72 %, start accuracy 68.8 against 86.7 % on the validation split; it ran as best of 8
candidates from commit 2594680 until issue 28's third round). Random picks suit pictures of objects on a plain
background (your own pictures; the art quilt trains as the collage does, docs/study.md "Round 3"); they cut
Fashion-MNIST's centred garments into pieces (starts 37.4 / 41.2 / 34.6 % against the collage's 48.4 / 53.1 /
52.0, seeds 0–2), where best-of-8 started at 48.8 / 38.5 / 51.7.
"""

from __future__ import annotations

import math

import torch

OVERLAP = 1 / 3  # patch windows step by at most 2/3 of the patch side: overlaps of ≥ 1/3 of it


def window_starts(side: int, patch: int) -> list[int]:
    """Start offsets of windows of `patch` pixels that cover a circle of `side` pixels with overlaps ≥ OVERLAP."""
    count = max(2, math.ceil(side / (patch * (1 - OVERLAP))))
    return [round(i * side / count) for i in range(count)]


def cheapest_path(errors: torch.Tensor) -> torch.Tensor:
    """For an error strip (rows, cols), the column of the cheapest top-to-bottom 8-connected path in each row."""
    rows, cols = errors.shape
    cost = errors.clone()
    for r in range(1, rows):
        above = cost[r - 1]
        left = torch.cat([above.new_full((1,), math.inf), above[:-1]])
        right = torch.cat([above[1:], above.new_full((1,), math.inf)])
        cost[r] += torch.minimum(above, torch.minimum(left, right))
    path = torch.empty(rows, dtype=torch.long)
    path[-1] = int(cost[-1].argmin())
    for r in range(rows - 2, -1, -1):
        lo, hi = max(0, int(path[r + 1]) - 1), min(cols, int(path[r + 1]) + 2)
        path[r] = lo + int(cost[r, lo:hi].argmin())
    return path


def keep_old(errors: torch.Tensor, side: str, width: int) -> torch.Tensor:
    """Bool (h, w): the pixels of a window that keep what is on the canvas, left of / right of / above / below the
    cheapest cut through the `width`-pixel strip on `side` of the per-pixel errors (h, w)."""
    h, w = errors.shape
    if side in ("top", "bottom"):
        return keep_old(errors.T, {"top": "left", "bottom": "right"}[side], width).T
    strip = errors[:, :width] if side == "left" else errors[:, w - width:]
    path = cheapest_path(strip) + (0 if side == "left" else w - width)
    columns = torch.arange(w).view(1, -1)
    return columns < path.view(-1, 1) if side == "left" else columns > path.view(-1, 1)


def quilt(images: torch.Tensor, canvas: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """A canvas (C, Hc, Wc) quilted from images (n, C, h, w) on the torus."""
    n, c, h, w = images.shape
    ys, xs = window_starts(canvas[0], h), window_starts(canvas[1], w)
    out = torch.zeros(c, *canvas, dtype=images.dtype)
    rows_of = [(torch.arange(h) + y) % canvas[0] for y in ys]
    cols_of = [(torch.arange(w) + x) % canvas[1] for x in xs]
    for i, rows in enumerate(rows_of):
        for j, cols in enumerate(cols_of):
            # the overlaps with windows already placed: the previous one in the row / column, and on the last
            # one of a row / column the first one, which it meets across the wrap-around
            overlaps = {"left": xs[j - 1] + w - xs[j] if j > 0 else 0,
                        "right": xs[j] + w - canvas[1] - xs[0] if j == len(xs) - 1 else 0,
                        "top": ys[i - 1] + h - ys[i] if i > 0 else 0,
                        "bottom": ys[i] + h - canvas[0] - ys[0] if i == len(ys) - 1 else 0}
            overlaps = {side: width for side, width in overlaps.items() if width > 0}
            old = out[:, rows][:, :, cols]  # (C, h, w)
            filled = torch.zeros(h, w, dtype=torch.bool)
            for side, width in overlaps.items():
                filled |= strip_mask(side, width, h, w)
            patch = images[int(torch.randint(n, (1,), generator=generator))]
            errors = ((patch - old) ** 2).sum(0) * filled  # (h, w)
            keep = torch.zeros(h, w, dtype=torch.bool)
            for side, width in overlaps.items():
                keep |= keep_old(errors, side, width)
            new = feathered(~keep) * filled + ~filled  # the share of the new patch: 1 where nothing was yet
            out[:, rows.view(-1, 1), cols.view(1, -1)] = old + new * (patch - old)
    return out


def feathered(mask: torch.Tensor) -> torch.Tensor:
    """A bool mask (h, w) as weights softened by a 3×3 box filter: the cut becomes a 3-pixel blend instead of a
    pixel-level zig-zag (which reads as speckle)."""
    padded = torch.nn.functional.pad(mask.float()[None, None], (1, 1, 1, 1), mode="replicate")
    return torch.nn.functional.avg_pool2d(padded, 3, stride=1)[0, 0]


def strip_mask(side: str, width: int, h: int, w: int) -> torch.Tensor:
    """Bool (h, w): the `width`-pixel strip on `side` of a window."""
    mask = torch.zeros(h, w, dtype=torch.bool)
    region = {"left": (slice(None), slice(0, width)), "right": (slice(None), slice(w - width, w)),
              "top": (slice(0, width), slice(None)), "bottom": (slice(h - width, h), slice(None))}[side]
    mask[region] = True
    return mask
