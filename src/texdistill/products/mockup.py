"""Wear it: each class texture as fabric on garment and product silhouettes (PNG mock-ups, contact sheets).

A mock-up is built from separate layers so each can be checked on its own:
- coverage α and ink α: the silhouette (garments.py, our own MIT-licensed vector paths) rasterised with
  Pillow at SUPERSAMPLE× and box-averaged down (anti-aliasing); ink is the outline plus thin seam lines;
- fabric: the class's repeat unit resampled with a wrap-aware filter to the tile period (garment width /
  scale pixels) and tiled with wrap-around from the garment's top-left corner — the canvas is a torus, so
  the tiling is seamless;
- shade: a luminance multiply in (0, 1] made procedurally from the garment's fold lines (blurred creases),
  a light gradient and darkening near the edges; quantised to 1/255 so the HTML report can use the very
  same map as a black layer with alpha 1 − shade;
- compose: background · (1 − α) + fabric · shade · α, then the ink over it.
"""

from __future__ import annotations

import base64
import html
import logging
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from texdistill.commands import MockupConfig
from texdistill.errors import CheckpointError, ConfigError
from texdistill.method.torus import image_grid, tile
from texdistill.products.garments import GARMENTS, WIDTH, Garment
from texdistill.products.textures import caption, resample_periodic
from texdistill.storage import png_bytes, save_png

log = logging.getLogger(__name__)

SUPERSAMPLE = 4  # rasterise at 4× and box-average: 16 coverage levels per pixel edge
MARGIN = 0.08  # free border around the garment, as a fraction of the image side
OUTLINE_WIDTH = 1.0  # in garment units (the garment is WIDTH = 100 units wide)
DETAIL_WIDTH = 0.5
DETAIL_OPACITY = 0.55
BACKGROUND = (236, 233, 228)  # a warm light grey
INK = (52, 50, 48)


def colour(rgb: tuple[int, int, int], channels: int) -> torch.Tensor:
    """An RGB colour as a (C, 1, 1) float64 tensor; one channel gets its luminance (ITU-R 601)."""
    values = [0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]] if channels == 1 else list(rgb)
    return torch.tensor(values, dtype=torch.float64).view(-1, 1, 1)


@dataclass(frozen=True)
class Frame:
    """Where a garment sits in an image: pixel (x, y) = (u · px, v · px) + (left, top) for garment units (u, v)."""

    height: int
    width: int
    px: float  # pixels per garment unit
    left: int
    top: int

    @classmethod
    def centred(cls, garment: Garment, size: int) -> "Frame":
        """The garment centred in a size × size image with a MARGIN border."""
        px = size * (1 - 2 * MARGIN) / max(WIDTH, garment.height)
        return cls(size, size, px, round((size - WIDTH * px) / 2), round((size - garment.height * px) / 2))

    @classmethod
    def tight(cls, garment: Garment, width: int) -> "Frame":
        """An image exactly the garment's box, `width` pixels wide (for the report's shading layer)."""
        px = width / WIDTH
        return cls(math.ceil(garment.height * px), width, px, 0, 0)

    def period(self, scale: float) -> int:
        """Tile width in pixels for `scale` tiles across the garment."""
        return max(1, round(WIDTH * self.px / scale))


@dataclass
class Layers:
    """The garment-only layers of a mock-up, each (H, W) float64 in [0, 1]."""

    frame: Frame
    coverage: torch.Tensor  # fabric α
    ink: torch.Tensor  # outline and seams α
    shade: torch.Tensor  # luminance multiply, multiples of 1/255
    # what compose() weighs the background and the cloth by, computed once per garment
    backdrop: torch.Tensor = field(init=False)
    gain: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.backdrop = (1 - self.coverage) * (1 - self.ink)
        self.gain = self.shade * self.coverage * (1 - self.ink)


def _raster(garment: Garment, which: str, frame: Frame, line_width: float | None = None,
            supersample: int = SUPERSAMPLE) -> torch.Tensor:
    """Coverage (H, W) in [0, 1] of a garment's filled subpaths, or of its lines when line_width (units) is given."""
    from PIL import Image, ImageDraw

    s = supersample
    image = Image.new("L", (frame.width * s, frame.height * s), 0)
    draw = ImageDraw.Draw(image)
    for points, closed in garment.polygons(which):
        xy = [((u * frame.px + frame.left) * s, (v * frame.px + frame.top) * s) for u, v in points]
        if line_width is None:
            draw.polygon(xy, fill=255)
        else:
            draw.line(xy + xy[:1] if closed else xy, fill=255, width=max(1, round(line_width * frame.px * s)),
                      joint="curve")
    if s > 1:
        image = image.reduce(s)  # box average of s × s blocks
    return torch.from_numpy(np.asarray(image, dtype=np.float64) / 255.0)


def _blur(layer: torch.Tensor, radius: float) -> torch.Tensor:
    """Gaussian blur of an (H, W) layer in [0, 1]."""
    from PIL import Image, ImageFilter

    image = Image.fromarray(np.round(layer.numpy() * 255).astype(np.uint8))
    return torch.from_numpy(np.asarray(image.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float64) / 255.0)


def shading(garment: Garment, frame: Frame, coverage: torch.Tensor) -> torch.Tensor:
    """Luminance multiply (H, W) in (0, 1]: folds, light from the top left, darker towards the edges."""
    # a fold is a blurred dark crease with a lit ridge just above-left of it (towards the light); the
    # ridge can only undo the 8 % base dimming, so the multiply never brightens the fabric
    px = frame.px
    folds = _raster(garment, "folds", frame, line_width=2.2, supersample=1)
    creases = _blur(folds, 2.0 * px)
    creases = creases / creases.max().clamp_min(1e-6)
    ridge = _blur(torch.roll(folds, (round(-2.5 * px), round(-1.5 * px)), dims=(0, 1)), 2.5 * px)
    ridge = ridge / ridge.max().clamp_min(1e-6)
    edges = _blur(coverage, 4.0 * px)  # ≈ 0.5 at the silhouette, 1 deep inside
    ys = (torch.arange(frame.height, dtype=torch.float64).view(-1, 1) - frame.top) / (garment.height * px)
    xs = (torch.arange(frame.width, dtype=torch.float64).view(1, -1) - frame.left) / (WIDTH * px)
    light = ((0.35 * xs + ys) / 1.35).clamp(0, 1)  # 0 at the top-left corner, 1 at the bottom right
    fold = (0.92 + 0.08 * ridge) * (1 - 0.35 * creases)
    shade = (1 - 0.12 * light) * fold * (0.70 + 0.30 * edges.clamp(0, 1))
    return (shade.clamp(0, 1) * 255).round() / 255


@lru_cache(maxsize=32)
def garment_layers(garment: Garment, frame: Frame, shaded: bool = True) -> Layers:
    """Coverage, ink and shading of a garment in a frame (cached: they do not depend on the texture)."""
    coverage = _raster(garment, "outline", frame)
    outline = _raster(garment, "outline", frame, line_width=OUTLINE_WIDTH)
    details = _raster(garment, "details", frame, line_width=DETAIL_WIDTH) * DETAIL_OPACITY
    ink = 1 - (1 - outline) * (1 - details)
    shade = shading(garment, frame, coverage) if shaded else torch.ones_like(coverage)
    return Layers(frame, coverage, ink, shade)


def fabric(unit: torch.Tensor, frame: Frame, scale: float) -> torch.Tensor:
    """The repeat unit uint8 (C, h, w) tiled over the frame, `scale` tiles per garment width → (C, H, W) float64.

    The unit is resampled to (period · h/w, period) pixels with a wrap-aware filter and tiled so that tiles
    start at the garment's top-left corner: pixel (y, x) shows tile pixel ((y − top) mod h', (x − left) mod w').
    """
    period = frame.period(scale)
    tile_h = max(1, round(period * unit.shape[1] / unit.shape[2]))
    unit_tile = resample_periodic(unit, (tile_h, period)).clamp(0, 255)  # (C, tile_h, period)
    dy, dx = -frame.top % tile_h, -frame.left % period
    repeats = math.ceil((frame.height + dy) / tile_h), math.ceil((frame.width + dx) / period)
    return tile(unit_tile, *repeats)[:, dy:dy + frame.height, dx:dx + frame.width]


def compose(cloth: torch.Tensor, layers: Layers) -> torch.Tensor:
    """Fabric (C, H, W) float in [0, 255] shaded, cut out by the silhouette, outlined, on the background → uint8.

    background · (1 − α) + cloth · shade · α, then ink over it; shade ≤ 1 keeps cloth · shade in [0, 255].
    """
    channels = cloth.shape[0]
    base = colour(BACKGROUND, channels) * layers.backdrop + colour(INK, channels) * layers.ink
    return (base + cloth * layers.gain).round().clamp(0, 255).to(torch.uint8)


def render(unit: torch.Tensor, garment: Garment, scale: float, size: int, shaded: bool = True) -> torch.Tensor:
    """One mock-up: uint8 (C, size, size) of the repeat unit uint8 (C, h, w) on `garment`."""
    frame = Frame.centred(garment, size)
    return compose(fabric(unit, frame, scale), garment_layers(garment, frame, shaded))


# ---- a run's textures ------------------------------------------------------------------------------
def repeat_unit(pixels: torch.Tensor) -> torch.Tensor:
    """What repeats on the fabric, from a class's uint8 pixels (k, C, H, W): its canvas, or its k images in a row."""
    return image_grid(pixels, columns=len(pixels), pad=0)


def class_units(run_dir: str | Path, classes: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Class name → uint8 repeat unit (C, h, w) of a distillation run (all classes by default)."""
    from texdistill.method.setfile import RESULT, load_result

    if not (Path(run_dir) / RESULT).exists():
        raise CheckpointError(f"{run_dir} has no {RESULT}; run `texdistill distill --out {run_dir}` first "
                              f"(or pass the folder of a finished run)")
    synthetic, meta, space = load_result(run_dir)
    names = meta["class_names"]
    unknown = [c for c in classes or [] if c not in names]
    if unknown:
        raise ConfigError(f"unknown class {', '.join(unknown)} in --classes; this run has: {', '.join(names)}")
    return {name: repeat_unit(synthetic.displayable(space, synthetic.class_pixels(label)))
            for label, name in enumerate(names) if classes is None or name in classes}


def contact_sheet(units: dict[str, torch.Tensor], garment: Garment, scale: float, size: int = 256,
                  shaded: bool = True, columns: int = 5) -> torch.Tensor:
    """All classes on one garment, captioned, in a grid → uint8 (C, H, W)."""
    c = next(iter(units.values())).shape[0]
    background, ink = (tuple(int(v) for v in colour(rgb, c).flatten().round()) for rgb in (BACKGROUND, INK))
    cells = [caption(render(unit, garment, scale, size, shaded), name, 14, background, ink)
             for name, unit in units.items()]
    return image_grid(torch.stack(cells), columns=min(columns, len(cells)), pad=4)


def run(cfg: MockupConfig) -> list[Path]:
    """Write RUN/mockups/<class>_<garment>.png and sheet_<garment>.png; returns the files written."""
    units = class_units(cfg.run, cfg.class_list)
    out = Path(cfg.run) / "mockups"
    written = []
    for name in cfg.garment_list:
        garment = GARMENTS[name]
        for class_name, unit in units.items():
            written.append(out / f"{class_name}_{name}.png")
            save_png(written[-1], render(unit, garment, cfg.scale, cfg.size, cfg.shading))
        written.append(out / f"sheet_{name}.png")
        save_png(written[-1], contact_sheet(units, garment, cfg.scale, shaded=cfg.shading))
    log.info("wrote %d mock-ups of %d classes on %s to %s", len(units) * len(cfg.garment_list), len(units),
             ", ".join(cfg.garment_list), out)
    return written


# ---- the report's "Wear it" section --------------------------------------------------------------
SCALE_SLIDER = (1.0, 16.0, 0.5)  # min, max, step of the pattern-scale slider
CELL_HEIGHT = 150  # CSS pixels per garment in the report's grid
SHADE_WIDTH = 400  # pixels of the shading layer embedded per garment
VIEW_MARGIN = 4.0  # garment units around each garment in its SVG
PATTERN_PAD = 2  # texels of wrap-around padding around each embedded repeat unit

_STYLE = """
.wear-it .wear-defs{position:absolute;width:0;height:0;overflow:hidden}
.wear-it table{border-collapse:separate;border-spacing:6px}
.wear-it th{font-weight:normal;font-size:.9em;text-align:center}
.wear-it td{background:rgb%s;border-radius:4px;padding:4px}
.wear-it svg.wear-cell{display:block}
""" % (BACKGROUND,)

# resizes every tile of the section's patterns when the slider moves: one tile is WIDTH / scale units wide,
# its image PATTERN_PAD texels larger on every side (see _pattern)
_SCRIPT = """
(function () {
  const root = document.currentScript.closest("section");
  const slider = root.querySelector("input.wear-scale");
  const shown = root.querySelector("output.wear-scale-value");
  function apply() {
    for (const pattern of root.querySelectorAll("pattern.wear-pattern")) {
      const rows = +pattern.dataset.rows, cols = +pattern.dataset.cols, pad = +pattern.dataset.pad;
      const texel = %s / parseFloat(slider.value) / cols;
      const image = pattern.querySelector("image");
      pattern.setAttribute("width", (cols * texel).toFixed(4));
      pattern.setAttribute("height", (rows * texel).toFixed(4));
      image.setAttribute("x", (-pad * texel).toFixed(4));
      image.setAttribute("y", (-pad * texel).toFixed(4));
      image.setAttribute("width", ((cols + 2 * pad) * texel).toFixed(4));
      image.setAttribute("height", ((rows + 2 * pad) * texel).toFixed(4));
    }
    shown.textContent = slider.value;
  }
  slider.addEventListener("input", apply);
})();
""" % (WIDTH,)


def _data_uri(image: torch.Tensor) -> str:
    """A uint8 (C, H, W) image as a PNG data URI."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


def _garment_defs(garment: Garment) -> str:
    """clipPath, shading layer (black with alpha 1 − shade, i.e. a multiply) and ink of one garment, in its units."""
    g = garment.normalised
    frame = Frame.tight(garment, SHADE_WIDTH)
    shade = garment_layers(garment, frame).shade
    darkness = torch.stack([torch.zeros_like(shade), (1 - shade) * 255]).round().to(torch.uint8)  # (2, H, W): LA
    clip = "".join(f'<path d="{d}"/>' for d in g.outline)
    ink = "".join([f'<path d="{d}" stroke-width="{OUTLINE_WIDTH}"/>' for d in g.outline]
                  + [f'<path d="{d}" stroke-width="{DETAIL_WIDTH}" stroke-opacity="{DETAIL_OPACITY}"/>'
                     for d in g.details])
    return (f'<clipPath id="wear-clip-{g.name}" clipPathUnits="userSpaceOnUse">{clip}</clipPath>'
            f'<image id="wear-shade-{g.name}" x="0" y="0" width="{WIDTH:g}" height="{frame.height / frame.px:.3f}" '
            f'preserveAspectRatio="none" href="{_data_uri(darkness)}"/>'
            f'<g id="wear-ink-{g.name}" fill="none" stroke="rgb{INK}" stroke-linejoin="round" '
            f'stroke-linecap="round">{ink}</g>')


def _pattern(index: int, unit: torch.Tensor, scale: float) -> str:
    """One class's repeat unit as an SVG pattern `scale` tiles per garment width, tiles starting at (0, 0).

    The embedded image is the unit padded with PATTERN_PAD pixels wrapped around from the opposite edges
    (the unit is a torus) and drawn that much beyond the tile, so the browser samples true neighbours at
    the tile's edges instead of transparency, which shows as faint lines between tiles. _SCRIPT redoes
    this geometry when the slider moves.
    """
    rows, cols = unit.shape[1:]
    pad = PATTERN_PAD
    padded = torch.nn.functional.pad(unit[None].float(), [pad] * 4, mode="circular")[0].to(torch.uint8)
    texel = WIDTH / scale / cols  # garment units per texture pixel
    return (f'<pattern id="wear-pat-{index}" class="wear-pattern" data-rows="{rows}" data-cols="{cols}" '
            f'data-pad="{pad}" patternUnits="userSpaceOnUse" x="0" y="0" width="{cols * texel:.4f}" '
            f'height="{rows * texel:.4f}"><image x="{-pad * texel:.4f}" y="{-pad * texel:.4f}" '
            f'width="{(cols + 2 * pad) * texel:.4f}" height="{(rows + 2 * pad) * texel:.4f}" '
            f'preserveAspectRatio="none" href="{_data_uri(padded)}"/></pattern>')


def _cell(index: int, class_name: str, garment: Garment) -> str:
    """One garment in one class's fabric: the pattern clipped to the silhouette, shaded, outlined."""
    g = garment.normalised
    view = (-VIEW_MARGIN, -VIEW_MARGIN, WIDTH + 2 * VIEW_MARGIN, garment.height + 2 * VIEW_MARGIN)
    width = CELL_HEIGHT * view[2] / view[3]
    return (f'<svg class="wear-cell" viewBox="{" ".join(f"{v:.3f}" for v in view)}" width="{width:.1f}" '
            f'height="{CELL_HEIGHT}" role="img" aria-label="{html.escape(class_name)} on a {g.title}">'
            f'<g clip-path="url(#wear-clip-{g.name})"><rect x="0" y="0" width="{WIDTH:g}" '
            f'height="{garment.height:.3f}" fill="url(#wear-pat-{index})"/><use href="#wear-shade-{g.name}"/></g>'
            f'<use href="#wear-ink-{g.name}"/></svg>')


def html_fragment(units: dict[str, torch.Tensor], garments: list[str], scale: float = 4.0) -> str:
    """The report's self-contained "Wear it" section: a class × garment grid of SVG mock-ups (images as data
    URIs) and a slider that changes the pattern scale live in the browser."""
    low, high, step = SCALE_SLIDER
    chosen = [GARMENTS[name] for name in garments]
    defs = "".join([_garment_defs(g) for g in chosen] + [_pattern(i, u, scale) for i, u in enumerate(units.values())])
    head = "".join(f"<th>{html.escape(g.title)}</th>" for g in chosen)
    rows = "".join(f'<tr><th scope="row">{html.escape(name)}</th>'
                   + "".join(f"<td>{_cell(i, name, g)}</td>" for g in chosen) + "</tr>"
                   for i, name in enumerate(units))
    return (f'<section class="wear-it" id="wear-it"><style>{_STYLE}</style><h2>Wear it</h2>'
            f'<p>Each class texture as fabric; the silhouettes are drawn by texdistill. PNGs: '
            f'<code>texdistill mockup RUN</code> → <code>RUN/mockups/</code>.</p>'
            f'<p><label>Pattern scale <input type="range" class="wear-scale" min="{low:g}" max="{high:g}" '
            f'step="{step:g}" value="{min(max(scale, low), high):g}"> <output class="wear-scale-value">{scale:g}'
            f'</output> tiles across each garment</label></p>'
            f'<svg class="wear-defs" aria-hidden="true" focusable="false"><defs>{defs}</defs></svg>'
            f'<table><thead><tr><th></th>{head}</tr></thead><tbody>{rows}</tbody></table>'
            f'<script>{_SCRIPT}</script></section>')


def html_section(run_dir: str | Path, classes: list[str] | None = None, garments: list[str] | None = None,
                 scale: float = 4.0) -> str:
    """html_fragment() of a run folder's textures (all classes, every garment by default)."""
    return html_fragment(class_units(run_dir, classes), garments or list(GARMENTS), scale)
