"""`texdistill export RUN`: a run's texture products as files — previews, contact sheet, evolution, print, Wang."""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path

import torch

from texdistill.commands import ExportConfig
from texdistill.errors import ConfigError
from texdistill.method.setfile import display_to_uint8, load_result, load_snapshots
from texdistill.method.synthetic import SyntheticSet
from texdistill.method.torus import quantize, tile
from texdistill.products.textures import captioned_grid, enlarge, print_pixels, resample_periodic
from texdistill.products.wang import render_wang, wang_layout, wang_tiles
from texdistill.storage import atomic_write_bytes, gif_bytes, save_png

log = logging.getLogger(__name__)

GIF_FRAMES = 60  # snapshots shown in an animation at most
SWATCH_PX = 1600  # longest side of a print swatch
CONTACT_COLUMNS = 5


def evolution(run_dir: Path, synthetic: SyntheticSet, limit: int) -> tuple[list[int], list[list[torch.Tensor]]]:
    """Snapshot iterations and, per class, its class image (uint8 (C, H, W)) at each of them."""
    snapshots = load_snapshots(run_dir, synthetic, limit)
    frames = [[snap.class_image(label, display_to_uint8) for _, snap in snapshots]
              for label in range(synthetic.num_classes)]
    return [iteration for iteration, _ in snapshots], frames


def evolution_strip(iterations: list[int], frames: list[torch.Tensor], count: int) -> torch.Tensor:
    """One row of `count` captioned frames, evenly spaced from the first to the last (paper figure 5)."""
    picks = torch.linspace(0, len(frames) - 1, min(count, len(frames))).round().long().unique().tolist()
    return captioned_grid([frames[i] for i in picks], [f"it {iterations[i]}" for i in picks], columns=len(picks))


def contact_sheet(synthetic: SyntheticSet, to_uint8, names: list[str], repeat: tuple[int, int]) -> torch.Tensor:
    """Every class tiled `repeat` times, captioned with its name, in one grid."""
    images = [synthetic.tiled_image(label, to_uint8, *repeat) for label in range(len(names))]
    return captioned_grid(images, names, columns=min(CONTACT_COLUMNS, len(names)))


def print_products(canvas: torch.Tensor, cfg: ExportConfig) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(print tile, swatch, swatch dpi) from a display canvas (C, H, W) in [0, 1]; both stay seamless."""
    height, width = print_pixels(canvas.shape[1:], cfg.size_cm, cfg.dpi)
    ny, nx = cfg.repeat
    scale = min(1.0, SWATCH_PX / max(ny * height, nx * width))
    swatch_size = (max(1, round(height * scale)), max(1, round(width * scale)))
    swatch = tile(quantize(resample_periodic(canvas, swatch_size)), ny, nx)
    return quantize(resample_periodic(canvas, (height, width))), swatch, cfg.dpi * swatch_size[1] / width


def run(cfg: ExportConfig) -> list[Path]:
    """Write the products of the run in cfg.run; returns the files written."""
    run_dir = Path(cfg.run)
    synthetic, meta, space = load_result(run_dir)
    if (cfg.print or cfg.wang) and not synthetic.periodic:
        raise ConfigError(f"--print and --wang need a texture run (texdistill distill --texture); "
                          f"{run_dir} holds {synthetic.kind}")
    names = meta["class_names"]
    to_uint8 = partial(synthetic.displayable, space)
    written: list[Path] = []

    def write(path: Path, image: torch.Tensor | bytes, dpi: float | None = None) -> None:
        if isinstance(image, bytes):
            atomic_write_bytes(path, image)
        else:
            save_png(path, image, dpi)
        written.append(path)

    iterations, frames = evolution(run_dir, synthetic, GIF_FRAMES)
    for label, name in enumerate(names):
        for relative, image in synthetic.previews(label, name, to_uint8, cfg.repeat).items():
            write(run_dir / relative, image)
        if iterations:
            write(run_dir / "evolution" / f"{name}.png", evolution_strip(iterations, frames[label], cfg.frames))
            write(run_dir / "evolution" / f"{name}.gif", gif_bytes([enlarge(frame, 160) for frame in frames[label]]))
        canvas = synthetic.decoded(space, synthetic.class_pixels(label))[0]  # (C, H, W) display values in [0, 1]
        if cfg.print:
            tile_px, swatch, swatch_dpi = print_products(canvas, cfg)
            stem = f"{name}_{cfg.size_cm:g}cm_{cfg.dpi:g}dpi"
            write(run_dir / "print" / f"{stem}.png", tile_px, cfg.dpi)
            write(run_dir / "print" / f"{stem}_swatch_{cfg.tiles}.png", swatch, swatch_dpi)
        if cfg.wang:
            for path, image in wang_products(run_dir / "wang", name, canvas, cfg).items():
                write(path, image)
    write(run_dir / "contact_sheet.png", contact_sheet(synthetic, to_uint8, names, cfg.repeat))
    if not iterations:
        log.info("no snapshots in %s/snapshots: no evolution written", run_dir)
    log.info("wrote %d files under %s; contact sheet: %s", len(written), run_dir, run_dir / "contact_sheet.png")
    return written


def wang_products(folder: Path, name: str, canvas: torch.Tensor, cfg: ExportConfig) -> dict[Path, torch.Tensor | bytes]:
    """The Wang tile set of one class (captioned with its edge colours), a non-periodic tiling, its layout."""
    generator = torch.Generator().manual_seed(cfg.seed)
    tiles = wang_tiles(canvas, cfg.wang_colors, cfg.wang_tile, generator=generator)
    layout = wang_layout(tiles, cfg.wang_grid, cfg.wang_grid, generator)
    labels = ["N{} · E{} · S{} · W{}".format(*edges.tolist()) for edges in tiles.edges]
    layout_json = {"tile_size": tiles.size, "edges_nesw": tiles.edges.tolist(), "layout": layout.tolist()}
    return {folder / f"{name}_layout.json": json.dumps(layout_json).encode(),
            folder / f"{name}_tiles.png": captioned_grid(list(quantize(tiles.tiles)), labels, columns=4),
            folder / f"{name}_tiling.png": quantize(render_wang(tiles, layout))}
